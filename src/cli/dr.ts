/**
 * `twinmart dr …`: the operator's DR commands, sent as updates so the answer says at
 * once whether the workflow accepted the command, and why not.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { loadConfig } from '../config';
import { connectSurvivingClient } from '../temporal/connection';
import { failNamespaceAway, handOverNamespace, rejoinSiteCluster } from '../temporal/namespace';
import { drStatusQuery, drUpdates, type DrCommand, type DrStatus, type UnreadLag } from '../workflows/dr-messages';
import { DR_WORKFLOW_ID } from '../workflows/names';
import { drillSummary, drillUpdate, type DrillReport } from '../workflows/drill';
import { parse, UsageError } from './args';
import { configPath } from './config-path';

const VERBS: Record<string, DrCommand> = {
  fail: 'declareSiteFailure',
  'confirm-reporting': 'confirmReporting',
  rebuilt: 'siteRebuilt',
  failback: 'failbackReporting',
  retry: 'retry',
};

/** "at most N events, T s" as last measured, or why there is no number. */
export function formatUnread(l: UnreadLag | null): string {
  if (!l) return 'not measured before the failure';
  const seconds = l.secondsBehind === null ? 'never read' : `${l.secondsBehind.toFixed(1)} s`;
  return `at most ${l.rowsBehind} events, ${seconds} (measured ${l.measuredAt}; plus what it recorded after that)`;
}

/** An error line when the sites' workers run configuration that differs where it must not. */
export function configurationLines(s: DrStatus): string[] {
  const c = s.configuration;
  if (!c?.differing.length) return [];
  return [`  ERROR: configuration differs between ${Object.keys(c.digests).join(', ')} in ${c.differing.join(', ')} (the marts would keep different facts)`];
}

export function formatDrStatus(s: DrStatus): string {
  const lines = [
    `phase ${s.phase}; sites ${Object.entries(s.sites).map(([k, v]) => `${k} ${v}`).join(', ')}; reporting at ${s.reporting.active}` +
      (s.reporting.awaitingConfirmation ? ` (awaiting confirm-reporting ${s.reporting.awaitingConfirmation})` : ''),
    ...s.pending.map((p) => `  waiting for ${p.what} since ${p.since}${p.overdue ? ' (overdue: `twinmart dr retry` resends)' : ''}`),
    ...Object.entries(s.suspected).map(([site, x]) => `  suspected failure of ${site} since ${x.since}: ${x.reason}`),
    ...configurationLines(s),
  ];
  if (s.dataLoss) {
    lines.push(`  data-loss report for ${s.dataLoss.failedSite}: ` +
      (s.dataLoss.potentialLoss.length ? `potential loss in ${s.dataLoss.potentialLoss.join(', ')}` : 'every HA set has a surviving member'));
    for (const [member, bySite] of Object.entries(s.dataLoss.unreadByMember ?? {})) {
      lines.push(`    ${member}: unread ` + Object.entries(bySite).map(([site, l]) => `by ${site} ${formatUnread(l)}`).join(', '));
    }
    for (const set of s.dataLoss.sets.filter((x) => x.lastEventBySite)) {
      lines.push(`    ${set.sourceId}: last event ${Object.entries(set.lastEventBySite!).map(([k, v]) => `${k} ${v ?? 'none'}`).join(', ')}`);
    }
  }
  if (s.drilling) lines.push(`  a drill of ${s.drilling} is running`);
  if (s.lastDrill) lines.push(`  last drill of ${s.lastDrill.site} at ${s.lastDrill.at}: ${drillSummary(s.lastDrill)}`);
  if (s.lastFailover?.rtoSeconds != null) lines.push(`  last failover of ${s.lastFailover.site}: RTO ${s.lastFailover.rtoSeconds.toFixed(1)} s`);
  if (s.lastError) lines.push(`  last error: ${s.lastError}`);
  lines.push('  timeline:', ...s.timeline.slice(-12).map((t) => `    ${t.at} ${t.step}${t.site ? ' ' + t.site : ''}${t.by ? ' by ' + t.by : ''}${t.detail ? ' — ' + t.detail : ''}`));
  return lines.join('\n');
}

