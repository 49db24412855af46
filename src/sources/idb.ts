/**
 * Reading one member IDB: a REPEATABLE READ snapshot, and the rows that are visible in
 * it and were not visible in the previous cursor snapshot (docs/architecture.md, "Extraction
 * contract"). COPY cannot take bind parameters, so the values travel as transaction-local
 * settings set with parameterised set_config() and are read back with current_setting().
 */
import type { PoolClient } from 'pg';
import { COPY_FORMAT } from '../db';
import { to as copyTo } from 'pg-copy-streams';
import type { Readable } from 'node:stream';

export type EventTable = 'call_event' | 'agent_event';
export const EVENT_TABLES: readonly EventTable[] = ['call_event', 'agent_event'];

/**
 * The extracted columns in COPY order, with their contract types. Binary COPY
 * (COPY_FORMAT) needs both ends to agree on each column's type exactly: the reads cast to
 * these types, and the mart's temp tables are declared from the same list.
 */
const COLUMNS: Record<EventTable, [name: string, type: string][]> = {
  call_event: [
    ['id', 'bigint'], ['call_id', 'uuid'], ['seq', 'integer'], ['source_id', 'text'], ['event', 'text'],
    ['event_ts', 'timestamptz'], ['media', 'text'], ['direction', 'text'], ['ani', 'text'], ['dnis', 'text'],
    ['queue', 'text'], ['agent_id', 'text'], ['attrs', 'jsonb'], ['dss_id', 'bigint'], ['xid', 'xid8'],
  ],
  agent_event: [
    ['id', 'bigint'], ['agent_id', 'text'], ['seq', 'integer'], ['source_id', 'text'], ['event', 'text'],
    ['event_ts', 'timestamptz'], ['reason', 'text'], ['dss_id', 'bigint'], ['xid', 'xid8'],
  ],
};

const map = (f: (cols: [string, string][], table: EventTable) => string): Record<EventTable, string> => ({
  call_event: f(COLUMNS.call_event, 'call_event'),
  agent_event: f(COLUMNS.agent_event, 'agent_event'),
});

/** Select list of an extraction: each column cast to its contract type. */
export const COPY_SELECT = map((cols) => cols.map(([n, t]) => `${n}::${t} as ${n}`).join(', '));
/** Column definitions of a table that receives the extraction's COPY. */
export const COPY_TABLE_COLUMNS = map((cols) => cols.map(([n, t]) => `${n} ${t}`).join(', '));

/** The natural key of each table, as the mart's staging tables have it. */
export const NATURAL_KEY: Record<EventTable, string[]> = {
  call_event: ['call_id', 'seq'],
  agent_event: ['source_id', 'agent_id', 'seq'],
};

/** The columns the mart stages from a row (the natural key and the content). */
const STAGED: Record<EventTable, string[]> = {
  call_event: ['call_id', 'seq', 'source_id', 'event', 'event_ts', 'media', 'direction', 'ani', 'dnis', 'queue', 'agent_id', 'attrs'],
  agent_event: ['source_id', 'agent_id', 'seq', 'event', 'event_ts', 'reason'],
};

const typeOf = (table: EventTable, column: string): string => COLUMNS[table].find(([n]) => n === column)![1];

/**
 * SQL of a 64-bit checksum of the staged columns of row `alias`, the same expression on
 * the IDB and on the mart's staging tables, so equal checksums mean equal staged rows.
 * Each column is cast to its contract type; a timestamptz goes in as its epoch, since its
 * text depends on the session's TimeZone and DateStyle.
 */
export function contentChecksum(table: EventTable, alias: string): string {
  const cols = STAGED[table].map((n) => {
    const type = typeOf(table, n);
    return type === 'timestamptz' ? `extract(epoch from ${alias}.${n}::timestamptz)` : `${alias}.${n}::${type}`;
  });
  return `('x' || left(md5(row(${cols.join(', ')})::text), 16))::bit(64)::bigint`;
}

