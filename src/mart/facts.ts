/**
 * Set-based transform of staged events into the public facts and aggregates. Each
 * function works on what the loads marked dirty, inside the caller's transaction, and
 * is idempotent: running it twice over the same staging gives the same facts.
 */
import type { PoolClient } from 'pg';
import type { Queryable } from '../db';
import { queueCountsOfFacts } from './queue-counts';

/**
 * Tables the loads grow faster than autovacuum analyzes them: it wakes once a minute and
 * may be busy elsewhere. Without statistics the transform's joins are planned as hash
 * joins over a whole table (2 s instead of 0.4 s per batch in a 1M-event catch-up).
 * Analyzing costs up to a second, so a table is analyzed again only once it has grown by
 * half or by 100,000 rows, whichever is more (at a fifth, small tables were analyzed every
 * few cycles at 5,000 events/s, a quarter of each cycle's time). Growth, not modifications:
 * each call's fact is rewritten about four times while its events arrive, and counting
 * those updates put a 0.3 to 0.6 s analyze of interaction_fact into a steady cycle every
 * few minutes at 5,000 events/s, where autovacuum analyzes the table anyway.
 */
const GROWING = ['stg_call_event', 'stg_agent_event', 'interaction_fact', 'agent_state_fact'];

/** Analyzes the growing tables that were never analyzed or grew enough since; returns their names. */
export async function refreshStatistics(client: Queryable): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `select c.relname as name
       from pg_class c
      where c.oid = any($1::regclass[])
        and (c.reltuples < 0 or pg_stat_get_live_tuples(c.oid) - c.reltuples > greatest(100000, 0.5 * c.reltuples))`,
    [GROWING],
  );
  // ANALYZE is the owner's: ctl_analyze (migration 008) runs it, skipping a table autovacuum holds.
  if (rows.length) await client.query('select ctl_analyze($1::text[])', [rows.map((r) => r.name)]);
  return rows.map((r) => r.name);
}

/**
 * Takes up to `limit` dirty calls into tmp_dirty_call (rolled back with the transaction):
 * locks them into the temp table, then deletes them by join, as claimDirtyAgents does.
 * In one `delete ... where call_id in (select ... for update skip locked)` a claim took
 * up to 28 s at 5,000 events/s while loads kept adding calls, past the activity's
 * heartbeat timeout, so a second attempt queued behind it on the transform lock.
 */
export async function claimDirtyCalls(client: PoolClient, limit: number): Promise<number> {
  await client.query('create temp table if not exists tmp_dirty_call (call_id uuid primary key) on commit delete rows');
  const { rowCount } = await client.query(
    'insert into tmp_dirty_call select call_id from etl_dirty_call limit $1 for update skip locked',
    [limit],
  );
  if (!rowCount) return 0;
  await client.query('delete from etl_dirty_call e using tmp_dirty_call t where e.call_id = t.call_id');
  // Temp tables are never analyzed by autovacuum; without statistics the joins against
  // staging and facts may be planned as scans of those whole tables.
  await client.query('analyze tmp_dirty_call');
  // A purged call's fact is final (migration 011): its late event stays staged until the
  // next retention run, and the fact is not rebuilt from that event alone.
  await client.query('delete from tmp_dirty_call t using ctl_purged_call p where p.call_id = t.call_id');
  return rowCount;
}

/**
 * Calls queued per transaction when etl.dimensions changed: about 0.3 s each here (2.7 s
 * per million), so the transform reports progress long before etl.stallSeconds.
 */
export const DIMENSION_QUEUE_CHUNK = 100_000;

/**
 * Whether `dimensions` differ, in any order, from the keys the facts were computed with
 * (ctl_fact_dimensions, migration 014). No row: a fresh mart (nothing to queue), or one
 * upgraded to 014 whose facts were computed with keys no one recorded; those are
 * recomputed once rather than trusted.
 */
export async function dimensionsChanged(db: Queryable, dimensions: string[]): Promise<boolean> {
  const { rows } = await db.query<{ dimensions: string[] }>('select dimensions from ctl_fact_dimensions');
  return !rows[0] || JSON.stringify(rows[0].dimensions) !== JSON.stringify([...dimensions].sort());
}

