/**
 * DR on the loaded world: a real site failure (worker killed, PostgreSQL stopped
 * immediate), declareSiteFailure, the bench confirming reporting at once (operator waits
 * are excluded from the RTO anyway), then the site back as a wiped replacement and
 * siteRebuilt, timed until phase normal (migrate, seed from the survivor, catch-up,
 * inclusion, parity). The RTO is the workflow's own `lastFailover.rtoSeconds`. With
 * `behindCalls`, a burst of calls lands in every IDB just before the failure, so the
 * survivor is in the middle of loading a backlog when it is told to exclude the site.
 */
import { silentLogger } from '../logger';
import { runSim } from '../sim';
import { failSite, restoreSite } from '../dev/world';
import { membersBehind } from '../etl/backlog';
import { loadBacklog } from '../mart/control';
import { drStatusQuery, drUpdates, type DrStatus, type TimelineEntry } from '../workflows/dr-messages';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import { siteClusters } from '../config';
import { connectSurvivingClient } from '../temporal/connection';
import { failNamespaceAway, rejoinSiteCluster } from '../temporal/namespace';
import type { BenchWorld } from './world';
import { log, round, seconds, waitFor } from './util';

export interface DrResult {
  failedSite: string;
  reportingMoved: boolean;
  note: string | null;
  failoverRtoSeconds: number | null;
  /** Per-site Temporal: from the failure to the namespace active at the survivor's cluster (in `wallSeconds` too); null with one Temporal service. */
  namespaceFailoverSeconds?: number | null;
  /** What the survivor still had to do when the site failed: rows to extract, calls and agents to transform. */
  survivorBehind: { burstCalls: number; rowsToExtract: number; toTransform: number } | null;
  /**
   * The same end point (reporting activated, else exclusions confirmed) measured from when
   * the bench sent declareSiteFailure: includes the time the DR workflow took to receive it.
   */
  operatorRtoSeconds: number | null;
  failover: {
    /** From sending declareSiteFailure to the update's answer (the DR workflow must run a workflow task to take it). */
    commandAcceptedSeconds: number;
    /** From sending the command to the failover starting (the `failure-declared` step): not part of the workflow's RTO. */
    commandToStartSeconds: number | null;
    declaredToExclusionsSeconds: number | null;
    exclusionsToReportingSeconds: number | null;
    declaredToDegradedSeconds: number | null;
    /** As the bench saw it: from sending declareSiteFailure to phase degraded (includes its own confirmReporting). */
    wallSeconds: number;
  };
  /** Seconds from sending declareSiteFailure to each step of the failover, from the DR timeline. */
  failoverSteps: Record<string, number>;
  /**
   * Workflow tasks that timed out during the failover, per workflow: a task handed to the
   * sticky queue of the killed worker waits for the sticky schedule-to-start timeout
   * before another worker gets it.
   */
  workflowTaskTimeouts: { workflowId: string; atSeconds: number; timeoutType: string }[];
  restoreSeconds: number;
  rebuildToParitySeconds: number | null;
  /** Seconds from siteRebuilt to each step of the reintroduction, from the DR timeline. */
  rebuildSteps: Record<string, number>;
  seeded: string | null;
  parity: string | null;
}

/** WORKFLOW_TASK_TIMED_OUT events of the workflows in [fromMs, toMs]. */
async function taskTimeouts(client: Client, ids: string[], fromMs: number, toMs: number): Promise<DrResult['workflowTaskTimeouts']> {
  const out: DrResult['workflowTaskTimeouts'] = [];
  for (const wid of ids) {
    try {
      const h = await client.workflow.getHandle(wid).fetchHistory();
      for (const e of h.events ?? []) {
        const a = e.workflowTaskTimedOutEventAttributes;
        if (!a || !e.eventTime) continue;
        const ms = Number(e.eventTime.seconds ?? 0) * 1000 + (e.eventTime.nanos ?? 0) / 1e6;
        if (ms < fromMs || ms > toMs) continue;
        out.push({
          workflowId: wid,
          atSeconds: round((ms - fromMs) / 1000, 2),
          timeoutType: (temporal.api.enums.v1.TimeoutType[a.timeoutType ?? 0] ?? String(a.timeoutType)).replace(/^TIMEOUT_TYPE_/, ''),
        });
      }
    } catch {
      // a workflow without a history here (not running) has nothing to report
    }
  }
  return out;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.status < 500;
  } catch {
    return false;
  }
}

