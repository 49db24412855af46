/**
 * The reports of the reporting service (docs/reporting-api.md): one function
 * per report, each a read of the site's mart with every value as a bind parameter.
 * Numbers are cast in SQL to types `pg` hands back as JS numbers (int4, float8), and
 * text is ordered with collation "C" so that twin marts created with different
 * collations list rows in the same order.
 */
import type { Queryable } from '../db';
import { bucketStart, bucketsOverlapping, type Bucketing } from './buckets';
import { queueFigures, type QueueCounts, type QueueFigures, type ServiceLevelFormula } from './figures';
import type { QueueRules } from '../mart/facts';
import { FACT_INTERVAL, queueCountsOfFacts } from '../mart/queue-counts';
import { dimensionCondition, type DimensionFilters } from './dimensions';

/** A half-open time range [from, to). */
export interface Range {
  from: Date;
  to: Date;
}

/** How /api/interactions finds calls: one call by id, the calls of one caller number, or of one queue in a range. */
export type InteractionLookup = { callId: string } | { ani: string; range: Range | null } | { queue: string; range: Range };

/** Agent states reported by agent-summary (the states the transform writes; logout opens no span). */
export const AGENT_STATES = ['logged_in', 'ready', 'not_ready', 'after_call_work'] as const;
export type AgentState = (typeof AGENT_STATES)[number];
/** The key of not-ready time without a reason in `notReadyByReason`. */
export const NO_REASON = '(none)';

export interface QueueIntervalRow extends QueueFigures {
  queue: string;
  intervalStart: string;
  /** With groupBy: the dimension and the rows' value of it (null: calls without it). */
  dimension?: { key: string; value: string | null };
}

export interface QueueSummary {
  rows: QueueIntervalRow[];
  totals: QueueFigures;
  /** More rows matched than MAX_REPORT_ROWS; the totals still cover all of them. */
  truncated: boolean;
}

export interface AgentFigures {
  callsHandled: number;
  talkSeconds: number;
  handleSeconds: number;
  ahtSeconds: number | null;
  occupancyPct: number | null;
  stateSeconds: Record<AgentState, number>;
  notReadyByReason: Record<string, number>;
}

export interface AgentSummaryRow extends AgentFigures {
  agentId: string;
  intervalStart: string;
}

export interface AgentSummary {
  rows: AgentSummaryRow[];
  totals: AgentFigures;
  /** More rows matched than MAX_REPORT_ROWS; the totals still cover all of them. */
  truncated: boolean;
}

export interface AgentStateSpan {
  agentId: string;
  sourceId: string;
  state: string;
  reason: string | null;
  /** The span clipped to the range (an open span ends now, or at the range's end). */
  startTs: string;
  endTs: string;
  seconds: number;
  /** The whole span; spanEndTs is null while it is open. */
  spanStartTs: string;
  spanEndTs: string | null;
}

export interface InteractionEvent {
  seq: number;
  event: string;
  ts: string;
  queue: string | null;
  agentId: string | null;
}

export interface InteractionRow {
  callId: string;
  sourceId: string;
  media: string;
  direction: string;
  queue: string | null;
  agentId: string | null;
  startTs: string;
  answerTs: string | null;
  endTs: string | null;
  outcome: string;
  waitSeconds: number | null;
  talkSeconds: number | null;
  eventCount: number;
  /** The call's configured attrs (etl.dimensions) as the transform kept them. */
  dims: Record<string, string>;
  ani: string | null;
  events: InteractionEvent[];
}

/** The most calls one interactions answer lists by ani (newest first). */
export const MAX_INTERACTIONS = 100;
/** The most calls listed by queue: the drill from a busy interval or hour should not stop at 100. */
export const MAX_QUEUE_CALLS = 1_000;
/** The most events listed per call: a call with a runaway seq must not make an answer of any size. */
export const MAX_CALL_EVENTS = 1_000;
/**
 * The most rows of a queue or agent summary or an agent timeline (a month of 15-minute
 * intervals is 2,976 per queue): an answer stays a size a browser renders, whatever the mart holds.
 */
