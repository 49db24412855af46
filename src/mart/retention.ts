/**
 * Retention's SQL (docs/retention.md). Each step deletes one bounded batch of what is
 * older than the run's cutoffs, in a transaction that holds the transform lock, so a purge
 * never interleaves with a transform batch. The rules, which keep every fact the mart still
 * has recomputable or final:
 *
 * - call events go per call, and only calls with every event older than the cutoff, not
 *   queued for the transform, and with a fact that is no longer in progress (or none: every
 *   event unusable). The call is recorded in ctl_purged_call: its fact is final, and a late
 *   event for it is ignored by the transform (claimDirtyCalls) and purged again;
 * - agent events go below the agent's last usable event older than the cutoff (its open
 *   span's start, from which the next event's transform recomputes), and only for agents
 *   not queued for the transform; ctl_purged_agent keeps the transform from recomputing
 *   below it (claimDirtyAgents);
 * - sessions go per data source before the start of the last stretch of coverage that
 *   begins by the cutoff, and with them the data gaps that end by then: no session of a
 *   later gap is touched, so refreshDataGaps finds the same later gaps. Open sessions stay;
 * - load audit rows go, except each member incarnation's newest (refreshDataGaps ends an
 *   old incarnation's open session at it); discards go by when they were recorded;
 * - facts, agent spans (ended) and aggregates older than the fact cutoff go. Cutoffs fall on
 *   15-minute boundaries, so an aggregate interval goes with exactly its calls.
 * - never purged: ctl_cursor, the etl_dirty_* work queues, ctl_reporting.
 */
import { DatabaseError, type Pool, type PoolClient } from 'pg';
import { withTransaction } from '../db';
import { TRANSFORM_LOCK } from '../etl/transform';
import type { RetentionStep } from '../workflows/retention';

export interface RetentionDays {
  stagingDays: number;
  factDays: number;
}

/** ISO instants, each at a 15-minute boundary of ag_queue_15min's bins. */
export interface RetentionCutoffs {
  /** Staged events, sessions, audit rows, discards older than this may go. */
  stagingBefore: string;
  /** Facts, spans and aggregates older than this go. */
  factsBefore: string;
}

const BIN_MS = 15 * 60_000; // the bins' origin, 2000-01-01 UTC, is a multiple of it
const DAY_MS = 86_400_000;
const binStart = (ms: number): Date => new Date(Math.floor(ms / BIN_MS) * BIN_MS);

export function retentionCutoffs(days: RetentionDays, now = new Date()): RetentionCutoffs {
  return {
    stagingBefore: binStart(now.getTime() - days.stagingDays * DAY_MS).toISOString(),
    factsBefore: binStart(now.getTime() - days.factDays * DAY_MS).toISOString(),
  };
}


export interface BatchResult {
  /** Rows deleted, by table. */
  purged: Record<string, number>;
  /** The batch was full: the step may have more to do. */
  full: boolean;
}

/** `resume`: go on from where the step's previous batch of this run stopped, else from the start. */
type Batch = (c: PoolClient, cutoffs: RetentionCutoffs, limit: number, resume: boolean) => Promise<BatchResult>;

const counted = async (c: PoolClient, sql: string, params: unknown[]): Promise<number> => (await c.query(sql, params)).rowCount ?? 0;

/**
 * Scans staged events in (event_ts, call_id, seq) order from the step's position
 * (ctl_retention_position, migration 015); purges the calls among them the rules allow.
 */
const callEvents: Batch = async (c, { stagingBefore }, limit, resume) => {
  const step = 'call-events';
  const start = resume
    ? (await c.query<{ event_ts: Date; call_id: string; seq: number }>('select event_ts, call_id, seq from ctl_retention_position where step = $1', [step])).rows[0]
    : undefined;
  const { rows } = await c.query<{ scanned: number; purged: number }>(
    `with scanned as (
       select call_id, event_ts, seq from stg_call_event
        where event_ts < $1 and event_ts >= $2::timestamptz and (event_ts, call_id, seq) > ($2::timestamptz, $3::uuid, $4::integer)
        order by event_ts, call_id, seq limit $5),
     calls as (
       select distinct s.call_id from scanned s
        where not exists (select 1 from stg_call_event e where e.call_id = s.call_id and e.event_ts >= $1)
          and not exists (select 1 from etl_dirty_call d where d.call_id = s.call_id)
          and not exists (select 1 from interaction_fact f where f.call_id = s.call_id and f.outcome = 'in_progress')),
     gone as (
       delete from stg_call_event e using calls c where e.call_id = c.call_id returning e.call_id, e.event_ts),
     noted as (
       insert into ctl_purged_call (call_id, start_ts)
       select g.call_id, coalesce(f.start_ts, min(g.event_ts))
         from gone g left join interaction_fact f using (call_id)
        group by g.call_id, f.start_ts
       on conflict (call_id) do nothing),
     position as (
       insert into ctl_retention_position (step, event_ts, call_id, seq)
       select $6, event_ts, call_id, seq from scanned order by event_ts desc, call_id desc, seq desc limit 1
       on conflict (step) do update set event_ts = excluded.event_ts, call_id = excluded.call_id, seq = excluded.seq)
     select (select count(*) from scanned)::int as scanned, (select count(*) from gone)::int as purged`,
    [stagingBefore, start?.event_ts ?? '-infinity', start?.call_id ?? '00000000-0000-0000-0000-000000000000', start?.seq ?? 0, limit, step],
  );
  const r = rows[0]!;
  return { purged: { stg_call_event: r.purged }, full: r.scanned === limit };
};