const at = (e: TimelineEntry | undefined): number | null => (e ? Date.parse(e.at) : null);
const between = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : round((b - a) / 1000, 2));

/** Rows the site's mart has still to extract from the members that answer, and its transform queue. */
async function backlogOf(w: BenchWorld, site: string): Promise<{ rowsToExtract: number; toTransform: number }> {
  const members = await membersBehind(w.config, w.pools, site);
  const rowsToExtract = members.reduce((sum, m) => sum + (m.rows ?? 0), 0);
  return { rowsToExtract, toTransform: (await loadBacklog(w.mart(site))).dirty };
}

export async function drRound(w: BenchWorld, timeoutSeconds: number, behindCalls = 0): Promise<DrResult> {
  // With a cluster per site, the failed site's goes with it: the round goes on at a survivor's.
  let client = w.client;
  const handle = () => client.workflow.getHandle(DR_WORKFLOW_ID);
  const status = () => handle().query(drStatusQuery);
  const sites = Object.keys(w.config.sites);
  const primary = w.config.reporting.primary;
  const survivorOf = (s: string) => sites.find((x) => x !== s)!;
  // The reporting switch waits for the survivor's reporting service to answer /health.
  const survivorUrl = `http://127.0.0.1:${w.config.sites[survivorOf(primary)]!.reportingPort}`;
  const canMoveReporting = await healthy(survivorUrl);
  const failed = canMoveReporting ? primary : survivorOf(primary);
  const note = canMoveReporting
    ? null
    : `the reporting service (${survivorUrl}/health) does not answer, so the site not serving reports (${failed}) was failed and reporting did not move`;
  if (note) log.warn(note);
  await waitFor('DR phase normal', async () => (await status()).phase === 'normal', 60_000);

  let survivorBehind: DrResult['survivorBehind'] = null;
  if (behindCalls > 0) {
    // Event times an hour back and more, as a collector's replayed queue would bring them.
    const rate = 100;
    const startTs = new Date(Date.now() - (behindCalls / rate) * 1000 - 3_600_000);
    log.info(`DR: writing ${behindCalls} calls into every IDB while the ETLs run`);
    await runSim(w.config, { calls: behindCalls, rate, seed: 91, startTs }, silentLogger);
    survivorBehind = { burstCalls: behindCalls, ...(await backlogOf(w, survivorOf(failed))) };
    log.info(`DR: ${survivorOf(failed)} is behind by`, survivorBehind);
  }
  log.info(`DR: stopping ${failed} for real and declaring it failed`);
  await failSite(w.state, failed);
  const t0 = Date.now();
  let namespaceFailoverSeconds: number | null = null;
  const perSite = siteClusters(w.config).length > 0;
  if (perSite) {
    // What `twinmart dr fail` does: the namespace made active at a survivor's cluster first.
    const survivor = await connectSurvivingClient(w.config, failed);
    client = survivor.client;
    await failNamespaceAway(client, w.config, failed, survivor.site!);
    namespaceFailoverSeconds = seconds(Date.now() - t0);
  }
  const declare = () => handle().executeUpdate(drUpdates.declareSiteFailure, { args: [{ site: failed, reason: 'benchmark' }] });
  // Right after a namespace failover the survivor's namespace cache names the old cluster for a few seconds.
  if (perSite) await waitFor('declareSiteFailure to be accepted', async () => Boolean(await declare()), 60_000, 100);
  else await declare();
  const accepted = Date.now() - t0;
  const deadline = timeoutSeconds * 1000;
  const degraded = await waitFor(
    'the failover to complete',
    async () => {
      const s = await status();
      if (s.reporting.awaitingConfirmation) {
        await handle().executeUpdate(drUpdates.confirmReporting, { args: [{ site: s.reporting.awaitingConfirmation }] }).catch(() => undefined);
      }
      return s.phase === 'degraded' && s;
    },
    deadline,
    100,
  );
  const wall = Date.now() - t0;
  const f = degraded.lastFailover!;
  const failoverSteps: Record<string, number> = {};
  for (const e of degraded.timeline) {
    const x = Date.parse(e.at);
    if (x >= t0 - 1000) failoverSteps[e.site && e.site !== failed ? `${e.step} (${e.site})` : e.step] = round((x - t0) / 1000, 2);
  }
  log.info(`DR: failover of ${failed} done, RTO ${f.rtoSeconds} s`);

  const survivors = sites.filter((x) => x !== failed);
  const timeouts = await taskTimeouts(client, [DR_WORKFLOW_ID, ...survivors.map(etlWorkflowId)], t0, Date.now());
  if (timeouts.length) log.info('DR: workflow tasks timed out during the failover', { timeouts });

  const t1 = Date.now();
  await restoreSite(w.state, failed, silentLogger, true);
  const restoreMs = Date.now() - t1;
  log.info(`DR: ${failed} back as a wiped replacement in ${seconds(restoreMs)} s; sending siteRebuilt`);
  if (perSite) await rejoinSiteCluster(w.config, failed); // what `twinmart dr rebuilt` does first
  await waitFor(
    'siteRebuilt to be accepted',
    async () => {
      await handle().executeUpdate(drUpdates.siteRebuilt, { args: [{ site: failed }] });
      return true;
    },
    60_000,
    1000,
  );
  const normal: DrStatus = await waitFor(
    `${failed} to be reintroduced (phase normal)`,
    async () => {
      const s = await status();
      return s.phase === 'normal' && s.sites[failed] === 'active' && s;
    },
    deadline,
    250,
  );
  const tl = normal.timeline;
  const rebuilt = [...tl].reverse().find((e) => e.step === 'command:siteRebuilt' && e.site === failed);
  const start = at(rebuilt);
  const after = tl.slice(rebuilt ? tl.indexOf(rebuilt) : 0);
  const steps: Record<string, number> = {};
  for (const e of after) if (e.site === failed && e !== rebuilt) steps[e.step] = between(start, at(e)) ?? 0;
  const r: DrResult = {
    failedSite: failed,
    reportingMoved: canMoveReporting,
    note,
    failoverRtoSeconds: f.rtoSeconds,
    namespaceFailoverSeconds,
    survivorBehind,
    operatorRtoSeconds: between(t0, f.reportingActivatedAt ? Date.parse(f.reportingActivatedAt) : f.exclusionsConfirmedAt ? Date.parse(f.exclusionsConfirmedAt) : null),
    failover: {
      commandAcceptedSeconds: seconds(accepted),
      commandToStartSeconds: between(t0, at(degraded.timeline.find((e) => e.step === 'failure-declared' && e.site === failed && Date.parse(e.at) >= t0 - 1000))),
      declaredToExclusionsSeconds: between(Date.parse(f.declaredAt), f.exclusionsConfirmedAt ? Date.parse(f.exclusionsConfirmedAt) : null),
      exclusionsToReportingSeconds: between(
        f.exclusionsConfirmedAt ? Date.parse(f.exclusionsConfirmedAt) : null,
        f.reportingActivatedAt ? Date.parse(f.reportingActivatedAt) : null,
      ),
      declaredToDegradedSeconds: between(Date.parse(f.declaredAt), f.degradedAt ? Date.parse(f.degradedAt) : null),
      wallSeconds: seconds(wall),
    },
    failoverSteps,
    workflowTaskTimeouts: timeouts,
    restoreSeconds: seconds(restoreMs),
    rebuildToParitySeconds: steps.normal ?? null,
    rebuildSteps: steps,
    seeded: after.find((e) => e.step === 'mart-seeded')?.detail ?? null,
    parity: normal.reintroduction?.parity ?? null,
  };
  if (client !== w.client) await client.connection.close();
  log.info(`DR: ${failed} normal again ${r.rebuildToParitySeconds} s after siteRebuilt`, steps);
  return r;
}
