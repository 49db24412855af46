/**
 * The DR drill's check at one surviving site (docs/architecture.md, "DR drill"): what a
 * failover of another site would find here now. It reads and asks; it changes nothing
 * (no exclusion, no role, no cursor).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { reportingUrl, siteClusters, type Config } from '../config';
import type { Pools } from '../db';
import { membersBehind } from '../etl/backlog';
import { replicationAt } from '../temporal/namespace';
import { CONTROL_QUEUE, DR_WORKFLOW_ID, etlWorkflowId, siteQueue } from '../workflows/names';
import type { SurvivorCheck } from '../workflows/drill';

/** A poller seen longer ago than this no longer counts as polling. */
const POLLER_FRESH_MS = 70_000;

export function createDrillActivities({ config, site, pools }: { config: Config; site: string; pools: Pools }) {
  /** Whether a worker of this site polls `queue` (worker identities name their site: src/workers/site-worker.ts). */
  async function polled(queue: string, type: proto.api.enums.v1.TaskQueueType, identityPrefix: string): Promise<boolean> {
    const { client } = Context.current();
    const r = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: queue, kind: proto.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: type,
    });
    return (r.pollers ?? []).some((p) => {
      const seen = p.lastAccessTime?.seconds ? Number(p.lastAccessTime.seconds) * 1000 : 0;
      return p.identity?.startsWith(identityPrefix) && Date.now() - seen < POLLER_FRESH_MS;
    });
  }

  async function reportingReady(): Promise<SurvivorCheck['reporting']> {
    const url = `${reportingUrl(config, site)}/health/ready`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { canServe?: boolean; error?: string; checkedMs?: number };
      return body.canServe === true
        ? { canServe: true, detail: `its report queries ran in ${body.checkedMs} ms` }
        : { canServe: false, detail: `/health/ready answers ${res.status}: ${body.error ?? 'no reason given'}` };
    } catch (e) {
      // The result goes into workflow history, which carries no URLs: sites.<site>.reportingUrl says where.
      return { canServe: false, detail: `it does not answer /health/ready (${(e as Error).name})` };
    }
  }

  return {
    async drillSurvivor(input: { site: string; drilled: string }): Promise<SurvivorCheck> {
      if (input.site !== site) throw ApplicationFailure.nonRetryable(`drill for site ${input.site} reached the worker of site ${site}`);
      const members: SurvivorCheck['members'] = {};
      for (const { member, cursor, rows } of await membersBehind(config, pools, site)) {
        members[member.id] = { site: member.site, rowsBehind: rows, state: !cursor ? 'never-read' : rows === null ? 'unreachable' : 'ok' };
      }
      const { TASK_QUEUE_TYPE_WORKFLOW: WORKFLOW, TASK_QUEUE_TYPE_ACTIVITY: ACTIVITY } = proto.api.enums.v1.TaskQueueType;
      const pollers = {
        control: await polled(CONTROL_QUEUE, WORKFLOW, `twinmart-${site}-control@`),
        site: await polled(siteQueue(site), ACTIVITY, `twinmart-${site}@`),
      };
      let temporal: SurvivorCheck['temporal'] = { mode: 'shared' };
      if (siteClusters(config).some((c) => c.site === site)) {
        const r = await replicationAt(Context.current().client, config, site, [DR_WORKFLOW_ID, etlWorkflowId(site)]);
        temporal = { mode: 'per-site', ...r };
      }
      return { site, members, reporting: await reportingReady(), pollers, temporal };
    },
  };
}

export type DrillActivities = ReturnType<typeof createDrillActivities>;
