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

const map = (f: (cols: [string, string][]) => string): Record<EventTable, string> => ({
  call_event: f(COLUMNS.call_event),
  agent_event: f(COLUMNS.agent_event),
});

/** Select list of an extraction: each column cast to its contract type. */
export const COPY_SELECT = map((cols) => cols.map(([n, t]) => `${n}::${t} as ${n}`).join(', '));
/** Column definitions of a table that receives the extraction's COPY. */
export const COPY_TABLE_COLUMNS = map((cols) => cols.map(([n, t]) => `${n} ${t}`).join(', '));

/** The cursor value meaning "nothing extracted yet": nothing is visible in it. */
export const EMPTY_SNAPSHOT = '1:1:';

export interface IdbSnapshot {
  snapshot: string;
  incarnation: string | null;
}

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
  const { rows } = await client.query<{ snapshot: string; incarnation: string | null }>(
    `select pg_current_snapshot()::text as snapshot,
            (select incarnation::text from idb.meta order by created_at desc limit 1) as incarnation`,
  );
  return rows[0]!;
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

/**
 * Sets up the next chunk of the delta of one table, ordered by (xid, id) after `after`,
 * and returns what starts its COPY stream. Call that only where the stream is piped at
 * once: an error (the IDB's site failing) on a stream nobody listens to yet crashes the
 * process, and that was the survivor's worker in a demo failover.
 */
export async function copyDeltaChunk(
  client: PoolClient,
  table: EventTable,
  prev: string,
  cur: string,
  after: Position,
  limit: number,
): Promise<() => Readable> {
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
  // `table` is one of two constants, never input.
  return () => client.query(
    copyTo(`copy (
      select ${COPY_SELECT[table]} from idb.${table}
       where ${DELTA}
         and (xid, id) > (current_setting('twinmart.after_xid')::xid8, current_setting('twinmart.after_id')::bigint)
       order by xid, id
       limit current_setting('twinmart.limit')::integer
    ) to stdout ${COPY_FORMAT}`),
  );
}

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
