/**
 * Drains the work queues the loads filled: dirty calls into interaction_fact and
 * ag_queue_15min, dirty agents into agent_state_fact, changed sessions into data gaps.
 * Each batch commits on its own, so a crash loses at most one batch of work, which the
 * queue still holds.
 */
import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../db';
import {
  applyQueueDeltas,
  claimDirtyAgents,
  claimDirtyCalls,
  dimensionsChanged,
  DIMENSION_QUEUE_CHUNK,
  queueCallsForDimensions,
  queueEndlessCalls,
  readDirtyCallEvents,
  recordDimensions,
  refreshStatistics,
  refreshDataGaps,
  upsertAgentStates,
  upsertInteractionFacts,
  type QueueRules,
} from '../mart/facts';

/** Held by each transform batch, and by each retention batch (src/mart/retention.ts), which must not interleave with one. */
export const TRANSFORM_LOCK = `hashtext('twinmart.transform')`;

export interface TransformOptions {
  batch: number;
  queueRules: QueueRules;
  maxCallSeconds: number;
  /** The attrs keys kept as dimensions (etl.dimensions). */
  dimensions: string[];
  /** Calls queued per transaction when the dimensions changed (default DIMENSION_QUEUE_CHUNK). */
  queueChunk?: number;
  onBatch?: (done: TransformResult) => void;
  /**
   * Stops the transform: the running batch's statement is cancelled and rolls back (its
   * calls stay queued for the next transform), and what was committed is returned.
   */
  signal?: AbortSignal;
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
  await refreshStatistics(mart);
  await queueEndlessCalls(mart, options.maxCallSeconds);
  // Null once the signal stopped the batch (rolled back; its work stays queued).
  const batch = <T>(work: (c: PoolClient) => Promise<T>): Promise<T | null> =>
    withTransaction(mart, async (c) => {
      // One transform at a time per mart (a retried activity may overlap a late one): the
      // aggregates move by deltas, which two transforms of the same call would count twice.
      await c.query(`select pg_advisory_xact_lock(${TRANSFORM_LOCK})`);
      return work(c);
    }, { signal: options.signal }).catch((e: unknown) => {
      if (options.signal?.aborted) return null;
      throw e;
    });
  // Calls computed with other etl.dimensions go into the queue the loop below drains, a
  // chunk per transaction, each reported as progress. The keys are recorded only once all
  // are queued: a transform stopped before that queues them all again (on conflict, nothing).
  // The check itself is one read outside the lock, as it runs every cycle; two transforms
  // that both see a change queue the same calls twice, which changes nothing.
  if (await dimensionsChanged(mart, options.dimensions)) {
    let after: string | null = null;
    do {
      const chunk: { next: string | null } | null = await batch((c) => queueCallsForDimensions(c, after, options.queueChunk ?? DIMENSION_QUEUE_CHUNK));
      if (!chunk) return r;
      after = chunk.next;
      options.onBatch?.(r);
    } while (after !== null);
    if ((await batch((c) => recordDimensions(c, options.dimensions))) === null) return r;
  }
  for (;;) {
    if (options.signal?.aborted) return r;
    // Calls and agents commit apart: the queues are independent, and a call's fact need
    // not wait for the agent spans to be visible.
    const calls = await batch(async (c) => {
      const done = { calls: await claimDirtyCalls(c, options.batch), discarded: 0, facts: 0, intervals: 0 };
      if (done.calls) {
        done.discarded = await readDirtyCallEvents(c, options.maxCallSeconds, options.dimensions);
        done.facts = await upsertInteractionFacts(c, options.queueRules, options.maxCallSeconds);
        done.intervals = await applyQueueDeltas(c);
      }
      return done;
    });
    if (!calls) return r;
    // Counted once committed, so a rolled-back batch is not counted twice.
    for (const k of ['calls', 'discarded', 'facts', 'intervals'] as const) r[k] += calls[k];
    const agents = await batch(async (c) => {
      const count = await claimDirtyAgents(c, options.batch);
      return { agents: count, agentSpans: count ? await upsertAgentStates(c) : 0 };
    });
    if (!agents) return r;
    r.agents += agents.agents;
    r.agentSpans += agents.agentSpans;
    if (!calls.calls && !agents.agents) break;
    r.batches += 1;
    options.onBatch?.(r);
  }
  r.gaps = await withTransaction(mart, (c) => refreshDataGaps(c));
  return r;
}
