/**
 * retentionWorkflow: started by each site's schedule `twinmart-retention-<site>`, purges
 * that site's mart step by step in bounded batches (src/mart/retention.ts, rules in
 * docs/retention.md), then analyzes the tables it emptied. Short-lived: a run that stops
 * early (the ETL kept the transform lock, or MAX_BATCHES) leaves the rest to the next run.
 * History holds steps, cutoffs and counts only: where a step goes on from is kept in the
 * mart (ctl_retention_position), since it is a call's key.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RetentionActivities } from '../activities/retention';
import type { RetentionCutoffs } from '../mart/retention';
import { siteQueue } from './names';
import { siteOf } from './site-input';

/** In this order: staging before facts, so no fact goes while its call's events could still rebuild it. */
export const RETENTION_STEPS = [
  'call-events',
  'agent-floors',
  'agent-events',
  'sessions',
  'load-audit',
  'discards',
  'interaction-facts',
  'queue-aggregates',
  'agent-facts',
] as const;
export type RetentionStep = (typeof RETENTION_STEPS)[number];

export interface RetentionInput {
  site: string;
}

export interface RetentionResult {
  site: string;
  cutoffs: RetentionCutoffs;
  /** Rows deleted, by table. */
  purged: Record<string, number>;
  batches: number;
  /** The step at which the run gave way to the ETL (the transform lock stayed taken), else null. */
  skippedAt: RetentionStep | null;
  /** The run reached MAX_BATCHES with more to do. */
  unfinished: boolean;
}

/** Three history events a batch: a run stays well short of where it would have to continue as new. */
const MAX_BATCHES = 300;

export async function retentionWorkflow(input: RetentionInput): Promise<RetentionResult> {
  const site = siteOf('retentionWorkflow', input);
  const acts = proxyActivities<RetentionActivities>({
    taskQueue: siteQueue(site),
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
  });
  const cutoffs = await acts.retentionCutoffs({ site });
  const result: RetentionResult = { site, cutoffs, purged: {}, batches: 0, skippedAt: null, unfinished: false };
  steps: for (const step of RETENTION_STEPS) {
    let resume = false;
    for (;;) {
      if (result.batches >= MAX_BATCHES) {
        result.unfinished = true;
        break steps;
      }
      const batch = await acts.purgeBatch({ site, step, cutoffs, resume });
      result.batches += 1;
      if (batch.busy) {
        result.skippedAt = step;
        break steps;
      }
      for (const [table, n] of Object.entries(batch.purged)) result.purged[table] = (result.purged[table] ?? 0) + n;
      if (!batch.full) break;
      resume = true;
    }
  }
  const emptied = Object.keys(result.purged).filter((table) => result.purged[table]! > 0);
  if (emptied.length) await acts.analyzePurged({ site, tables: emptied });
  return result;
}
