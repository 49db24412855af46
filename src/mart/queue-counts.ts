/**
 * The counts of ag_queue_15min from the facts, in one place: the transform moves the
 * aggregates by them, and a report filtered or grouped by dimension (which the aggregates
 * do not keep) reads them from interaction_fact, so both count the same calls the same way.
 * A call counts as answered or abandoned once it has ended; until then it is only offered.
 */

/** The 15-minute interval of a fact, as ag_queue_15min keys it. */
export const FACT_INTERVAL = `date_bin('15 minutes', f.start_ts, timestamptz '2000-01-01 00:00:00+00')`;

export interface QueueCountsSql {
  /** The facts, as `f` (a table or join). */
  facts: string;
  /** A condition on `f`, besides having a queue. */
  where: string;
  /** Placeholders (or literals) of the multiplier (+1/-1), etl.serviceLevelSeconds, etl.queueServiceLevelSeconds (jsonb) and etl.shortAbandonSeconds. */
  sign: string;
  serviceLevelSeconds: string;
  queueServiceLevelSeconds: string;
  shortAbandonSeconds: string;
  /** One more grouping column after queue and interval_start (such as a dimension's value), or none. */
  extra?: string;
}

/** SQL of the rows (queue, interval_start, [extra,] offered, …, total_talk_s), named as ag_queue_15min's columns. */
export function queueCountsOfFacts(q: QueueCountsSql): string {
  return `select f.queue, ${FACT_INTERVAL} as interval_start${q.extra ? `, ${q.extra}` : ''},
            ${q.sign} * count(*) as offered,
            ${q.sign} * count(*) filter (where f.answered) as answered,
            ${q.sign} * count(*) filter (where f.outcome = 'abandoned') as abandoned,
            ${q.sign} * count(*) filter (where f.outcome = 'abandoned' and f.wait_s < ${q.shortAbandonSeconds}) as abandoned_short,
            ${q.sign} * count(*) filter (where f.answered and f.wait_s <= f.threshold) as answered_in_sl,
            ${q.sign} * count(*) filter (where f.outcome = 'abandoned' and f.wait_s >= ${q.shortAbandonSeconds}
                                              and f.wait_s <= f.threshold) as abandoned_in_sl,
            ${q.sign} * coalesce(sum(f.wait_s) filter (where f.answered), 0) as total_wait_s,
            ${q.sign} * coalesce(sum(f.talk_s), 0) as total_talk_s
       from (select f.*,
                    f.answer_ts is not null and f.outcome not in ('in_progress', 'incomplete') as answered,
                    coalesce((${q.queueServiceLevelSeconds}::jsonb ->> f.queue)::numeric, ${q.serviceLevelSeconds}) as threshold
               from ${q.facts}
              where f.queue is not null and ${q.where}) f
      group by 1, 2${q.extra ? ', 3' : ''}`;
}