export const MAX_REPORT_ROWS = 10_000;

/** Rows read one past a limit, cut to it: whether there were more. */
function bounded<T>(rows: T[], limit: number): { rows: T[]; truncated: boolean } {
  return rows.length > limit ? { rows: rows.slice(0, limit), truncated: true } : { rows, truncated: false };
}

/**
 * A queue summary by dimension (etl.dimensions): filtered by dims, grouped by one, or both.
 * `rules` are the thresholds the aggregates count with, so the figures are the same.
 */
export interface QueueSlice {
  filters: DimensionFilters;
  groupBy: string | null;
  rules: QueueRules;
}

/**
 * The queue intervals starting in [$1, $2) of queues $3 (all when null), as rows of
 * ag_queue_15min with a column `dim`. By dimension they are counted from interaction_fact
 * as the transform counts them (src/mart/queue-counts.ts): ag_queue_15min keeps no dims.
 */
function queueIntervals(slice: QueueSlice | null, params: unknown[]): string {
  if (!slice) {
    return `select a.*, null::text as dim from ag_queue_15min a
             where a.interval_start >= $1::timestamptz and a.interval_start < $2::timestamptz
               and ($3::text[] is null or a.queue = any($3::text[]))`;
  }
  const p = (value: unknown): string => `$${params.push(value)}`;
  const { rules } = slice;
  return queueCountsOfFacts({
    facts: 'interaction_fact f',
    // start_ts bounds the interval's range for the index; the interval itself decides.
    where: `f.start_ts >= $1::timestamptz - interval '15 minutes' and f.start_ts < $2::timestamptz
            and ${FACT_INTERVAL} >= $1::timestamptz and ${FACT_INTERVAL} < $2::timestamptz
            and ($3::text[] is null or f.queue = any($3::text[]))
            and ${dimensionCondition(slice.filters, params)}`,
    sign: '1',
    serviceLevelSeconds: `${p(rules.serviceLevelSeconds)}::numeric`,
    queueServiceLevelSeconds: p(JSON.stringify(rules.queueServiceLevelSeconds)),
    shortAbandonSeconds: `${p(rules.shortAbandonSeconds)}::numeric`,
    extra: `${slice.groupBy === null ? 'null::text' : `f.dims ->> ${p(slice.groupBy)}::text`} as dim`,
  });
}

/**
 * Per queue and bucket of intervals starting in the range (and per value of the grouping
 * dimension), and the totals over all of them. The empty grouping set yields the totals
 * row (also when no interval matches), summed over the intervals themselves, so the totals
 * are the same at every granularity and with or without groupBy.
 */