/**
 * Raises each agent's floor to its last usable event older than the cutoff. The scan runs
 * before the lock (a transform batch need not wait for it); agents queued for the
 * transform by then keep their floor until the next run.
 */
async function raiseAgentFloors(mart: Pool, { stagingBefore }: RetentionCutoffs): Promise<{ source_id: string[]; agent_id: string[]; seq: number[] }> {
  const { rows } = await mart.query<{ source_id: string[]; agent_id: string[]; seq: number[] }>(
    `select coalesce(array_agg(source_id), '{}') as source_id, coalesce(array_agg(agent_id), '{}') as agent_id,
            coalesce(array_agg(seq), '{}') as seq
       from (select source_id, agent_id, max(seq) as seq from stg_agent_event
              where event_ts < $1 and discard_reason is null group by 1, 2) a`,
    [stagingBefore],
  );
  return rows[0]!;
}

const agentFloors = (floors: { source_id: string[]; agent_id: string[]; seq: number[] }): Batch => async (c) => {
  await c.query(
    `insert into ctl_purged_agent as p (source_id, agent_id, below_seq)
     select a.source_id, a.agent_id, a.seq from unnest($1::text[], $2::text[], $3::integer[]) a (source_id, agent_id, seq)
      where not exists (select 1 from etl_dirty_agent d where d.source_id = a.source_id and d.agent_id = a.agent_id)
     on conflict (source_id, agent_id) do update set below_seq = excluded.below_seq where p.below_seq < excluded.below_seq`,
    [floors.source_id, floors.agent_id, floors.seq],
  );
  return { purged: {}, full: false };
};

const agentEvents: Batch = async (c, _cutoffs, limit) => {
  const n = await counted(
    c,
    `with doomed as (
       select e.source_id, e.agent_id, e.seq
         from ctl_purged_agent p
        cross join lateral (select x.source_id, x.agent_id, x.seq from stg_agent_event x
                             where x.source_id = p.source_id and x.agent_id = p.agent_id and x.seq < p.below_seq
                             limit $1) e
        limit $1)
     delete from stg_agent_event e using doomed d
      where e.source_id = d.source_id and e.agent_id = d.agent_id and e.seq = d.seq`,
    [limit],
  );
  return { purged: { stg_agent_event: n }, full: n === limit };
};

/**
 * A stretch of coverage starts at a session that begins after every earlier session of
 * its source ended (an open session counts as never ending, however refreshDataGaps ends
 * it), where refreshDataGaps ends a gap. Sessions that ended before the last such start by
 * the cutoff precede every later session, so those later gaps come out the same without them.
 */
const sessions: Batch = async (c, { stagingBefore }, limit) => {
  const { rows } = await c.query<{ sessions: number; gaps: number }>(
    `with s as (
       select source_id, conn_start,
              max(coalesce(conn_end, 'infinity')) over (partition by source_id order by conn_start, coalesce(conn_end, 'infinity')
                                                        rows between unbounded preceding and 1 preceding) as covered_until
         from stg_dss_session),
     h as (
       select source_id, max(conn_start) as horizon from s
        where conn_start <= $1 and (covered_until is null or conn_start > covered_until)
        group by source_id),
     doomed as (
       select d.member_id, d.incarnation, d.dss_id from stg_dss_session d join h using (source_id)
        where d.conn_end < h.horizon limit $2),
     gone as (
       delete from stg_dss_session d using doomed x
        where (d.member_id, d.incarnation, d.dss_id) = (x.member_id, x.incarnation, x.dss_id) returning 1),
     gaps as (
       delete from ctl_data_gap g using h where g.source_id = h.source_id and g.gap_end <= h.horizon returning 1)
     select (select count(*) from gone)::int as sessions, (select count(*) from gaps)::int as gaps`,
    [stagingBefore, limit],
  );
  const r = rows[0]!;
  return { purged: { stg_dss_session: r.sessions, ctl_data_gap: r.gaps }, full: r.sessions === limit };
};

