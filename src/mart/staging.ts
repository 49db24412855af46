/**
 * Mart-side SQL of a load: the member cursor, temp tables fed by COPY, and the merge of
 * staged rows by natural key (best quality wins), each run inside the caller's
 * transaction so rows, work queues and cursor commit together.
 */
import type { PoolClient } from 'pg';
import { byteCounter, COPY_FORMAT, type Queryable } from '../db';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  contentChecksum,
  COPY_TABLE_COLUMNS,
  LEAN_TABLE_COLUMNS,
  NATURAL_KEY,
  type EventTable,
  type IdbIdentity,
  type Position,
  type SessionRow,
  type Witness,
  type WitnessTable,
} from '../sources/idb';

export const CALL_EVENTS = [
  'created', 'queued', 'routed', 'established', 'held', 'retrieved', 'transferred', 'released', 'abandoned',
] as const;
export const AGENT_EVENTS = ['login', 'logout', 'ready', 'not_ready', 'after_call_work'] as const;
export const MEDIA = ['voice', 'chat', 'email'] as const;
export const DIRECTIONS = ['inbound', 'outbound', 'internal'] as const;

export interface CursorRow {
  member_id: string;
  incarnation: string | null;
  snapshot: string;
  pending_snapshot: string | null;
  pending_table: EventTable | null;
  pending_xid: string | null;
  pending_id: string | null;
  /** Null until the cursor's first load after migration 010. */
  identity: IdbIdentity | null;
  witness: Witness | null;
}

const CURSOR_COLUMNS = `member_id, incarnation::text, snapshot::text, pending_snapshot::text, pending_table,
  pending_xid::text, pending_id::text, system_id, timeline, witness_table, witness_id::text, witness_xid::text, witness_hash`;

type CursorColumns = Omit<CursorRow, 'identity' | 'witness'> & {
  system_id: string | null;
  timeline: number | null;
  witness_table: WitnessTable | null;
  witness_id: string | null;
  witness_xid: string | null;
  witness_hash: string | null;
};

export async function readCursor(client: Queryable, memberId: string, lock = false): Promise<CursorRow | null> {
  const { rows } = await client.query<CursorColumns>(
    `select ${CURSOR_COLUMNS} from ctl_cursor where member_id = $1 ${lock ? 'for update nowait' : ''}`,
    [memberId],
  );
  if (!rows[0]) return null;
  const { system_id, timeline, witness_table, witness_id, witness_xid, witness_hash, ...cursor } = rows[0];
  return {
    ...cursor,
    identity: system_id === null || timeline === null ? null : { systemId: system_id, timeline },
    witness: witness_table && witness_id && witness_xid && witness_hash
      ? { table: witness_table, id: witness_id, xid: witness_xid, hash: witness_hash }
      : null,
  };
}

export async function ensureCursor(client: Queryable, memberId: string, sourceId: string): Promise<void> {
  await client.query(
    'insert into ctl_cursor (member_id, source_id) values ($1, $2) on conflict (member_id) do nothing',
    [memberId, sourceId],
  );
}

export interface CursorUpdate {
  incarnation: string | null;
  snapshot: string;
  pending: { snapshot: string; table: EventTable; position: Position } | null;
  rows: number;
  reset: boolean;
  /** Newest event time in what this load staged, for the DR data-loss report. */
  lastEventTs: Date | null;
  identity: IdbIdentity;
  /** The newest row visible in `snapshot`. */
  witness: Witness | null;
}

export async function writeCursor(client: PoolClient, memberId: string, u: CursorUpdate): Promise<void> {
  await client.query(
    `update ctl_cursor set
        incarnation = $2::uuid, snapshot = $3::pg_snapshot,
        pending_snapshot = $4::pg_snapshot, pending_table = $5, pending_xid = $6::xid8, pending_id = $7::bigint,
        last_extract_at = now(), rows_total = rows_total + $8, resets = resets + $9::int,
        last_event_ts = greatest(last_event_ts, $10::timestamptz), updated_at = now(),
        system_id = $11, timeline = $12, witness_table = $13, witness_id = $14::bigint, witness_xid = $15::xid8,
        witness_hash = $16
      where member_id = $1`,
    [
      memberId,
      u.incarnation,
      u.snapshot,
      u.pending?.snapshot ?? null,
      u.pending?.table ?? null,
      u.pending?.position.xid ?? null,
      u.pending?.position.id ?? null,
      u.rows,
      u.reset ? 1 : 0,
      u.lastEventTs,
      u.identity.systemId,
      u.identity.timeline,
      u.witness?.table ?? null,
      u.witness?.id ?? null,
      u.witness?.xid ?? null,
      u.witness?.hash ?? null,
    ],
  );
}