/**
 * Queues for the transform the facts' calls after `after` in call_id order, at most
 * `limit` of them, so an added dimension key reaches the calls transformed before and a
 * removed one leaves them. Purged calls are left as they are: their staged events are
 * gone (claimDirtyCalls). Returns where the next chunk starts: the last call_id looked
 * at, or null past the last fact.
 */
export async function queueCallsForDimensions(client: PoolClient, after: string | null, limit: number): Promise<{ next: string | null }> {
  const { rows } = await client.query<{ looked: number; last: string | null }>(
    `with chunk as (select f.call_id from interaction_fact f
                     where $1::uuid is null or f.call_id > $1::uuid order by f.call_id limit $2),
          queued as (insert into etl_dirty_call (call_id)
                     select c.call_id from chunk c where not exists (select 1 from ctl_purged_call p where p.call_id = c.call_id)
                     on conflict do nothing)
     select (select count(*)::integer from chunk) as looked, (select call_id::text from chunk order by call_id desc limit 1) as last`,
    [after, limit],
  );
  return { next: rows[0]!.looked < limit ? null : rows[0]!.last };
}

/** The keys the facts are computed with from now on: recorded once every call is queued. */
export async function recordDimensions(client: PoolClient, dimensions: string[]): Promise<void> {
  await client.query(
    `insert into ctl_fact_dimensions (dimensions) values ($1)
     on conflict (singleton) do update set dimensions = excluded.dimensions, recorded_at = now()`,
    [[...dimensions].sort()],
  );
}

/**
 * Reads the dirty calls' staged events once into tmp_call_row, each with the reason it is
 * unusable in its call, if any: an event earlier than one with a lower seq (out of order),
 * or later than the call's start plus the longest plausible call. Every later step of the
 * batch works on this copy: the events of a call lie scattered over the staging heap, and
 * each pass over them there costs a random read per event. Staging rows whose reason
 * changed are updated (a better version may still replace them); a new reason is recorded
 * in ctl_discard once.
 */
export async function readDirtyCallEvents(client: PoolClient, maxCallSeconds: number, dimensions: string[]): Promise<number> {
  await client.query(
    `create temp table if not exists tmp_call_row (call_id uuid, seq integer, source_id text, event text,
       event_ts timestamptz, media text, direction text, queue text, agent_id text, dims jsonb, reason text, old_reason text)
     on commit delete rows`,
  );
  // dims: only the configured attrs keys (not the whole attrs, which may be large), values as
  // text cut to MAX_DIMENSION_VALUE; a JSON null counts as absent. Without dimensions the
  // subquery is skipped: per event it costs about as much as the rest of the row.
  await client.query(
    `insert into tmp_call_row
     select call_id, seq, source_id, event, event_ts, media, direction, queue, agent_id,
            case when cardinality($2::text[]) > 0 then
              (select jsonb_object_agg(k, left(attrs ->> k, $3)) from unnest($2::text[]) k where attrs ->> k is not null)
            end,
            case
              when event_ts < prev_max then
                format('out of order: event_ts %s is earlier than %s of a lower seq', event_ts, prev_max)
              when event_ts > first_ts + make_interval(secs => $1) then
                format('absurd duration: %s s after the call started (limit %s s)',
                       round(extract(epoch from event_ts - first_ts)), $1)
            end,
            discard_reason
       from (select s.*, max(s.event_ts) over w as prev_max, min(s.event_ts) over (partition by s.call_id) as first_ts
               from stg_call_event s join tmp_dirty_call d using (call_id)
             window w as (partition by s.call_id order by s.seq rows between unbounded preceding and 1 preceding)) ev`,
    [maxCallSeconds, dimensions, MAX_DIMENSION_VALUE],
  );
  // Only the columns later joins and filters use: all eleven cost 30 ms per batch of 13,000
  // rows, these four 5 ms.
  await client.query('analyze tmp_call_row (call_id, seq, reason, old_reason)');
  await client.query(
    `update stg_call_event s set discard_reason = r.reason
       from tmp_call_row r
      where r.reason is distinct from r.old_reason and s.call_id = r.call_id and s.seq = r.seq`,
  );
  const { rowCount } = await client.query(
    `insert into ctl_discard (table_name, natural_key, member_id, reason, row_data)
     select 'call_event', s.call_id || '/' || s.seq, s.member_id, s.discard_reason,
            to_jsonb(s) - 'discard_reason' - 'quality' - 'loaded_at'
       from tmp_call_row r join stg_call_event s using (call_id, seq)
      where r.reason is not null
     on conflict do nothing`,
  );
  return rowCount ?? 0;
}