export async function queueSummary(
  db: Queryable,
  range: Range,
  queues: string[] | null,
  bucketing: Bucketing,
  formula: ServiceLevelFormula,
  slice: QueueSlice | null = null,
): Promise<QueueSummary> {
  const params: unknown[] = [range.from, range.to, queues, MAX_REPORT_ROWS, bucketing.tz];
  const source = queueIntervals(slice, params);
  const { rows } = await db.query<QueueCounts & { queue: string | null; bucket: Date | null; dim: string | null; is_total: boolean }>(
    `select q.queue,
            q.bucket,
            q.dim,
            grouping(q.queue, q.bucket, q.dim) <> 0 as is_total,
            coalesce(sum(q.offered), 0)::integer as offered,
            coalesce(sum(q.answered), 0)::integer as answered,
            coalesce(sum(q.abandoned), 0)::integer as abandoned,
            coalesce(sum(q.abandoned_short), 0)::integer as abandoned_short,
            coalesce(sum(q.answered_in_sl), 0)::integer as answered_in_sl,
            coalesce(sum(q.abandoned_in_sl), 0)::integer as abandoned_in_sl,
            coalesce(sum(q.total_wait_s), 0)::float8 as total_wait_s,
            coalesce(sum(q.total_talk_s), 0)::float8 as total_talk_s
       from (select a.*, ${bucketStart(bucketing.granularity, 'a.interval_start', '$5::text')} as bucket
               from (${source}) a) q
      group by grouping sets ((q.queue, q.bucket, q.dim), ())
      order by is_total desc, q.bucket, q.queue collate "C", q.dim collate "C" nulls first
      limit $4::integer + 2`,
    params,
  );
  const totals = rows[0];
  if (!totals?.is_total) throw new Error('queue summary: the totals row of the empty grouping set is missing');
  const intervals = bounded(rows.slice(1), MAX_REPORT_ROWS);
  const groupBy = slice?.groupBy ?? null;
  return {
    rows: intervals.rows.map((r) => ({
      queue: r.queue!,
      intervalStart: r.bucket!.toISOString(),
      ...(groupBy === null ? {} : { dimension: { key: groupBy, value: r.dim } }),
      ...queueFigures(r, formula),
    })),
    totals: queueFigures(totals, formula),
    truncated: intervals.truncated,
  };
}

/**
 * The state spans of the agents $3 (all when null) overlapping [$1, $2), as `s`. They are
 * the points (start, end) of the quadrant start <= to, end >= from, which their index
 * (span_point, migration 004) finds, the bounds in seconds by the index's own
 * epoch_seconds; seconds as float8 may round, so the timestamps themselves then decide.
 */
const SPANS_IN_RANGE = `agent_state_fact s
        where span_point(s.start_ts, s.end_ts)
                <@ box(point('-infinity', epoch_seconds($1::timestamptz)), point(epoch_seconds($2::timestamptz), 'infinity'))
          and s.start_ts < $2::timestamptz
          and (s.end_ts is null or s.end_ts > $1::timestamptz)
          and ($3::text[] is null or s.agent_id = any($3::text[]))`;

type AgentCounts = { calls_handled: number; talk_s: number; by_reason: Record<string, number> | null } & Record<AgentState, number>;

function agentFigures(r: AgentCounts): AgentFigures {
  const handle = r.talk_s + r.after_call_work;
  // The agent states have no "busy": an agent on a call stays `ready` until after-call work.
  const available = r.ready + r.after_call_work;
  return {
    callsHandled: r.calls_handled,
    talkSeconds: r.talk_s,
    handleSeconds: handle,
    ahtSeconds: r.calls_handled === 0 ? null : handle / r.calls_handled,
    occupancyPct: available > 0 ? (100 * handle) / available : null,
    stateSeconds: Object.fromEntries(AGENT_STATES.map((s) => [s, r[s]])) as Record<AgentState, number>,
    notReadyByReason: r.by_reason ?? {},
  };
}

/**
 * Per agent and bucket: calls answered in the bucket (by their last handling agent) and
 * their talk time, and the seconds of each state span clipped to the bucket and the range
 * (a span still open ends now, or at the range's end). A row exists where an agent has
 * calls or state time in a bucket. The totals sum every row, listed or not.
 */