/** ids of the sessions this mart holds as still open for the member's current IDB. */
export async function openSessionIds(client: Queryable, memberId: string, incarnation: string | null): Promise<string[]> {
  const { rows } = await client.query<{ dss_id: string }>(
    `select dss_id::text from stg_dss_session
      where member_id = $1 and incarnation = $2::uuid and conn_end is null`,
    [memberId, incarnation],
  );
  return rows.map((r) => r.dss_id);
}

export async function upsertSessions(
  client: PoolClient,
  memberId: string,
  incarnation: string,
  sessions: SessionRow[],
): Promise<number> {
  if (!sessions.length) return 0;
  const { rowCount } = await client.query(
    `with s as (
       insert into stg_dss_session (member_id, incarnation, dss_id, collector, source_id, conn_start, conn_end, conn_type)
       select $1, $2::uuid, * from unnest($3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::smallint[])
       on conflict (member_id, incarnation, dss_id) do update
         set conn_end = excluded.conn_end, conn_start = excluded.conn_start, conn_type = excluded.conn_type
         where (stg_dss_session.conn_end, stg_dss_session.conn_start, stg_dss_session.conn_type)
               is distinct from (excluded.conn_end, excluded.conn_start, excluded.conn_type)
       returning source_id)
     insert into etl_dirty_source (source_id) select distinct source_id from s on conflict do nothing`,
    [
      memberId,
      incarnation,
      sessions.map((s) => s.dss_id),
      sessions.map((s) => s.collector),
      sessions.map((s) => s.source_id),
      sessions.map((s) => s.conn_start),
      sessions.map((s) => s.conn_end),
      sessions.map((s) => s.conn_type),
    ],
  );
  return rowCount ?? 0;
}

/** Pipes a COPY from the IDB into `into`, created by `ddl` first; returns rows and bytes read. */
async function pipeInto(client: PoolClient, ddl: string, into: string, startSource: () => Readable): Promise<{ rows: number; bytes: number }> {
  await client.query(ddl);
  const sink = client.query(copyFrom(`copy ${into} from stdin ${COPY_FORMAT}`));
  const counter = byteCounter();
  await pipeline(startSource(), counter.stream, sink);
  return { rows: Number(sink.rowCount ?? 0), bytes: counter.bytes() };
}

/**
 * Streams a COPY from the IDB into this transaction's temp table; returns rows, the bytes
 * read and the last position. The source starts only once the sink is ready, and is
 * piped at once.
 */
export async function copyIntoTemp(
  client: PoolClient,
  table: EventTable,
  startSource: () => Readable,
): Promise<{ rows: number; bytes: number; last: Position | null }> {
  const ddl = `create temp table if not exists tmp_${table} (${COPY_TABLE_COLUMNS[table]}) on commit delete rows`;
  const { rows, bytes } = await pipeInto(client, ddl, `tmp_${table}`, startSource);
  if (!rows) return { rows: 0, bytes, last: null };
  // Qualified: a bare `order by xid` would sort the text output columns ("99" > "400").
  const { rows: last } = await client.query<Position>(
    `select t.xid::text as xid, t.id::text as id from tmp_${table} t order by t.xid desc, t.id desc limit 1`,
  );
  return { rows, bytes, last: last[0]! };
}

/** Streams a chunk of keys and checksums (copyDeltaChunk's `keys`) into this transaction's temp table. */
export async function copyLeanIntoTemp(
  client: PoolClient,
  table: EventTable,
  startSource: () => Readable,
): Promise<{ rows: number; bytes: number; last: Position | null }> {
  const ddl = `create temp table if not exists tmp_lean_${table} (${LEAN_TABLE_COLUMNS[table]}) on commit delete rows`;
  const { bytes } = await pipeInto(client, ddl, `tmp_lean_${table}`, startSource);
  // Never analysed, the one-row table counts as hundreds of rows, and the lookups of its
  // keys in staging became hash joins over all of staging, every cycle (p99 freshness at
  // 200 events/s went from 0.5 to 3.9 s); as one row they probe the primary key.
  await client.query(`analyze tmp_lean_${table}`);
  const { rows } = await client.query<{ n: number; xid: string | null; id: string | null }>(
    `select n, last_xid::text as xid, last_id::text as id from tmp_lean_${table}`,
  );
  const r = rows[0]!;
  return { rows: r.n, bytes, last: r.xid && r.id ? { xid: r.xid, id: r.id } : null };
}

/** The lean chunk's rows as (key columns..., checksum). */
const leanRows = (table: EventTable): string => {
  const key = NATURAL_KEY[table];
  return `tmp_lean_${table} l, unnest(${key.map((n) => `l.${n}`).join(', ')}, l.sums) as k (${key.join(', ')}, checksum)`;
};