/**
 * Column definitions of the one row a lean chunk's COPY sends: each key column and the
 * checksums as arrays in (xid, id) order, the row count and the chunk's last position.
 */
export const LEAN_TABLE_COLUMNS = map((_, table) =>
  [...NATURAL_KEY[table].map((n) => `${n} ${typeOf(table, n)}[]`), 'sums bigint[]', 'n integer', 'last_xid xid8', 'last_id bigint'].join(', '),
);

/** The cursor value meaning "nothing extracted yet": nothing is visible in it. */
export const EMPTY_SNAPSHOT = '1:1:';

export interface IdbSnapshot {
  snapshot: string;
  incarnation: string | null;
  /** pg_is_in_recovery(): a hot standby, whose snapshots list no running transactions. */
  standby: boolean;
  /** Which server this is; null on a standby. */
  identity: IdbIdentity | null;
}

/**
 * What tells one PostgreSQL history from another beyond idb.meta's incarnation, which a
 * restore keeps: a dump restored into another cluster has a new system identifier, a
 * point-in-time recovery or a promoted standby a new timeline.
 */
export interface IdbIdentity {
  systemId: string;
  timeline: number;
}

export type WitnessTable = EventTable | 'dss_session';

/**
 * The newest row visible in a cursor snapshot: a plain base-backup restore keeps the
 * system identifier and the timeline, but not the rows written after the backup, and the
 * xids it hands out next are ones the cursor counts as read. The row's hash covers the
 * columns that never change (a session's conn_end is set when it closes).
 */
export interface Witness {
  table: WitnessTable;
  id: string;
  xid: string;
  hash: string;
}

const WITNESS_TABLES: Record<WitnessTable, { key: string; hash: string }> = {
  call_event: { key: 'id', hash: 'md5(t::text)' },
  agent_event: { key: 'id', hash: 'md5(t::text)' },
  dss_session: { key: 'dss_id', hash: 'md5((t.dss_id, t.collector, t.source_id, t.conn_start, t.conn_type, t.xid)::text)' },
};
const WITNESS_NAMES = Object.keys(WITNESS_TABLES) as WitnessTable[];

export interface Position {
  xid: string;
  id: string;
}
export const START: Position = { xid: '0', id: '0' };

export interface SessionRow {
  dss_id: string;
  collector: string;
  source_id: string;
  conn_start: Date;
  conn_end: Date | null;
  conn_type: number;
}

/** Opens the read-only snapshot every read of this extraction uses. */
export async function beginSnapshot(client: PoolClient): Promise<IdbSnapshot> {
  await client.query('begin isolation level repeatable read read only');
  // pg_current_wal_lsn() fails on a standby; the timeline is the current WAL file's first 8 hex digits.
  const { rows } = await client.query<{ snapshot: string; incarnation: string | null; standby: boolean; system_id: string; timeline: number | null }>(
    `select pg_current_snapshot()::text as snapshot,
            (select incarnation::text from idb.meta order by created_at desc limit 1) as incarnation,
            pg_is_in_recovery() as standby,
            (select system_identifier::text from pg_control_system()) as system_id,
            case when not pg_is_in_recovery()
                 then ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end as timeline`,
  );
  const r = rows[0]!;
  return {
    snapshot: r.snapshot,
    incarnation: r.incarnation,
    standby: r.standby,
    identity: r.timeline === null ? null : { systemId: r.system_id, timeline: r.timeline },
  };
}

/** The witness of `snapshot`, read in the open snapshot (which must not be older); null when nothing is visible in it. */
export async function newestRow(client: PoolClient, snapshot: string): Promise<Witness | null> {
  // The table names are constants; each branch is a backward scan of its xid index.
  const branches = WITNESS_NAMES.map((table) => {
    const { key, hash } = WITNESS_TABLES[table];
    return `(select '${table}' as table, ${key}::text as id, xid, ${hash} as hash from idb.${table} t
              where xid < pg_snapshot_xmax($1::pg_snapshot) and pg_visible_in_snapshot(xid, $1::pg_snapshot)
              order by xid desc limit 1)`;
  });
  const { rows } = await client.query<{ table: WitnessTable; id: string; xid: string; hash: string }>(
    `select "table", id, xid::text, hash from (${branches.join(' union all ')}) w order by w.xid desc limit 1`,
    [snapshot],
  );
  return rows[0] ?? null;
}

