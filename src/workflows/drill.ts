/**
 * The DR drill (`drill` update, `twinmart dr drill <site>`): whether a failover of a site
 * would succeed now and what it would cost, found by asking every surviving site
 * (src/activities/drill.ts) and changing nothing. What Azure Site Recovery calls a test
 * failover, without the test copy: the survivors are asked what they would serve.
 */
import { defineUpdate, proxyActivities } from '@temporalio/workflow';
import { z } from 'zod';
import type { DrillActivities } from '../activities/drill';
import type { Deployment } from '../activities/dr';
import { SITE_ID } from '../config/ids';
import { siteQueue } from './names';

export const drillSchema = z.strictObject({ site: z.string().regex(SITE_ID, `a site id matching ${SITE_ID}`) });
export const drillUpdate = defineUpdate<DrillReport, [unknown]>('drill');

/** What one surviving site reports (counts, names and flags only). */
export interface SurvivorCheck {
  site: string;
  /** Per member, as this site's ETL sees it: rows behind its cursor (null: unreachable or never read). */
  members: Record<string, { site: string; rowsBehind: number | null; state: 'ok' | 'unreachable' | 'never-read' }>;
  /** Its reporting service's /health/ready. */
  reporting: { canServe: boolean; detail: string };
  /** A worker of this site polls the control queue (workflows) and its site queue (activities). */
  pollers: { control: boolean; site: boolean };
  temporal:
    | { mode: 'shared' }
    | { mode: 'per-site'; cluster: string; activeCluster: string; replicated: boolean; lagEvents: Record<string, number | null> };
}

export interface DrillReport {
  site: string;
  at: string;
  finishedAt: string;
  /** A failover of `site` now would go through: every check below passed. */
  ready: boolean;
  /** Why not, one sentence each. */
  problems: string[];
  survivors: string[];
  /**
   * HA sets with no member at a surviving site: a failure now loses what their members
   * record from then on, plus what the survivors had not read (`unreadBy`, rows).
   */
  exposure: { sourceId: string; members: string[]; unreadBy: Record<string, Record<string, number | null>> }[];
  checks: SurvivorCheck[];
}

/** Runs the checks at every survivor at once; a survivor that does not answer is a problem, not a failed drill. */
export async function runDrill(dep: Deployment, site: string, survivors: string[], at: string): Promise<DrillReport> {
  const results = await Promise.allSettled(
    survivors.map((s) =>
      proxyActivities<DrillActivities>({
        taskQueue: siteQueue(s),
        scheduleToStartTimeout: '15 seconds',
        startToCloseTimeout: '1 minute',
        retry: { maximumAttempts: 2 },
      }).drillSurvivor({ site: s, drilled: site }),
    ),
  );
  const checks: SurvivorCheck[] = [];
  const silent: { site: string; error: string }[] = [];
  results.forEach((r, i) =>
    r.status === 'fulfilled' ? checks.push(r.value) : silent.push({ site: survivors[i]!, error: String(r.reason?.cause?.message ?? r.reason?.message) }),
  );
  return { ...drillVerdict(dep, site, survivors, checks, silent), at, finishedAt: new Date().toISOString() };
}

/** The verdict from the survivors' answers: pure, so the rules can be read in one place. */
export function drillVerdict(
  dep: Deployment,
  site: string,
  survivors: string[],
  checks: SurvivorCheck[],
  silent: { site: string; error: string }[],
): Omit<DrillReport, 'at' | 'finishedAt'> {
  const problems = silent.map((s) => `no worker of ${s.site} answered the drill (${s.error})`);
  const exposure: DrillReport['exposure'] = [];
  for (const [sourceId, members] of Object.entries(dep.sources)) {
    const surviving = members.filter((m) => survivors.includes(m.site));
    if (!surviving.length) {
      const unreadBy = Object.fromEntries(checks.map((c) => [c.site, Object.fromEntries(members.map((m) => [m.id, c.members[m.id]?.rowsBehind ?? null]))]));
      exposure.push({ sourceId, members: members.map((m) => m.id), unreadBy });
      continue;
    }
    for (const c of checks) {
      if (!surviving.some((m) => c.members[m.id]?.state === 'ok')) {
        problems.push(`${sourceId}: no surviving member (${surviving.map((m) => m.id).join(', ')}) is reachable and read by ${c.site}`);
      }
    }
  }
  for (const c of checks) {
    if (!c.reporting.canServe) problems.push(`the reporting service of ${c.site} could not serve: ${c.reporting.detail}`);
    if (!c.pollers.control) problems.push(`no worker of ${c.site} polls the control queue (the workflows would not run there)`);
    if (!c.pollers.site) problems.push(`no worker of ${c.site} polls its site queue (its activities would not run)`);
    if (c.temporal.mode === 'per-site' && !c.temporal.replicated) {
      problems.push(`the namespace is not replicated to cluster ${c.temporal.cluster} of ${c.site}`);
    }
  }
  if (!survivors.length) problems.push(`failing ${site} would leave no active site`);
  return { site, ready: problems.length === 0, problems, survivors, exposure, checks };
}

/** One line for the timeline and the CLI. */
export function drillSummary(r: DrillReport): string {
  const exposed = r.exposure.length ? `; exposed: ${r.exposure.map((e) => e.sourceId).join(', ')} (no member at a survivor)` : '; every HA set has a surviving member';
  return (r.ready ? 'ready' : `not ready: ${r.problems.join('; ')}`) + exposed;
}