export async function agentSummary(db: Queryable, range: Range, agents: string[] | null, bucketing: Bucketing): Promise<AgentSummary> {
  const g = bucketing.granularity;
  const { rows } = await db.query<AgentCounts & { agent_id: string | null; bucket: Date | null; is_total: boolean }>(
    `with calls as (
       select f.agent_id, ${bucketStart(g, 'f.answer_ts', '$5::text')} as bucket, count(*) as calls_handled,
              coalesce(sum(f.talk_s), 0) as talk_s
         from interaction_fact f
        where f.answer_ts >= $1::timestamptz
          and f.answer_ts < $2::timestamptz
          and f.agent_id is not null
          and ($3::text[] is null or f.agent_id = any($3::text[]))
        group by 1, 2
     ), clipped as (
       select s.agent_id, s.state, case when s.state = 'not_ready' then coalesce(s.reason, '${NO_REASON}') end as reason,
              greatest(s.start_ts, $1::timestamptz) as clip_start, least(coalesce(s.end_ts, now()), $2::timestamptz) as clip_end
         from ${SPANS_IN_RANGE}
     ), spans as (
       select c.agent_id, b.bucket_start as bucket, c.state, c.reason,
              sum(date_part('epoch', least(c.clip_end, b.bucket_end) - greatest(c.clip_start, b.bucket_start))) as seconds
         from clipped c
         cross join lateral (${bucketsOverlapping(g, 'c.clip_start', 'c.clip_end', '$5::text')}) b
        where least(c.clip_end, b.bucket_end) > greatest(c.clip_start, b.bucket_start)
        group by 1, 2, 3, 4
     ), states as (
       select agent_id, bucket,
              coalesce(sum(seconds) filter (where state = 'logged_in'), 0) as logged_in,
              coalesce(sum(seconds) filter (where state = 'ready'), 0) as ready,
              coalesce(sum(seconds) filter (where state = 'not_ready'), 0) as not_ready,
              coalesce(sum(seconds) filter (where state = 'after_call_work'), 0) as after_call_work,
              jsonb_object_agg(reason, seconds) filter (where state = 'not_ready') as by_reason
         from spans
        group by 1, 2
     ), per_bucket as (
       select agent_id, bucket,
              coalesce(c.calls_handled, 0) as calls_handled, coalesce(c.talk_s, 0) as talk_s,
              coalesce(st.logged_in, 0) as logged_in, coalesce(st.ready, 0) as ready,
              coalesce(st.not_ready, 0) as not_ready, coalesce(st.after_call_work, 0) as after_call_work, st.by_reason
         from calls c full join states st using (agent_id, bucket)
     )
     select true as is_total, null as agent_id, null::timestamptz as bucket,
            coalesce(sum(calls_handled), 0)::integer as calls_handled, coalesce(sum(talk_s), 0)::float8 as talk_s,
            coalesce(sum(logged_in), 0)::float8 as logged_in, coalesce(sum(ready), 0)::float8 as ready,
            coalesce(sum(not_ready), 0)::float8 as not_ready, coalesce(sum(after_call_work), 0)::float8 as after_call_work,
            (select jsonb_object_agg(reason, seconds)
               from (select reason, sum(seconds) as seconds from spans where state = 'not_ready' group by reason) t) as by_reason
       from per_bucket
     union all
     (select false, p.agent_id, p.bucket, p.calls_handled::integer, p.talk_s::float8, p.logged_in::float8, p.ready::float8,
             p.not_ready::float8, p.after_call_work::float8, p.by_reason
        from per_bucket p
       order by p.agent_id collate "C", p.bucket
       limit $4::integer + 1)`,
    [range.from, range.to, agents, MAX_REPORT_ROWS, bucketing.tz],
  );
  const totals = rows[0];
  if (!totals?.is_total) throw new Error('agent summary: the totals row is missing');
  const agentRows = bounded(rows.slice(1), MAX_REPORT_ROWS);
  return {
    rows: agentRows.rows.map((r) => ({ agentId: r.agent_id!, intervalStart: r.bucket!.toISOString(), ...agentFigures(r) })),
    totals: agentFigures(totals),
    truncated: agentRows.truncated,
  };
}