export interface WitnessCheck {
  /** The witness row's hash as it reads now; null when it is gone. */
  hash: string | null;
  /** A row visible in the cursor snapshot is newer than the witness: the cursor counts it as read, but never read it. */
  unreadCounted: boolean;
}

/** Reads what `witness` (null: nothing was visible) says about this IDB against the cursor `snapshot`. */
export async function checkWitness(client: PoolClient, snapshot: string, witness: Witness | null): Promise<WitnessCheck> {
  const hashOf = WITNESS_NAMES.map((table) => {
    const { key, hash } = WITNESS_TABLES[table];
    return `when '${table}' then (select ${hash} from idb.${table} t where ${key} = $3::bigint and xid = $2::xid8)`;
  });
  const newer = WITNESS_NAMES.map(
    (table) => `exists (select 1 from idb.${table} where xid > $2::xid8 and xid < pg_snapshot_xmax($1::pg_snapshot)
                   and pg_visible_in_snapshot(xid, $1::pg_snapshot))`,
  );
  const { rows } = await client.query<{ hash: string | null; unread_counted: boolean }>(
    `select case $4::text ${hashOf.join(' ')} end as hash, ${newer.join(' or ')} as unread_counted`,
    [snapshot, witness?.xid ?? '0', witness?.id ?? null, witness?.table ?? null],
  );
  return { hash: rows[0]!.hash, unreadCounted: rows[0]!.unread_counted };
}

const DELTA = `xid >= pg_snapshot_xmin(current_setting('twinmart.prev')::pg_snapshot)
      and xid < pg_snapshot_xmax(current_setting('twinmart.cur')::pg_snapshot)
      and pg_visible_in_snapshot(xid, current_setting('twinmart.cur')::pg_snapshot)
      and not pg_visible_in_snapshot(xid, current_setting('twinmart.prev')::pg_snapshot)`;

async function setDelta(client: PoolClient, prev: string, cur: string): Promise<void> {
  await client.query(
    `select set_config('twinmart.prev', $1::pg_snapshot::text, true),
            set_config('twinmart.cur', $2::pg_snapshot::text, true)`,
    [prev, cur],
  );
}

/**
 * Sessions new in the delta, plus those the mart still holds as open: closing a session
 * is an UPDATE that keeps the row's xid, so the delta alone would never show it.
 */
export async function readSessions(
  client: PoolClient,
  prev: string,
  cur: string,
  openIds: string[],
): Promise<SessionRow[]> {
  await setDelta(client, prev, cur);
  const { rows } = await client.query<SessionRow>(
    `select dss_id::text, collector, source_id, conn_start, conn_end, conn_type
       from idb.dss_session
      where (${DELTA}) or dss_id = any($1::bigint[])
      order by dss_id`,
    [openIds],
  );
  return rows;
}

/** Sets the delta and the position after which, and how many rows, its next chunk reads. */
async function setChunk(client: PoolClient, prev: string, cur: string, after: Position, limit: number): Promise<void> {
  await setDelta(client, prev, cur);
  // The position never starts below the delta's first xid: btree starts the scan at the
  // row comparison, and from (0, 0) that was the whole index, read on every cycle
  // (20 ms for an empty delta of a 600k-row table, 3 buffers instead of 2,300 this way).
  await client.query(
    `select set_config('twinmart.after_xid', greatest($1::xid8, pg_snapshot_xmin($4::pg_snapshot))::text, true),
            set_config('twinmart.after_id',
                       (case when $1::xid8 < pg_snapshot_xmin($4::pg_snapshot) then -1 else $2::bigint end)::text, true),
            set_config('twinmart.limit', $3::integer::text, true)`,
    [after.xid, after.id, limit, prev],
  );
}

