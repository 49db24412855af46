/**
 * The simulator's writes to an IDB, as a collector would make them: the schema, the
 * dss_session rows, and batches of events through unnest() arrays (one statement per
 * table per batch, values always as parameters).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, type ClientBase } from 'pg';
import type { Queryable } from '../db';
import type { AgentEventRow, CallEventRow } from './model';

/** Compiled code lives in dist/src/sim/. */
const SCHEMA_FILE = path.join(__dirname, '../../../migrations/idb/001_idb.sql');

let schemaSql: string | undefined;
function idbSchemaSql(): string {
  schemaSql ??= readFileSync(SCHEMA_FILE, 'utf8');
  return schemaSql;
}

/**
 * Creates the idb schema if it is missing (the file is idempotent), on one connection
 * (not a pool: it runs a transaction). An advisory lock
 * serialises concurrent installs: two `create schema if not exists` racing each other
 * can still fail on the catalog's unique index.
 */
export async function ensureIdbSchema(client: ClientBase): Promise<void> {
  await client.query('begin');
  try {
    await client.query(`select pg_advisory_xact_lock(hashtext('twinmart idb schema'))`);
    await client.query(idbSchemaSql());
    await client.query('commit');
  } catch (e) {
    await client.query('rollback').catch(() => {});
    throw e;
  }
}

export async function applyIdbSchema(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await ensureIdbSchema(client);
  } finally {
    await client.end();
  }
}

export async function readIncarnation(client: Queryable): Promise<string> {
  const { rows } = await client.query<{ incarnation: string }>(
    'select incarnation::text as incarnation from idb.meta order by created_at desc limit 1',
  );
  return rows[0]!.incarnation;
}

/** The last agent_event seq used per agent, so a new run continues the data source's numbering. */
export async function lastAgentSeqs(client: Queryable, sourceId: string, agentIds: string[]): Promise<Map<string, number>> {
  const { rows } = await client.query<{ agent_id: string; seq: number }>(
    `select a.agent_id,
            (select max(e.seq) from idb.agent_event e where e.source_id = $1 and e.agent_id = a.agent_id) as seq
       from unnest($2::text[]) as a(agent_id)`,
    [sourceId, agentIds],
  );
  return new Map(rows.filter((r) => r.seq !== null).map((r) => [r.agent_id, r.seq]));
}

export async function openSession(
  client: Queryable,
  collector: string,
  sourceId: string,
  connStart: string,
  connType: number,
): Promise<number> {
  const { rows } = await client.query<{ dss_id: string }>(
    `insert into idb.dss_session (collector, source_id, conn_start, conn_type)
     values ($1, $2, $3::timestamptz, $4::smallint)
     returning dss_id`,
    [collector, sourceId, connStart, connType],
  );
  return Number(rows[0]!.dss_id);
}

export async function closeSession(client: Queryable, dssId: number, connEnd: string): Promise<void> {
  await client.query(
    'update idb.dss_session set conn_end = $2::timestamptz where dss_id = $1::bigint and conn_end is null',
    [dssId, connEnd],
  );
}

/** Ends sessions a previous run of this collector left open, no earlier than they started. */
export async function closeStaleSessions(client: Queryable, collector: string, connEnd: string): Promise<void> {
  await client.query(
    `update idb.dss_session set conn_end = greatest(conn_start, $2::timestamptz)
      where collector = $1 and conn_end is null`,
    [collector, connEnd],
  );
}

/** `iso` turns a row's ms offset into the timestamp text written. */
export async function insertCallEvents(
  client: Queryable,
  sourceId: string,
  dssId: number | null,
  rows: readonly CallEventRow[],
  iso: (ms: number) => string,
): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `insert into idb.call_event
       (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id, attrs, dss_id)
     select e.call_id, e.seq, $1, e.event, e.event_ts, e.media, e.direction, e.ani, e.dnis, e.queue, e.agent_id,
            e.attrs, $2::bigint
       from unnest($3::uuid[], $4::int[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
                   $9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[])
         as e(call_id, seq, event, event_ts, media, direction, ani, dnis, queue, agent_id, attrs)`,
    [
      sourceId,
      dssId,
      rows.map((r) => r.callId),
      rows.map((r) => r.seq),
      rows.map((r) => r.event),
      rows.map((r) => iso(r.ts)),
      rows.map((r) => r.media),
      rows.map((r) => r.direction),
      rows.map((r) => r.ani),
      rows.map((r) => r.dnis),
      rows.map((r) => r.queue),
      rows.map((r) => r.agentId),
      rows.map((r) => r.attrs),
    ],
  );
}

export async function insertAgentEvents(
  client: Queryable,
  sourceId: string,
  dssId: number | null,
  rows: readonly AgentEventRow[],
  iso: (ms: number) => string,
): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `insert into idb.agent_event (agent_id, seq, source_id, event, event_ts, reason, dss_id)
     select e.agent_id, e.seq, $1, e.event, e.event_ts, e.reason, $2::bigint
       from unnest($3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::text[])
         as e(agent_id, seq, event, event_ts, reason)`,
    [
      sourceId,
      dssId,
      rows.map((r) => r.agentId),
      rows.map((r) => r.seq),
      rows.map((r) => r.event),
      rows.map((r) => iso(r.at)),
      rows.map((r) => r.reason),
    ],
  );
}