/** One agent's state spans overlapping the range, clipped to it, in time order. */
export async function agentStates(db: Queryable, agent: string, range: Range): Promise<{ rows: AgentStateSpan[]; truncated: boolean }> {
  const { rows } = await db.query<{
    agent_id: string; source_id: string; state: string; reason: string | null;
    clip_start: Date; clip_end: Date; seconds: number; start_ts: Date; end_ts: Date | null;
  }>(
    `select * from (
       select s.agent_id, s.source_id, s.seq, s.state, s.reason, s.start_ts, s.end_ts,
              greatest(s.start_ts, $1::timestamptz) as clip_start,
              least(coalesce(s.end_ts, now()), $2::timestamptz) as clip_end,
              extract(epoch from least(coalesce(s.end_ts, now()), $2::timestamptz) - greatest(s.start_ts, $1::timestamptz))::float8
                as seconds
         from ${SPANS_IN_RANGE}) s
      where s.seconds > 0
      order by s.start_ts, s.source_id collate "C", s.seq
      limit $4::integer + 1`,
    [range.from, range.to, [agent], MAX_REPORT_ROWS],
  );
  const spans = bounded(rows, MAX_REPORT_ROWS);
  return {
    rows: spans.rows.map((r) => ({
      agentId: r.agent_id,
      sourceId: r.source_id,
      state: r.state,
      reason: r.reason,
      startTs: r.clip_start.toISOString(),
      endTs: r.clip_end.toISOString(),
      seconds: r.seconds,
      spanStartTs: r.start_ts.toISOString(),
      spanEndTs: r.end_ts?.toISOString() ?? null,
    })),
    truncated: spans.truncated,
  };
}

interface FactRow {
  call_id: string;
  source_id: string;
  media: string;
  direction: string;
  queue: string | null;
  agent_id: string | null;
  start_ts: Date;
  answer_ts: Date | null;
  end_ts: Date | null;
  outcome: string;
  wait_s: number | null;
  talk_s: number | null;
  event_count: number;
  dims: Record<string, string>;
  ani: string | null;
}

/** The fact columns and the call's ani: that of its first usable event that has one. */
const FACT_COLUMNS = `f.call_id::text as call_id, f.source_id, f.media, f.direction, f.queue, f.agent_id,
       f.start_ts, f.answer_ts, f.end_ts, f.outcome, f.wait_s::float8 as wait_s, f.talk_s::float8 as talk_s,
       f.event_count, f.dims, a.ani`;
const CALL_ANI = `left join lateral (
         select e.ani from stg_call_event e
          where e.call_id = f.call_id and e.discard_reason is null and e.ani is not null
          order by e.seq
          limit 1) a on true`;

async function factsByCallId(db: Queryable, callId: string, filters: DimensionFilters): Promise<FactRow[]> {
  const params: unknown[] = [callId];
  const { rows } = await db.query<FactRow>(
    `select ${FACT_COLUMNS}
       from interaction_fact f
       ${CALL_ANI}
      where f.call_id = $1::uuid
        and ${dimensionCondition(filters, params)}`,
    params,
  );
  return rows;
}

/** Calls whose ani is the given number, newest first; the ani index finds the candidates. */
async function factsByAni(db: Queryable, ani: string, range: Range | null, filters: DimensionFilters): Promise<FactRow[]> {
  const params: unknown[] = [ani, range?.from ?? null, range?.to ?? null, MAX_INTERACTIONS];
  const { rows } = await db.query<FactRow>(
    `select ${FACT_COLUMNS}
       from interaction_fact f
       ${CALL_ANI}
      where f.call_id in (select e.call_id from stg_call_event e where e.ani = $1::text and e.discard_reason is null)
        and a.ani = $1::text
        and ($2::timestamptz is null or f.start_ts >= $2::timestamptz)
        and ($3::timestamptz is null or f.start_ts < $3::timestamptz)
        and ${dimensionCondition(filters, params)}
      order by f.start_ts desc, f.call_id desc
      limit $4::integer + 1`,
    params,
  );
  return rows;
}

