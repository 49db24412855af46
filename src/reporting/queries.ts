/**
 * The reports of the reporting service (docs/reporting-api.md): one function
 * per report, each a read of the site's mart with every value as a bind parameter.
 * Numbers are cast in SQL to types `pg` hands back as JS numbers (int4, float8), and
 * text is ordered with collation "C" so that twin marts created with different
 * collations list rows in the same order.
 */
import type { Queryable } from '../db';

/** A half-open time range [from, to). */
export interface Range {
  from: Date;
  to: Date;
}

/** How /api/interactions finds calls: one call by id, or the calls of one caller number. */
export type InteractionLookup = { callId: string } | { ani: string; range: Range | null };

/** Agent states reported by agent-summary (the states the transform writes; logout opens no span). */
export const AGENT_STATES = ['logged_in', 'ready', 'not_ready', 'after_call_work'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

export interface QueueFigures {
  offered: number;
  answered: number;
  abandoned: number;
  answeredInSl: number;
  serviceLevelPct: number | null;
  asaSeconds: number | null;
  ahtSeconds: number | null;
}

export interface QueueIntervalRow extends QueueFigures {
  queue: string;
  intervalStart: string;
}

export interface QueueSummary {
  rows: QueueIntervalRow[];
  totals: QueueFigures;
  /** More rows matched than MAX_REPORT_ROWS; the totals still cover all of them. */
  truncated: boolean;
}

export interface AgentSummaryRow {
  agentId: string;
  callsHandled: number;
  talkSeconds: number;
  stateSeconds: Record<AgentState, number>;
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
  ani: string | null;
  events: InteractionEvent[];
}

/** The most calls one interactions answer lists (newest first). */
export const MAX_INTERACTIONS = 100;
/** The most events listed per call: a call with a runaway seq must not make an answer of any size. */
export const MAX_CALL_EVENTS = 1_000;
/**
 * The most rows of a queue or agent summary (a month of 15-minute intervals is 2,976 per
 * queue): an answer stays a size a browser renders, whatever the mart holds.
 */
export const MAX_REPORT_ROWS = 10_000;

/** Rows read one past a limit, cut to it: whether there were more. */
function bounded<T>(rows: T[], limit: number): { rows: T[]; truncated: boolean } {
  return rows.length > limit ? { rows: rows.slice(0, limit), truncated: true } : { rows, truncated: false };
}

interface QueueCounts {
  offered: number;
  answered: number;
  abandoned: number;
  answered_in_sl: number;
  total_wait_s: number;
  total_talk_s: number;
}

/** Ratios from counts, so that totals are computed from summed counts, never averaged averages. */
function queueFigures(c: QueueCounts): QueueFigures {
  return {
    offered: c.offered,
    answered: c.answered,
    abandoned: c.abandoned,
    answeredInSl: c.answered_in_sl,
    serviceLevelPct: c.offered === 0 ? null : (100 * c.answered_in_sl) / c.offered,
    asaSeconds: c.answered === 0 ? null : c.total_wait_s / c.answered,
    ahtSeconds: c.answered === 0 ? null : c.total_talk_s / c.answered,
  };
}

/**
 * Per queue and 15-minute interval starting in the range, and the totals over them. The
 * empty grouping set yields the totals row (also when no interval matches), summed in
 * numeric so the totals carry no float rounding of the per-interval values.
 */
export async function queueSummary(db: Queryable, range: Range, queues: string[] | null): Promise<QueueSummary> {
  const { rows } = await db.query<QueueCounts & { queue: string | null; interval_start: Date | null; is_total: boolean }>(
    `select q.queue,
            q.interval_start,
            grouping(q.queue, q.interval_start) <> 0 as is_total,
            coalesce(sum(q.offered), 0)::integer as offered,
            coalesce(sum(q.answered), 0)::integer as answered,
            coalesce(sum(q.abandoned), 0)::integer as abandoned,
            coalesce(sum(q.answered_in_sl), 0)::integer as answered_in_sl,
            coalesce(sum(q.total_wait_s), 0)::float8 as total_wait_s,
            coalesce(sum(q.total_talk_s), 0)::float8 as total_talk_s
       from ag_queue_15min q
      where q.interval_start >= $1::timestamptz
        and q.interval_start < $2::timestamptz
        and ($3::text[] is null or q.queue = any($3::text[]))
      group by grouping sets ((q.queue, q.interval_start), ())
      order by is_total desc, q.interval_start, q.queue collate "C"
      limit $4::integer + 2`,
    [range.from, range.to, queues, MAX_REPORT_ROWS],
  );
  const totals = rows[0];
  if (!totals?.is_total) throw new Error('queue summary: the totals row of the empty grouping set is missing');
  const intervals = bounded(rows.slice(1), MAX_REPORT_ROWS);
  return {
    rows: intervals.rows.map((r) => ({ queue: r.queue!, intervalStart: r.interval_start!.toISOString(), ...queueFigures(r) })),
    totals: queueFigures(totals),
    truncated: intervals.truncated,
  };
}

/**
 * Per agent: calls answered in the range and their talk time, and the seconds of each
 * state span clipped to the range (a span still open ends now, or at the range's end).
 * An agent appears when it has either calls or state time in the range. The spans that
 * overlap it are the points (start, end) of the quadrant start <= to, end >= from, which
 * their index (`span_point`, migration 004) finds, the bounds in seconds by the index's
 * own `epoch_seconds`; seconds as float8 may round, so the timestamps themselves then decide.
 */
export async function agentSummary(
  db: Queryable,
  range: Range,
  agents: string[] | null,
): Promise<{ rows: AgentSummaryRow[]; truncated: boolean }> {
  const { rows } = await db.query<{ agent_id: string; calls_handled: number; talk_s: number } & Record<AgentState, number>>(
    `with calls as (
       select f.agent_id, count(*)::integer as calls_handled, coalesce(sum(f.talk_s), 0)::float8 as talk_s
         from interaction_fact f
        where f.answer_ts >= $1::timestamptz
          and f.answer_ts < $2::timestamptz
          and f.agent_id is not null
          and ($3::text[] is null or f.agent_id = any($3::text[]))
        group by f.agent_id
     ), spans as (
       select s.agent_id, s.state,
              extract(epoch from least(coalesce(s.end_ts, now()), $2::timestamptz) - greatest(s.start_ts, $1::timestamptz)) as seconds
         from agent_state_fact s
        where span_point(s.start_ts, s.end_ts)
                <@ box(point('-infinity', epoch_seconds($1::timestamptz)), point(epoch_seconds($2::timestamptz), 'infinity'))
          and s.start_ts < $2::timestamptz
          and (s.end_ts is null or s.end_ts > $1::timestamptz)
          and ($3::text[] is null or s.agent_id = any($3::text[]))
     ), states as (
       select agent_id,
              coalesce(sum(seconds) filter (where state = 'logged_in'), 0)::float8 as logged_in,
              coalesce(sum(seconds) filter (where state = 'ready'), 0)::float8 as ready,
              coalesce(sum(seconds) filter (where state = 'not_ready'), 0)::float8 as not_ready,
              coalesce(sum(seconds) filter (where state = 'after_call_work'), 0)::float8 as after_call_work
         from spans
        where seconds > 0
        group by agent_id
     )
     select agent_id,
            coalesce(c.calls_handled, 0)::integer as calls_handled,
            coalesce(c.talk_s, 0)::float8 as talk_s,
            coalesce(st.logged_in, 0)::float8 as logged_in,
            coalesce(st.ready, 0)::float8 as ready,
            coalesce(st.not_ready, 0)::float8 as not_ready,
            coalesce(st.after_call_work, 0)::float8 as after_call_work
       from calls c
       full join states st using (agent_id)
      order by agent_id collate "C"
      limit $4::integer + 1`,
    [range.from, range.to, agents, MAX_REPORT_ROWS],
  );
  const agentRows = bounded(rows, MAX_REPORT_ROWS);
  return {
    rows: agentRows.rows.map((r) => ({
      agentId: r.agent_id,
      callsHandled: r.calls_handled,
      talkSeconds: r.talk_s,
      stateSeconds: Object.fromEntries(AGENT_STATES.map((s) => [s, r[s]])) as Record<AgentState, number>,
    })),
    truncated: agentRows.truncated,
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
  ani: string | null;
}

/** The fact columns and the call's ani: that of its first usable event that has one. */
const FACT_COLUMNS = `f.call_id::text as call_id, f.source_id, f.media, f.direction, f.queue, f.agent_id,
       f.start_ts, f.answer_ts, f.end_ts, f.outcome, f.wait_s::float8 as wait_s, f.talk_s::float8 as talk_s,
       f.event_count, a.ani`;
const CALL_ANI = `left join lateral (
         select e.ani from stg_call_event e
          where e.call_id = f.call_id and e.discard_reason is null and e.ani is not null
          order by e.seq
          limit 1) a on true`;

async function factsByCallId(db: Queryable, callId: string): Promise<FactRow[]> {
  const { rows } = await db.query<FactRow>(
    `select ${FACT_COLUMNS}
       from interaction_fact f
       ${CALL_ANI}
      where f.call_id = $1::uuid`,
    [callId],
  );
  return rows;
}

/** Calls whose ani is the given number, newest first; the ani index finds the candidates. */
async function factsByAni(db: Queryable, ani: string, range: Range | null): Promise<FactRow[]> {
  const { rows } = await db.query<FactRow>(
    `select ${FACT_COLUMNS}
       from interaction_fact f
       ${CALL_ANI}
      where f.call_id in (select e.call_id from stg_call_event e where e.ani = $1::text and e.discard_reason is null)
        and a.ani = $1::text
        and ($2::timestamptz is null or f.start_ts >= $2::timestamptz)
        and ($3::timestamptz is null or f.start_ts < $3::timestamptz)
      order by f.start_ts desc, f.call_id desc
      limit $4::integer + 1`,
    [ani, range?.from ?? null, range?.to ?? null, MAX_INTERACTIONS],
  );
  return rows;
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
 * One call by id, or the newest calls of one caller number, each with its events;
 * `truncated` when there were more than MAX_INTERACTIONS calls or a call had more than
 * MAX_CALL_EVENTS events.
 */
export async function interactions(db: Queryable, lookup: InteractionLookup): Promise<{ rows: InteractionRow[]; truncated: boolean }> {
  const found = bounded('callId' in lookup ? await factsByCallId(db, lookup.callId) : await factsByAni(db, lookup.ani, lookup.range), MAX_INTERACTIONS);
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
    ani: f.ani,
    events: callEvents(f.call_id),
  }));
  return { rows, truncated };
}
