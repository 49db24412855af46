/**
 * Drains the work queues the loads filled: dirty calls into interaction_fact and
 * ag_queue_15min, dirty agents into agent_state_fact, changed sessions into data gaps.
 * Each batch commits on its own, so a crash loses at most one batch of work, which the
 * queue still holds.
 */
import type { Pool } from 'pg';
import { withTransaction } from '../db';
import {
  claimDirtyAgents,
  claimDirtyCalls,
  markCallDiscards,
  refreshDataGaps,
  refreshQueueIntervals,
  upsertAgentStates,
  upsertInteractionFacts,
} from '../mart/facts';

export interface TransformOptions {
  batch: number;
  serviceLevelSeconds: number;
  maxCallSeconds: number;
  onBatch?: (done: TransformResult) => void;
}

export interface TransformResult {
  calls: number;
  facts: number;
  intervals: number;
  agents: number;
  agentSpans: number;
  discarded: number;
  gaps: number;
  batches: number;
}

export async function transformSite(mart: Pool, options: TransformOptions): Promise<TransformResult> {
  const r: TransformResult = { calls: 0, facts: 0, intervals: 0, agents: 0, agentSpans: 0, discarded: 0, gaps: 0, batches: 0 };
  for (;;) {
    const claimed = await withTransaction(mart, async (c) => {
      const calls = await claimDirtyCalls(c, options.batch);
      if (calls) {
        r.discarded += await markCallDiscards(c, options.maxCallSeconds);
        r.facts += await upsertInteractionFacts(c);
        r.intervals += await refreshQueueIntervals(c, options.serviceLevelSeconds);
      }
      const agents = await claimDirtyAgents(c, options.batch);
      if (agents) r.agentSpans += await upsertAgentStates(c);
      r.calls += calls;
      r.agents += agents;
      return calls + agents;
    });
    if (!claimed) break;
    r.batches += 1;
    options.onBatch?.(r);
  }
  r.gaps = await withTransaction(mart, (c) => refreshDataGaps(c));
  return r;
}