/** A staged row `t` with the lean row `k`'s key and content. */
const sameRow = (table: EventTable): string =>
  `${NATURAL_KEY[table].map((n) => `t.${n} = k.${n}`).join(' and ')} and ${contentChecksum(table, 't')} = k.checksum`;

/**
 * Merges a lean chunk with what the mart holds. Its rows the mart holds with the same
 * content take this member's quality where it wins, as a full read's merge would give
 * them, without their content crossing the link. Returns the others' keys, one array
 * literal per key column for copyRowsByKey (null when there are none): a copy that
 * differs is read whether or not it wins, so its merge records what a full read would
 * (a malformed copy in ctl_discard); members that agree make these few. Also returns the
 * newest event_ts of the rows held the same. One statement, so each key probes staging
 * and computes its checksum once (twice made lean catch-up half as fast).
 */
export async function mergeLeanChunk(
  client: PoolClient,
  table: EventTable,
  m: MergeInput,
): Promise<{ fetch: string[] | null; maxEventTs: Date | null }> {
  const key = NATURAL_KEY[table];
  const { rows } = await client.query<Record<string, string | null> & { ts: Date | null }>(
    `with l as (
       select ${key.map((n) => `k.${n}`).join(', ')}, t.event_ts, ${quality('$1', '$2', '$3')} as quality
         from ${leanRows(table)} left join stg_${table} t on ${sameRow(table)}),
     up as (
       update stg_${table} s set member_id = $1, quality = l.quality, discard_reason = null, loaded_at = now()
         from l where ${key.map((n) => `s.${n} = l.${n}`).join(' and ')} and l.event_ts is not null and l.quality < s.quality
       returning ${key.map((n) => `s.${n}`).join(', ')}),
     dirty as (${MARK_DIRTY[table]('up')})
     select ${key.map((n) => `(array_agg(l.${n}) filter (where l.event_ts is null))::text as ${n}`).join(', ')}, max(l.event_ts) as ts
       from l`,
    [m.memberId, m.qualityBase, m.incarnation],
  );
  const r = rows[0]!;
  const arrays = key.map((n) => r[n] ?? null);
  return { fetch: arrays[0] === null ? null : (arrays as string[]), maxEventTs: r.ts };
}

/** Queues the transform's work for the staged rows `updated` returns (its natural keys). */
const MARK_DIRTY: Record<EventTable, (updated: string) => string> = {
  call_event: (u) => `insert into etl_dirty_call (call_id) select distinct call_id from ${u} on conflict do nothing`,
  agent_event: (u) => `insert into etl_dirty_agent (source_id, agent_id, min_seq)
     select source_id, agent_id, min(seq) from ${u} group by 1, 2
     on conflict (source_id, agent_id) do update set min_seq = least(etl_dirty_agent.min_seq, excluded.min_seq)`,
};

/** Why a row cannot be used, checked per row at load; null when it is fine. */
const CALL_ROW_PROBLEM = `nullif(concat_ws('; ',
    case when t.event <> all($1::text[]) then format('unknown event %s', quote_literal(t.event)) end,
    case when t.media <> all($2::text[]) then format('unknown media %s', quote_literal(t.media)) end,
    case when t.direction <> all($3::text[]) then format('unknown direction %s', quote_literal(t.direction)) end,
    case when t.seq < 1 then format('seq %s is not positive', t.seq) end,
    case when t.event_ts > now() + interval '1 day' then format('event_ts %s is in the future', t.event_ts) end
  ), '')`;

const AGENT_ROW_PROBLEM = `nullif(concat_ws('; ',
    case when t.event <> all($1::text[]) then format('unknown event %s', quote_literal(t.event)) end,
    case when t.seq < 1 then format('seq %s is not positive', t.seq) end,
    case when t.event_ts > now() + interval '1 day' then format('event_ts %s is in the future', t.event_ts) end
  ), '')`;

/**
 * quality = base (list order) + 1000 when no session of the member covered the
 * event. `$m` are the parameter numbers of member id, base and incarnation.
 */
const quality = (member: string, base: string, incarnation: string): string => `${base}::integer + case when exists (
    select 1 from stg_dss_session s
     where s.member_id = ${member} and s.incarnation = ${incarnation}::uuid and s.source_id = t.source_id
       and s.conn_start <= t.event_ts and (s.conn_end is null or s.conn_end >= t.event_ts)) then 0 else 1000 end`;

export interface MergeInput {
  memberId: string;
  incarnation: string;
  qualityBase: number;
}

export interface MergeResult {
  merged: number;
  discarded: number;
  maxEventTs: Date | null;
}

