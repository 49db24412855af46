/**
 * The DR workflow's health probes, in a workflow of their own (docs/architecture.md,
 * "Health probes"): a probe round every dr.probeSeconds filled the DR workflow's history
 * (909 events in 3 minutes), so the run an operator opens to follow a failover was a new
 * one every few minutes and its steps drowned among probes. This one probes every site
 * and tells the DR workflow only what changed: a site that stopped answering (after
 * dr.probeFailures rounds), one that answers again, a site whose configuration changed.
 */
import { getExternalWorkflowHandle, proxyActivities, sleep } from '@temporalio/workflow';
import type { ControlActivities, DrActivities } from '../activities/dr';
import { siteHealthSignal, type SiteHealth } from './dr-messages';
import { CONTROL_QUEUE, DR_WORKFLOW_ID, siteQueue } from './names';
import { boundRun } from './runs';

export interface ProbeState {
  /** Failed rounds in a row per site. */
  failures: Record<string, number>;
  /** What the DR workflow was last told per site. */
  told: Record<string, { healthy: boolean; digest: string | null }>;
}

export async function drProbeWorkflow(input: { state?: ProbeState } = {}): Promise<void> {
  const control = proxyActivities<ControlActivities>({ taskQueue: CONTROL_QUEUE, startToCloseTimeout: '1 minute' });
  const dep = await control.describeDeployment();
  const bound = boundRun<typeof drProbeWorkflow>(dep.runs);
  const state: ProbeState = input.state ?? { failures: {}, told: {} };
  const timeout = Math.min(dep.dr.probeSeconds, 5) * 1000;
  const dr = getExternalWorkflowHandle(DR_WORKFLOW_ID);
  for (;;) {
    if (bound.full()) await bound.continueAsNew({ state });
    const results = await Promise.allSettled(
      dep.sites.map((site) =>
        proxyActivities<DrActivities>({
          taskQueue: siteQueue(site),
          scheduleToStartTimeout: timeout,
          startToCloseTimeout: timeout,
          retry: { maximumAttempts: 1 },
        }).probeSite({ site }),
      ),
    );
    for (const [i, site] of dep.sites.entries()) {
      const r = results[i]!;
      const reason = r.status === 'rejected' ? `no worker of ${site} answered within ${timeout / 1000} s` : r.value.error;
      const failures = reason ? (state.failures[site] ?? 0) + 1 : 0;
      state.failures[site] = failures;
      const was = state.told[site];
      // A site is unhealthy once it failed dr.probeFailures rounds in a row; it keeps the last word until then.
      const healthy = reason ? (failures < dep.dr.probeFailures ? (was?.healthy ?? true) : false) : true;
      const config = r.status === 'fulfilled' ? (r.value.config ?? null) : null;
      const digest = config?.digest ?? was?.digest ?? null;
      if (was && was.healthy === healthy && was.digest === digest) continue;
      const report: SiteHealth = { site, healthy, failures, reason: healthy ? null : reason, config };
      try {
        await dr.signal(siteHealthSignal, report);
        state.told[site] = { healthy, digest };
      } catch {
        // The DR workflow is between runs or not started yet: told next round.
      }
    }
    await sleep(dep.dr.probeSeconds * 1000);
  }
}