const loadAudit: Batch = async (c, { stagingBefore }, limit) => {
  const n = await counted(
    c,
    `with doomed as (
       select a.audit_id from ctl_load_audit a
        where a.committed_at < $1
          and exists (select 1 from ctl_load_audit b
                       where b.member_id = a.member_id and b.incarnation is not distinct from a.incarnation and b.audit_id > a.audit_id)
        order by a.committed_at limit $2)
     delete from ctl_load_audit a using doomed d where a.audit_id = d.audit_id`,
    [stagingBefore, limit],
  );
  return { purged: { ctl_load_audit: n }, full: n === limit };
};

const discards: Batch = async (c, { stagingBefore }, limit) => {
  const n = await counted(
    c,
    `with doomed as (select discard_id from ctl_discard where discarded_at < $1 order by discarded_at limit $2)
     delete from ctl_discard x using doomed d where x.discard_id = d.discard_id`,
    [stagingBefore, limit],
  );
  return { purged: { ctl_discard: n }, full: n === limit };
};

/** Facts, and the record of their calls' purged events: a call older than the facts is forgotten whole. */
const interactionFacts: Batch = async (c, { factsBefore }, limit) => {
  const { rows } = await c.query<{ facts: number; calls: number }>(
    `with doomed as (select call_id from interaction_fact where start_ts < $1 order by start_ts limit $2),
     facts as (delete from interaction_fact f using doomed d where f.call_id = d.call_id returning 1),
     old as (select call_id from ctl_purged_call where start_ts < $1 order by start_ts limit $2),
     calls as (delete from ctl_purged_call p using old o where p.call_id = o.call_id returning 1)
     select (select count(*) from facts)::int as facts, (select count(*) from calls)::int as calls`,
    [factsBefore, limit],
  );
  const r = rows[0]!;
  return { purged: { interaction_fact: r.facts, ctl_purged_call: r.calls }, full: r.facts === limit || r.calls === limit };
};

const queueAggregates: Batch = async (c, { factsBefore }, limit) => {
  const n = await counted(
    c,
    `with doomed as (select queue, interval_start from ag_queue_15min where interval_start < $1 order by interval_start limit $2)
     delete from ag_queue_15min q using doomed d where q.queue = d.queue and q.interval_start = d.interval_start`,
    [factsBefore, limit],
  );
  return { purged: { ag_queue_15min: n }, full: n === limit };
};

/** Ended spans only: an agent's open span is its current state, however old. */
const agentFacts: Batch = async (c, { factsBefore }, limit) => {
  const n = await counted(
    c,
    `with doomed as (select agent_state_id from agent_state_fact where start_ts < $1 and end_ts < $1 order by start_ts limit $2)
     delete from agent_state_fact f using doomed d where f.agent_state_id = d.agent_state_id`,
    [factsBefore, limit],
  );
  return { purged: { agent_state_fact: n }, full: n === limit };
};

const BATCHES: Record<Exclude<RetentionStep, 'agent-floors'>, Batch> = {
  'call-events': callEvents,
  'agent-events': agentEvents,
  sessions,
  'load-audit': loadAudit,
  discards,
  'interaction-facts': interactionFacts,
  'queue-aggregates': queueAggregates,
  'agent-facts': agentFacts,
};

/**
 * How long a batch waits for the transform lock (and any row lock) before it gives way: a
 * transform batch holds it for about a second; one that holds it longer is left alone.
 */
const LOCK_WAIT_MS = 5000;

/**
 * One batch of a step, in a transaction holding the transform lock; null when the lock (or
 * a row a load is writing) was not to be had within LOCK_WAIT_MS, and nothing changed.
 */
export async function purgeBatch(
  mart: Pool,
  step: RetentionStep,
  cutoffs: RetentionCutoffs,
  limit: number,
  resume = false,
): Promise<BatchResult | null> {
  const batch = step === 'agent-floors' ? agentFloors(await raiseAgentFloors(mart, cutoffs)) : BATCHES[step];
  try {
    return await withTransaction(mart, async (c) => {
      await c.query(`set local lock_timeout = ${LOCK_WAIT_MS}`);
      await c.query(`select pg_advisory_xact_lock(${TRANSFORM_LOCK})`);
      return batch(c, cutoffs, limit, resume);
    });
  } catch (e) {
    if (e instanceof DatabaseError && e.code === '55P03') return null; // lock_not_available
    throw e;
  }
}

/** Statistics of the tables a run emptied: the transform's growth check compares with them (refreshStatistics). */
export async function analyzePurged(mart: Pool, tables: string[]): Promise<void> {
  // Purged calls were recorded in ctl_purged_call, which the transform joins.
  const changed = tables.includes('stg_call_event') ? [...tables, 'ctl_purged_call'] : tables;
  await mart.query('select ctl_analyze($1::text[])', [[...new Set(changed)]]);
}