async function maxEventTs(client: PoolClient, table: EventTable): Promise<Date | null> {
  const { rows } = await client.query<{ ts: Date | null }>(`select max(event_ts) as ts from tmp_${table}`);
  return rows[0]!.ts;
}

/** Temp rows -> staging (natural key, better quality replaces), discards, dirty calls. */
export async function mergeCallEvents(client: PoolClient, m: MergeInput): Promise<MergeResult> {
  const vocabulary = [CALL_EVENTS, MEDIA, DIRECTIONS];
  const discarded = await client.query(
    `insert into ctl_discard (table_name, natural_key, member_id, reason, row_data)
     select 'call_event', t.call_id || '/' || t.seq, $4, p.problem, to_jsonb(t) - 'xid'
       from tmp_call_event t, lateral (select ${CALL_ROW_PROBLEM} as problem) p
      where p.problem is not null
     on conflict do nothing`,
    [...vocabulary, m.memberId],
  );
  const merged = await client.query(
    `with ins as (
       insert into stg_call_event as s (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis,
                                        queue, agent_id, attrs, member_id, quality)
       select t.call_id, t.seq, t.source_id, t.event, t.event_ts, t.media, t.direction, t.ani, t.dnis,
              t.queue, t.agent_id, t.attrs, $4, ${quality('$4', '$5', '$6')}
         from tmp_call_event t
        where ${CALL_ROW_PROBLEM} is null
       on conflict (call_id, seq) do update set
         source_id = excluded.source_id, event = excluded.event, event_ts = excluded.event_ts,
         media = excluded.media, direction = excluded.direction, ani = excluded.ani, dnis = excluded.dnis,
         queue = excluded.queue, agent_id = excluded.agent_id, attrs = excluded.attrs,
         member_id = excluded.member_id, quality = excluded.quality, discard_reason = null, loaded_at = now()
         where excluded.quality < s.quality
       returning call_id)
     ${MARK_DIRTY.call_event('ins')}`,
    [...vocabulary, m.memberId, m.qualityBase, m.incarnation],
  );
  return { merged: merged.rowCount ?? 0, discarded: discarded.rowCount ?? 0, maxEventTs: await maxEventTs(client, 'call_event') };
}

export async function mergeAgentEvents(client: PoolClient, m: MergeInput): Promise<MergeResult> {
  const discarded = await client.query(
    `insert into ctl_discard (table_name, natural_key, member_id, reason, row_data)
     select 'agent_event', t.source_id || '/' || t.agent_id || '/' || t.seq, $2, p.problem, to_jsonb(t) - 'xid'
       from tmp_agent_event t, lateral (select ${AGENT_ROW_PROBLEM} as problem) p
      where p.problem is not null
     on conflict do nothing`,
    [AGENT_EVENTS, m.memberId],
  );
  const merged = await client.query(
    `with ins as (
       insert into stg_agent_event as s (source_id, agent_id, seq, event, event_ts, reason, member_id, quality)
       select t.source_id, t.agent_id, t.seq, t.event, t.event_ts, t.reason, $2, ${quality('$2', '$3', '$4')}
         from tmp_agent_event t
        where ${AGENT_ROW_PROBLEM} is null
       on conflict (source_id, agent_id, seq) do update set
         event = excluded.event, event_ts = excluded.event_ts, reason = excluded.reason,
         member_id = excluded.member_id, quality = excluded.quality, discard_reason = null, loaded_at = now()
         where excluded.quality < s.quality
       returning source_id, agent_id, seq)
     ${MARK_DIRTY.agent_event('ins')}`,
    [AGENT_EVENTS, m.memberId, m.qualityBase, m.incarnation],
  );
  return { merged: merged.rowCount ?? 0, discarded: discarded.rowCount ?? 0, maxEventTs: await maxEventTs(client, 'agent_event') };
}

export async function writeAudit(
  client: PoolClient,
  a: {
    memberId: string;
    incarnation: string | null;
    from: string;
    to: string;
    final: boolean;
    callRows: number;
    agentRows: number;
    sessionRows: number;
    discarded: number;
    resetReason: string | null;
  },
): Promise<void> {
  await client.query(
    `insert into ctl_load_audit (member_id, incarnation, snapshot_from, snapshot_to, final_chunk,
       call_rows, agent_rows, session_rows, discarded_rows, reset_reason)
     values ($1, $2::uuid, $3::pg_snapshot, $4::pg_snapshot, $5, $6, $7, $8, $9, $10)`,
    [a.memberId, a.incarnation, a.from, a.to, a.final, a.callRows, a.agentRows, a.sessionRows, a.discarded, a.resetReason],
  );
}