/** The calls of one queue that started in the range, newest first (index interaction_fact_queue_start). */
async function factsByQueue(db: Queryable, queue: string, range: Range, filters: DimensionFilters): Promise<FactRow[]> {
  const params: unknown[] = [queue, range.from, range.to, MAX_QUEUE_CALLS];
  const { rows } = await db.query<FactRow>(
    `select ${FACT_COLUMNS}
       from interaction_fact f
       ${CALL_ANI}
      where f.queue = $1::text
        and f.start_ts >= $2::timestamptz
        and f.start_ts < $3::timestamptz
        and ${dimensionCondition(filters, params)}
      order by f.start_ts desc, f.call_id desc
      limit $4::integer + 1`,
    params,
  );
  return rows;
}

/** The facts a lookup finds among those matching the dimension filters, and the most it lists. */
async function lookUp(db: Queryable, lookup: InteractionLookup, filters: DimensionFilters): Promise<{ rows: FactRow[]; truncated: boolean }> {
  if ('callId' in lookup) return bounded(await factsByCallId(db, lookup.callId, filters), MAX_INTERACTIONS);
  if ('ani' in lookup) return bounded(await factsByAni(db, lookup.ani, lookup.range, filters), MAX_INTERACTIONS);
  return bounded(await factsByQueue(db, lookup.queue, lookup.range, filters), MAX_QUEUE_CALLS);
}

/** The usable staged events of the given calls, in seq order per call, at most MAX_CALL_EVENTS + 1 each. */
async function eventsOf(db: Queryable, callIds: string[]): Promise<Map<string, InteractionEvent[]>> {
  const byCall = new Map<string, InteractionEvent[]>(callIds.map((id) => [id, []]));
  if (!callIds.length) return byCall;
  const { rows } = await db.query<{ call_id: string; seq: number; event: string; event_ts: Date; queue: string | null; agent_id: string | null }>(
    `select c.call_id::text as call_id, e.seq, e.event, e.event_ts, e.queue, e.agent_id
       from unnest($1::uuid[]) as c(call_id)
       cross join lateral (
         select s.seq, s.event, s.event_ts, s.queue, s.agent_id
           from stg_call_event s
          where s.call_id = c.call_id
            and s.discard_reason is null
          order by s.seq
          limit $2::integer + 1) e
      order by c.call_id, e.seq`,
    [callIds, MAX_CALL_EVENTS],
  );
  for (const r of rows) {
    byCall.get(r.call_id)!.push({ seq: r.seq, event: r.event, ts: r.event_ts.toISOString(), queue: r.queue, agentId: r.agent_id });
  }
  return byCall;
}

/**
 * One call by id, or the newest calls of one caller number or of one queue in a range,
 * those with the dimension values of `filters`, each with its events; `truncated` when
 * there were more calls than listed (MAX_INTERACTIONS, by queue MAX_QUEUE_CALLS) or a call
 * had more than MAX_CALL_EVENTS events.
 */
export async function interactions(
  db: Queryable,
  lookup: InteractionLookup,
  filters: DimensionFilters = {},
): Promise<{ rows: InteractionRow[]; truncated: boolean }> {
  const found = await lookUp(db, lookup, filters);
  const events = await eventsOf(db, found.rows.map((f) => f.call_id));
  let truncated = found.truncated;
  const callEvents = (callId: string): InteractionEvent[] => {
    const cut = bounded(events.get(callId)!, MAX_CALL_EVENTS);
    truncated ||= cut.truncated;
    return cut.rows;
  };
  const rows = found.rows.map((f) => ({
    callId: f.call_id,
    sourceId: f.source_id,
    media: f.media,
    direction: f.direction,
    queue: f.queue,
    agentId: f.agent_id,
    startTs: f.start_ts.toISOString(),
    answerTs: f.answer_ts?.toISOString() ?? null,
    endTs: f.end_ts?.toISOString() ?? null,
    outcome: f.outcome,
    waitSeconds: f.wait_s,
    talkSeconds: f.talk_s,
    eventCount: f.event_count,
    dims: f.dims,
    ani: f.ani,
    events: callEvents(f.call_id),
  }));
  return { rows, truncated };
}