/** The rows of the chunk set by setChunk, with `select` as their select list; `table` is one of two constants. */
const chunkRows = (table: EventTable, select: string): string => `
  select ${select} from idb.${table} t
   where ${DELTA}
     and (xid, id) > (current_setting('twinmart.after_xid')::xid8, current_setting('twinmart.after_id')::bigint)
   order by xid, id
   limit current_setting('twinmart.limit')::integer`;

/**
 * A chunk as natural keys and content checksums only (etl.extraction: lean): one row of
 * arrays (LEAN_TABLE_COLUMNS), about a fifth of the rows' bytes, from which the mart picks
 * the rows it must read in full (copyRowsByKey).
 */
function keysOfChunk(table: EventTable): string {
  const key = NATURAL_KEY[table];
  const select = [...key, `${contentChecksum(table, 't')} as checksum`, 'xid', 'id'].join(', ');
  const agg = (col: string) => `array_agg(${col} order by xid, id)`;
  return `with c as (${chunkRows(table, select)})
    select ${key.map(agg).join(', ')}, ${agg('checksum')}, count(*)::integer,
           (select xid from c order by xid desc, id desc limit 1), (select id from c order by xid desc, id desc limit 1)
      from c`;
}

/**
 * Sets up the next chunk of the delta of one table, ordered by (xid, id) after `after`,
 * and returns what starts its COPY stream: the rows, or (`keys`) keysOfChunk. Call that
 * only where the stream is piped at once: an error (the IDB's site failing) on a stream
 * nobody listens to yet crashes the process, and that was the survivor's worker in a demo
 * failover.
 */
export async function copyDeltaChunk(
  client: PoolClient,
  table: EventTable,
  prev: string,
  cur: string,
  after: Position,
  limit: number,
  form: 'rows' | 'keys' = 'rows',
): Promise<() => Readable> {
  await setChunk(client, prev, cur, after, limit);
  const select = form === 'rows' ? chunkRows(table, COPY_SELECT[table]) : keysOfChunk(table);
  return () => client.query(copyTo(`copy (${select}) to stdout ${COPY_FORMAT}`));
}

/**
 * Full rows of the open snapshot by natural key, `keys` holding one array literal per key
 * column (what the mart returns as `array_agg(...)::text`). The reader role may only
 * SELECT, so the keys travel as a transaction-local setting, as the delta's bounds do.
 */
export async function copyRowsByKey(client: PoolClient, table: EventTable, keys: string[]): Promise<() => Readable> {
  const key = NATURAL_KEY[table];
  await client.query(
    `select ${key.map((n, i) => `set_config('twinmart.key_${n}', $${i + 1}::text, true)`).join(', ')}`,
    keys,
  );
  const arrays = key.map((n) => `current_setting('twinmart.key_${n}')::${typeOf(table, n)}[]`);
  return () => client.query(copyTo(`copy (
    select ${COPY_SELECT[table]} from idb.${table}
     where (${key.join(', ')}) in (select * from unnest(${arrays.join(', ')}))
  ) to stdout ${COPY_FORMAT}`));
}

/** Every row of a table as an extraction reads it, as one COPY: the full copy of each event (baselines, tests). */
export const copyAllSql = (table: EventTable): string =>
  `copy (select ${COPY_SELECT[table]} from idb.${table}) to stdout ${COPY_FORMAT}`;

/** Rows not yet extracted behind a cursor: cheap (index range on xid), for status and lag. */
export async function countBehind(client: PoolClient, prev: string): Promise<number> {
  await client.query('begin isolation level repeatable read read only');
  try {
    const { rows } = await client.query<{ snapshot: string }>('select pg_current_snapshot()::text as snapshot');
    await setDelta(client, prev, rows[0]!.snapshot);
    const counts = await client.query<{ n: string }>(
      `select (select count(*) from idb.call_event where ${DELTA}) + (select count(*) from idb.agent_event where ${DELTA}) as n`,
    );
    return Number(counts.rows[0]!.n);
  } finally {
    await client.query('rollback');
  }
}