/** Characters of a dimension value kept: attached data is free text, a report cell is not. */
export const MAX_DIMENSION_VALUE = 200;

/** The thresholds the queue aggregates count with (etl config; part of the config fingerprint). */
export interface QueueRules {
  serviceLevelSeconds: number;
  /** Per queue, overriding serviceLevelSeconds. */
  queueServiceLevelSeconds: Record<string, number>;
  /** An abandon after less waiting than this is short: it counts against neither service level nor abandon rate. */
  shortAbandonSeconds: number;
}

/**
 * Adds the dirty calls' contributions to ag_queue_15min, as their facts stand now, times
 * `sign` to tmp_group_delta: -1 before their facts change, +1 after. The aggregates then
 * move by the difference, so a cycle costs what its calls touch, not what their 15-minute
 * intervals hold (recomputing whole intervals from the facts cost hundreds of thousands of
 * rows per cycle at 5,000 events/s). Sums are numeric, so the deltas are exact.
 */
async function noteContributions(client: PoolClient, sign: 1 | -1, rules: QueueRules): Promise<void> {
  await client.query(
    `create temp table if not exists tmp_group_delta (queue text, interval_start timestamptz, offered integer,
       answered integer, abandoned integer, abandoned_short integer, answered_in_sl integer, abandoned_in_sl integer,
       total_wait_s numeric, total_talk_s numeric)
     on commit delete rows`,
  );
  await client.query(
    `insert into tmp_group_delta
     ${queueCountsOfFacts({
       facts: 'interaction_fact f join tmp_dirty_call d using (call_id)',
       where: 'true',
       sign: '$1::integer',
       serviceLevelSeconds: '$2::numeric',
       queueServiceLevelSeconds: '$3',
       shortAbandonSeconds: '$4::numeric',
     })}`,
    [sign, rules.serviceLevelSeconds, JSON.stringify(rules.queueServiceLevelSeconds), rules.shortAbandonSeconds],
  );
}

/**
 * Calls that started before this are over, ended or not: the mart has seen events
 * etl.maxCallSeconds later (a later end would be absurd). It follows the newest event
 * time the mart has loaded, not its clock, so two caught-up marts draw the same line;
 * capped at now, so a stray future timestamp cannot end live calls.
 */
const ENDED_BEFORE = (maxCallSeconds: string) =>
  `(select least(now(), max(last_event_ts)) - make_interval(secs => ${maxCallSeconds}) from ctl_cursor)`;

/**
 * Queues the calls still in progress that started before ENDED_BEFORE, so the transform
 * closes them as incomplete: found through the partial index of calls in progress, not a
 * scan of the facts. Returns how many.
 */
export async function queueEndlessCalls(client: Queryable, maxCallSeconds: number): Promise<number> {
  const { rowCount } = await client.query(
    `insert into etl_dirty_call (call_id)
     select call_id from interaction_fact where outcome = 'in_progress' and start_ts < ${ENDED_BEFORE('$1')}
     on conflict do nothing`,
    [maxCallSeconds],
  );
  return rowCount ?? 0;
}

/**
 * One row per call from its usable events in tmp_call_row. wait: from queued (else created) to answer,
 * or to the end for a call never answered; talk: answer to end. A call without an end
 * that started before ENDED_BEFORE is `incomplete`: its end is unknown (null, and so is
 * the time it never measured), and the end event arriving later makes it whole again.
 */