/** What `twinmart dr drill` prints: the verdict, then what each survivor found. */
export function formatDrill(r: DrillReport): string {
  const lines = [`drill of ${r.site} (${r.at}): a failover now would ${r.ready ? 'go through' : 'NOT go through'}`];
  lines.push(...r.problems.map((p) => `  problem: ${p}`));
  for (const e of r.exposure) {
    const unread = Object.entries(e.unreadBy).map(([s, m]) => `${s} has not read ${Object.entries(m).map(([id, n]) => `${id} ${n ?? '?'}`).join(', ')} rows`);
    lines.push(`  exposed: ${e.sourceId} has no member at a survivor; a failure now loses what it records from then on${unread.length ? `, and ${unread.join('; ')}` : ''}`);
  }
  for (const c of r.checks) {
    const behind = Object.entries(c.members).filter(([, m]) => m.site !== r.site).map(([id, m]) => `${id} ${m.state === 'ok' ? m.rowsBehind : m.state}`);
    lines.push(`  ${c.site}: members behind ${behind.join(', ')}; reporting ${c.reporting.canServe ? 'can serve' : 'cannot serve'} (${c.reporting.detail})` +
      `; workers ${c.pollers.control && c.pollers.site ? 'polling' : 'MISSING'}`);
    if (c.temporal.mode === 'per-site') {
      const t = c.temporal;
      const lag = Object.entries(t.lagEvents).map(([id, n]) => `${id} ${n ?? '?'}`).join(', ');
      lines.push(`    Temporal cluster ${t.cluster}: namespace ${t.replicated ? 'replicated' : 'NOT replicated'}, active at ${t.activeCluster}` +
        (t.activeCluster === t.cluster ? '' : `; replication lag in history events: ${lag}`));
    } else lines.push('    Temporal: one service for every site (no per-site cluster configured): it must outlive the drilled site');
  }
  return lines.join('\n');
}

/** Runs `fn` until it succeeds or `ms` passed; a refused command is an answer, not an outage. */
async function retrying<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof WorkflowUpdateFailedError || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export async function drCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { reason: { type: 'string' }, json: { type: 'boolean' } });
  const [verb, site] = positionals;
  const config = loadConfig(configPath(values.config));
  if (verb === 'drill') {
    if (!site) throw new UsageError('dr drill needs a site');
    const { client } = await connectSurvivingClient(config, site);
    try {
      const r = await client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drillUpdate, { args: [{ site }] });
      process.stdout.write((values.json ? JSON.stringify(r) : formatDrill(r)) + '\n');
      return r.ready ? 0 : 1;
    } catch (e) {
      if (!(e instanceof WorkflowUpdateFailedError)) throw e;
      process.stderr.write(`twinmart dr drill: refused: ${(e.cause as Error)?.message ?? e.message}\n`);
      return 1;
    } finally {
      await client.connection.close();
    }
  }
  if (verb === 'handover') {
    if (!site) throw new UsageError('dr handover needs a site');
    const moved = await handOverNamespace(config, site);
    process.stdout.write(
      moved
        ? `namespace ${config.temporal.namespace} handed over to cluster ${moved} (after its replication caught up)\n`
        : `namespace ${config.temporal.namespace} is active at the cluster of ${site} already\n`,
    );
    return 0;
  }
  const command = verb ? VERBS[verb] : undefined;
  // A failed site's cluster may be gone with it: commands go to a surviving site's cluster.
  const { client, site: via } = await connectSurvivingClient(config, command === 'declareSiteFailure' || command === 'siteRebuilt' ? site : undefined);
  try {
    const handle = client.workflow.getHandle(DR_WORKFLOW_ID);
    if (verb === 'status') {
      const s = await handle.query(drStatusQuery);
      process.stdout.write((values.json ? JSON.stringify(s) : formatDrStatus(s)) + '\n');
      return 0;
    }
    if (!command) throw new UsageError(`dr needs one of ${Object.keys(VERBS).join(', ')}, status, drill, handover`);
    if (command !== 'retry' && !site) throw new UsageError(`dr ${verb} needs a site`);
    const payload = command === 'retry' ? {} : { site, ...(values.reason ? { reason: values.reason } : {}) };
    let moved: string | null = null;
    if (command === 'declareSiteFailure' && via) {
      // The procedure runs where the namespace is active: if that was the failed site, here first.
      moved = await failNamespaceAway(client, config, site!, via);
      if (moved) process.stdout.write(`namespace ${config.temporal.namespace} is now active at cluster ${moved} (it was at ${site}'s)\n`);
    }
    if (command === 'siteRebuilt' && via) {
      const joined = await rejoinSiteCluster(config, site!);
      if (joined) process.stdout.write(`the Temporal cluster ${joined} of ${site} is connected and holds the namespace ${config.temporal.namespace} again\n`);
    }
    try {
      // Right after a failover the cluster's namespace cache still names the old one for a few seconds.
      const r = await retrying(moved ? 60_000 : 0, () => handle.executeUpdate(drUpdates[command], { args: [payload] }));
      process.stdout.write(`${command} ${site ?? ''} accepted (phase ${r.phase})\n`);
      return 0;
    } catch (e) {
      if (e instanceof WorkflowUpdateFailedError) {
        process.stderr.write(`twinmart dr ${verb}: refused: ${(e.cause as Error)?.message ?? e.message}\n`);
        return 1;
      }
      throw e;
    }
  } finally {
    await client.connection.close();
  }
}