export async function upsertInteractionFacts(client: PoolClient, rules: QueueRules, maxCallSeconds: number): Promise<number> {
  await noteContributions(client, -1, rules);
  await client.query(
    `delete from interaction_fact f using tmp_dirty_call d
      where f.call_id = d.call_id
        and not exists (select 1 from tmp_call_row r where r.call_id = d.call_id and r.reason is null)`,
  );
  const { rowCount } = await client.query(
    `with c as (
       select s.call_id,
              (array_agg(s.source_id order by s.seq))[1] as source_id,
              (array_agg(s.media order by s.seq))[1] as media,
              (array_agg(s.direction order by s.seq))[1] as direction,
              (array_agg(s.queue order by s.seq desc) filter (where s.queue is not null))[1] as queue,
              (array_agg(s.agent_id order by s.seq desc)
                 filter (where s.agent_id is not null and s.event in ('routed', 'established', 'transferred')))[1] as agent_id,
              min(s.event_ts) as start_ts,
              min(s.event_ts) filter (where s.event = 'queued') as queued_ts,
              min(s.event_ts) filter (where s.event = 'established') as answer_ts,
              max(s.event_ts) filter (where s.event in ('released', 'abandoned')) as end_ts,
              bool_or(s.event = 'abandoned') as abandoned,
              bool_or(s.event = 'released') as released,
              bool_or(s.event = 'transferred') as transferred,
              count(distinct s.seq)::integer as event_count
         from tmp_call_row s
        where s.reason is null
        group by s.call_id),
     d as (
       -- Per dimension, the value of the highest-seq usable event that has it: the same in every mart.
       select call_id, jsonb_object_agg(key, value) as dims
         from (select distinct on (s.call_id, kv.key) s.call_id, kv.key, kv.value
                 from tmp_call_row s cross join lateral jsonb_each(s.dims) kv
                where s.reason is null
                order by s.call_id, kv.key, s.seq desc) v
        group by call_id),
     f as (
       select c.*, coalesce(d.dims, '{}') as dims,
              case
                when c.abandoned then 'abandoned'
                when c.released and c.answer_ts is null then 'abandoned'
                when c.released and c.transferred then 'transferred'
                when c.released then 'answered'
                when c.start_ts < e.before then 'incomplete'
                else 'in_progress'
              end as outcome
         from c left join d using (call_id), (select ${ENDED_BEFORE('$1')} as before) e)
     insert into interaction_fact as t (call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts,
                                        end_ts, outcome, wait_s, talk_s, event_count, dims)
     select call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts, outcome,
            case
              when answer_ts is not null then extract(epoch from answer_ts - coalesce(queued_ts, start_ts))
              when end_ts is not null then extract(epoch from end_ts - coalesce(queued_ts, start_ts))
            end,
            case when answer_ts is not null and end_ts is not null then extract(epoch from end_ts - answer_ts) end,
            event_count, dims
       from f
     on conflict (call_id) do update set
       source_id = excluded.source_id, media = excluded.media, direction = excluded.direction,
       queue = excluded.queue, agent_id = excluded.agent_id, start_ts = excluded.start_ts,
       answer_ts = excluded.answer_ts, end_ts = excluded.end_ts, outcome = excluded.outcome,
       wait_s = excluded.wait_s, talk_s = excluded.talk_s, event_count = excluded.event_count, dims = excluded.dims,
       updated_at = now()
     where (t.source_id, t.media, t.direction, t.queue, t.agent_id, t.start_ts, t.answer_ts, t.end_ts, t.outcome,
            t.wait_s, t.talk_s, t.event_count, t.dims)
           is distinct from
           (excluded.source_id, excluded.media, excluded.direction, excluded.queue, excluded.agent_id,
            excluded.start_ts, excluded.answer_ts, excluded.end_ts, excluded.outcome, excluded.wait_s,
            excluded.talk_s, excluded.event_count, excluded.dims)`,
    [maxCallSeconds],
  );
  await noteContributions(client, 1, rules);
  return rowCount ?? 0;
}

/** Moves the 15-minute queue aggregates by the dirty calls' net contributions; an emptied interval goes. */
export async function applyQueueDeltas(client: PoolClient): Promise<number> {
  const { rowCount } = await client.query(
    `insert into ag_queue_15min as q (queue, interval_start, offered, answered, abandoned, abandoned_short, answered_in_sl,
                                      abandoned_in_sl, total_wait_s, total_talk_s)
     select queue, interval_start, sum(offered), sum(answered), sum(abandoned), sum(abandoned_short), sum(answered_in_sl),
            sum(abandoned_in_sl), sum(total_wait_s), sum(total_talk_s)
       from tmp_group_delta
      group by 1, 2
     having (sum(offered), sum(answered), sum(abandoned), sum(abandoned_short), sum(answered_in_sl), sum(abandoned_in_sl),
             sum(total_wait_s), sum(total_talk_s))
            <> (0, 0, 0, 0, 0, 0, 0, 0)
     on conflict (queue, interval_start) do update set
       offered = q.offered + excluded.offered, answered = q.answered + excluded.answered,
       abandoned = q.abandoned + excluded.abandoned, abandoned_short = q.abandoned_short + excluded.abandoned_short,
       answered_in_sl = q.answered_in_sl + excluded.answered_in_sl,
       abandoned_in_sl = q.abandoned_in_sl + excluded.abandoned_in_sl,
       total_wait_s = q.total_wait_s + excluded.total_wait_s, total_talk_s = q.total_talk_s + excluded.total_talk_s`,
  );
  await client.query(
    `delete from ag_queue_15min q using (select distinct queue, interval_start from tmp_group_delta) g
      where q.queue = g.queue and q.interval_start = g.interval_start and q.offered = 0`,
  );
  return rowCount ?? 0;
}

/**
 * Takes up to `limit` dirty agents, each from the span before its earliest changed event.
 * Locking and deleting are two statements: loads keep raising the same rows' min_seq, and
 * a single `delete ... where key in (select ... for update skip locked)` must re-check each
 * row updated since its snapshot against that subquery. The delete's fresh snapshot sees
 * the locked rows as they are; no one else can change them until commit. (Overlapping
 * transforms stuck for minutes in these claims at 5,000 events/s were what the benchmark
 * showed; the transform lock ends the overlap, this keeps a single claim cheap.)
 */
export async function claimDirtyAgents(client: PoolClient, limit: number): Promise<number> {
  await client.query(
    `create temp table if not exists tmp_dirty_agent (source_id text, agent_id text, from_seq integer)
     on commit delete rows`,
  );
  const { rowCount } = await client.query(
    `insert into tmp_dirty_agent
     select source_id, agent_id, min_seq from etl_dirty_agent limit $1 for update skip locked`,
    [limit],
  );
  if (!rowCount) return 0;
  await client.query(
    `delete from etl_dirty_agent e using tmp_dirty_agent t where e.source_id = t.source_id and e.agent_id = t.agent_id`,
  );
  await client.query('analyze tmp_dirty_agent');
  await client.query(
    `update tmp_dirty_agent t
        set from_seq = coalesce((select max(e.seq) from stg_agent_event e
                                  where e.source_id = t.source_id and e.agent_id = t.agent_id and e.seq < t.from_seq),
                                t.from_seq)`,
  );
  // Never from below what retention purged (migration 011): those spans have no staged
  // events left to be rebuilt from, and would be deleted as spans that no longer exist.
  await client.query(
    `update tmp_dirty_agent t set from_seq = p.below_seq
       from ctl_purged_agent p
      where p.source_id = t.source_id and p.agent_id = t.agent_id and t.from_seq < p.below_seq`,
  );
  return rowCount;
}

/** One span per state: from an event to the agent's next usable event; logout opens none. */
export async function upsertAgentStates(client: PoolClient): Promise<number> {
  await client.query(
    `create temp table if not exists tmp_span (source_id text, agent_id text, seq integer, state text,
       reason text, start_ts timestamptz, end_ts timestamptz) on commit delete rows`,
  );
  await client.query(
    `insert into tmp_span
     select * from (
       select e.source_id, e.agent_id, e.seq,
              case e.event when 'login' then 'logged_in' else e.event end,
              e.reason, e.event_ts,
              lead(e.event_ts) over (partition by e.source_id, e.agent_id order by e.seq)
         from stg_agent_event e join tmp_dirty_agent d using (source_id, agent_id)
        where e.seq >= d.from_seq and e.discard_reason is null) s (source_id, agent_id, seq, state, reason, start_ts, end_ts)
      where state <> 'logout'`,
  );
  await client.query('analyze tmp_span (source_id, agent_id, seq)'); // the key the delete below probes
  await client.query(
    `delete from agent_state_fact f using tmp_dirty_agent d
      where f.source_id = d.source_id and f.agent_id = d.agent_id and f.seq >= d.from_seq
        and not exists (select 1 from tmp_span s
                         where s.source_id = f.source_id and s.agent_id = f.agent_id and s.seq = f.seq)`,
  );
  const { rowCount } = await client.query(
    `insert into agent_state_fact as f (source_id, agent_id, seq, state, reason, start_ts, end_ts)
     select source_id, agent_id, seq, state, reason, start_ts, end_ts from tmp_span
     on conflict (source_id, agent_id, seq) do update set
       state = excluded.state, reason = excluded.reason, start_ts = excluded.start_ts, end_ts = excluded.end_ts
     where (f.state, f.reason, f.start_ts, f.end_ts) is distinct from
           (excluded.state, excluded.reason, excluded.start_ts, excluded.end_ts)`,
  );
  return rowCount ?? 0;
}

/**
 * Records which members the ETL excludes (their site failed) and queues the sets whose
 * exclusions changed for refreshDataGaps. Never touches ctl_cursor, whose rows loads lock.
 */
export async function noteExclusions(client: Queryable, excluded: { memberId: string; sourceId: string }[]): Promise<number> {
  const { rowCount } = await client.query(
    `with wanted as (select * from unnest($1::text[], $2::text[]) as w (member_id, source_id)),
     gone as (
       delete from ctl_excluded_member e where not exists (select 1 from wanted w where w.member_id = e.member_id)
       returning source_id),
     added as (
       insert into ctl_excluded_member (member_id, source_id) select member_id, source_id from wanted
       on conflict (member_id) do nothing
       returning source_id)
     insert into etl_dirty_source (source_id)
     select source_id from gone union select source_id from added
     on conflict do nothing`,
    [excluded.map((m) => m.memberId), excluded.map((m) => m.sourceId)],
  );
  return rowCount ?? 0;
}

/**
 * Recomputes the recorded gaps of every source whose sessions or exclusions changed:
 * windows covered by no member's session, and an open gap (no end) after the last
 * coverage when no member is connected as far as the mart knows. An open session covers
 * until infinity only while its member is read: for an excluded member it ends at the
 * member's last extraction, for an old incarnation at that incarnation's last load (else
 * its start). A stale open session would otherwise hide every later gap of its set.
 * Gaps no longer found (coverage arrived later) go; the others keep when they were detected.
 */
export async function refreshDataGaps(client: PoolClient): Promise<number> {
  const { rows } = await client.query<{ source_id: string }>(
    `delete from etl_dirty_source where source_id in (select source_id from etl_dirty_source for update)
     returning source_id`,
  );
  if (!rows.length) return 0;
  const sources = rows.map((r) => r.source_id);
  await client.query(
    'create temp table if not exists tmp_gap (source_id text, gap_start timestamptz, gap_end timestamptz) on commit delete rows',
  );
  await client.query(
    `with s as (
       select d.source_id, d.conn_start,
              coalesce(d.conn_end,
                       case
                         when c.incarnation is not distinct from d.incarnation and x.member_id is null then 'infinity'
                         when c.incarnation is not distinct from d.incarnation then greatest(d.conn_start, c.last_extract_at)
                         else greatest(d.conn_start, (select a.committed_at from ctl_load_audit a
                                                       where a.member_id = d.member_id and a.incarnation = d.incarnation
                                                       order by a.audit_id desc limit 1))
                       end,
                       'infinity') as conn_end
         from stg_dss_session d left join ctl_cursor c using (member_id) left join ctl_excluded_member x using (member_id)
        where d.source_id = any($1::text[])),
     o as (
       select source_id, conn_start, conn_end,
              max(conn_end) over (partition by source_id order by conn_start, conn_end
                                  rows between unbounded preceding and 1 preceding) as covered_until
         from s)
     insert into tmp_gap
     select source_id, covered_until, conn_start from o where conn_start > covered_until
     union all
     select source_id, max(conn_end), null from s group by source_id having max(conn_end) < 'infinity'`,
    [sources],
  );
  await client.query(
    `delete from ctl_data_gap g
      where g.source_id = any($1::text[])
        and not exists (select 1 from tmp_gap t where t.source_id = g.source_id and t.gap_start = g.gap_start)`,
    [sources],
  );
  const { rowCount } = await client.query(
    `insert into ctl_data_gap as g (source_id, gap_start, gap_end)
     select source_id, gap_start, gap_end from tmp_gap
     on conflict (source_id, gap_start) do update set gap_end = excluded.gap_end
     where g.gap_end is distinct from excluded.gap_end`,
  );
  return rowCount ?? 0;
}
