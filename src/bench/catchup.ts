/**
 * Catch-up throughput on a backlog already in the IDBs, four ways on the same data:
 *  - raw: COPY (select the extracted columns from idb.<table>) TO STDOUT piped into
 *    COPY <scratch table> FROM STDIN in the mart's database, every member in parallel,
 *    in the binary format the extraction uses: the limit of moving these rows between
 *    the two servers;
 *  - keyed raw: the same for one member per set into tables with staging's natural key:
 *    the limit of landing each event once under its key;
 *  - plain: twinmart's own extractMember (in the workflow's lanes, as the workflow
 *    runs them) and transformSite, called in a loop without Temporal, into a fresh
 *    scratch mart database;
 *  - temporal: the site's ETL workflow on the real worker, from its start to the mart
 *    being complete (staging holds every member's keys, no pending chunk, transform
 *    queues empty).
 * Events are rows extracted: call + agent events summed over every member IDB (a set
 * with two members counts each event twice), the work one site's ETL does; against the
 * keyed baseline, distinct events.
 */
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Pool } from 'pg';
import type { Config, Member } from '../config';
import { byteCounter, COPY_FORMAT, Pools, withClient } from '../db';
import { idbReadSession } from '../db/sessions';
import { createDatabase, instanceUrl } from '../dev/postgres';
import { extractMember, type ExtractResult } from '../etl/extract-member';
import { extractionLanes, readsLean } from '../etl/order';
import { transformSite, type TransformResult } from '../etl/transform';
import { migrateMart } from '../mart/migrate';
import { copyAllSql, COPY_TABLE_COLUMNS, EVENT_TABLES, type EventTable } from '../sources/idb';
import { startEtl } from '../temporal/connection';
import { etlWorkflowId } from '../workflows/names';
import type { Backlog } from './load';
import { fetchHistory, historyPoint, taskTimings, type TaskTimings } from './footprint';
import { readStatements, resetStatements, sampleWaits, type StatementProfile, type WaitProfile } from './statements';
import type { BenchWorld } from './world';
import { log, peakRssMb, ratio, seconds, sleep } from './util';

export interface RawResult {
  seconds: number;
  rows: number;
  eventsPerSecond: number;
  /** Rows and COPY bytes read from each member copied. */
  members: Record<string, { site: string; rows: number; bytes: number }>;
  statements: StatementProfile | null;
  waits: WaitProfile | null;
}

/** Staging's natural keys (primary keys of stg_call_event and stg_agent_event), which the keyed baseline's tables carry. */
const NATURAL_KEYS: Record<EventTable, string> = { call_event: 'call_id, seq', agent_event: 'source_id, agent_id, seq' };

/**
 * The given members' tables COPYed straight into tables of the mart's database, every
 * member in parallel; `keyed`: the tables have staging's natural key, else no index at all.
 */
async function copyBaseline(w: BenchWorld, site: string, members: Member[], keyed: boolean): Promise<RawResult> {
  const mart = w.mart(site);
  const table = (t: EventTable) => `bench_${keyed ? 'keyed' : 'raw'}_${t}`;
  for (const t of EVENT_TABLES) {
    await mart.query(`drop table if exists ${table(t)}`);
    await mart.query(`create table ${table(t)} (${COPY_TABLE_COLUMNS[t]}${keyed ? `, primary key (${NATURAL_KEYS[t]})` : ''})`);
  }
  await resetStatements(w);
  const sampler = sampleWaits(w);
  const t0 = Date.now();
  const counts = await Promise.all(
    members.map(async (m) => {
      const c = { site: m.site, rows: 0, bytes: 0 };
      for (const t of EVENT_TABLES) {
        await withClient(w.idb(m), (src) =>
          withClient(mart, async (dst) => {
            const sink = dst.query(copyFrom(`copy ${table(t)} from stdin ${COPY_FORMAT}`));
            const counter = byteCounter();
            await pipeline(src.query(copyTo(copyAllSql(t))), counter.stream, sink);
            c.rows += Number(sink.rowCount ?? 0);
            c.bytes += counter.bytes();
          }),
        );
      }
      return [m.id, c] as const;
    }),
  );
  const ms = Date.now() - t0;
  const waits = await sampler.stop();
  const statements = await readStatements(w);
  for (const t of EVENT_TABLES) await mart.query(`drop table ${table(t)}`);
  const rows = counts.reduce((a, [, c]) => a + c.rows, 0);
  return { seconds: seconds(ms), rows, eventsPerSecond: Math.round((rows * 1000) / ms), members: Object.fromEntries(counts), statements, waits };
}

/** The raw PostgreSQL limit: each member's tables COPYed straight into unindexed tables of the mart's database. */
export async function rawCopy(w: BenchWorld, site: string, backlog: Backlog): Promise<RawResult> {
  const r = await copyBaseline(w, site, w.config.members, false);
  if (r.rows !== backlog.memberRows) log.warn(`raw copy moved ${r.rows} rows, the backlog has ${backlog.memberRows}`);
  log.info(`raw COPY: ${r.rows} rows in ${r.seconds} s = ${r.eventsPerSecond} rows/s`);
  return r;
}

/**
 * One copy of every event landed under a unique key: the first member of each HA set
 * (whose rows are its set's events), sets in parallel as the ETL's lanes, COPYed into
 * tables with staging's natural key. What landing each event once costs PostgreSQL
 * before any merge between partners.
 */
export async function keyedRawCopy(w: BenchWorld, site: string, backlog: Backlog): Promise<RawResult> {
  const firsts = w.config.members.filter((m) => m.index === 0);
  const r = await copyBaseline(w, site, firsts, true);
  const events = backlog.callEvents + backlog.agentEvents;
  if (r.rows !== events) log.warn(`keyed raw copy moved ${r.rows} rows, the sets emitted ${events} events`);
  log.info(`keyed raw COPY (one member per set): ${r.rows} rows in ${r.seconds} s = ${r.eventsPerSecond} rows/s`);
  return r;
}

/**
 * One cycle of the ETL without Temporal, as the workflow runs it: the extraction lanes in
 * parallel (in config.etl.extraction's order and form), then the transform.
 */
export async function plainCycle(
  config: Config,
  { site, mart, idb }: PlainMart,
): Promise<{
  rows: number;
  extractMs: number;
  transformMs: number;
  transform: TransformResult;
  members: Record<string, number>;
  bytes: { local: number; remote: number };
}> {
  const t0 = Date.now();
  const members: Record<string, number> = {};
  const results: ExtractResult[] = [];
  const { chunkRows, cycleChunks } = config.etl;
  const lean = config.etl.extraction === 'lean';
  await Promise.all(
    extractionLanes(config.members, undefined, lean ? site : undefined).map(async (lane) => {
      for (const m of lane) {
        const s = Date.now();
        const r = await extractMember(mart, idb(m), m, {
          site,
          chunkRows,
          maxChunks: cycleChunks,
          idbTimeoutSeconds: config.etl.idbTimeoutSeconds,
          lean: lean && readsLean(m, config.members, site),
        });
        members[m.id] = Date.now() - s;
        if (r.state !== 'ok') throw new Error(`member ${m.id} was not extracted: ${r.state} ${r.error ?? ''}`);
        results.push(r);
      }
    }),
  );
  const t1 = Date.now();
  const transform = await transformSite(mart, {
    batch: config.etl.transformBatch,
    queueRules: config.etl,
    maxCallSeconds: config.etl.maxCallSeconds,
    dimensions: config.etl.dimensions,
  });
  return {
    rows: results.reduce((a, r) => a + r.callRows + r.agentRows, 0),
    extractMs: t1 - t0,
    transformMs: Date.now() - t1,
    transform,
    members,
    bytes: {
      local: results.reduce((a, r) => a + (r.local ? r.bytes : 0), 0),
      remote: results.reduce((a, r) => a + (r.local ? 0 : r.bytes), 0),
    },
  };
}

export interface PlainMart {
  /** The site whose mart this stands in for (member locality is relative to it). */
  site: string;
  pools: Pools;
  mart: Pool;
  idb: (m: Member) => Pool;
  database: string;
}

/** A fresh scratch mart on the site's instance, migrated, with pools shaped like the worker's. */
export async function openPlainMart(w: BenchWorld, site: string, database = 'bench_plain_mart'): Promise<PlainMart> {
  await createDatabase(w.state.pg[site]!, database);
  const pools = new Pools();
  const mart = pools.get(instanceUrl(w.state.pg[site]!, database));
  await migrateMart(mart);
  const idb = (m: Member) => pools.get(m.url, idbReadSession(w.config.etl, 'twinmart-bench-extract'));
  return { site, pools, mart, idb, database };
}

export interface PlainResult {
  seconds: number;
  rows: number;
  eventsPerSecond: number;
  cycles: number;
  extractSeconds: number;
  transformSeconds: number;
  /** Slowest and fastest member's extraction in the first cycle, seconds. */
  memberExtractSeconds: { max: number; min: number };
  transform: { batches: number; facts: number; agentSpans: number };
  /** etl.extraction of the run, and the COPY bytes it read from local and remote members. */
  extraction: 'full' | 'lean';
  localBytes: number;
  remoteBytes: number;
  statements: StatementProfile | null;
  waits: WaitProfile | null;
}

/** The backlog loaded by the ETL without Temporal into `pm`; `config` defaults to the world's. */
export async function plainCatchup(w: BenchWorld, pm: PlainMart, backlog: Backlog, config: Config = w.config): Promise<PlainResult> {
  await resetStatements(w);
  const sampler = sampleWaits(w);
  const t0 = Date.now();
  let end = t0;
  let rows = 0;
  let cycles = 0;
  let extractMs = 0;
  let transformMs = 0;
  let memberMs: number[] = [];
  const tr = { batches: 0, facts: 0, agentSpans: 0 };
  const bytes = { local: 0, remote: 0 };
  for (let i = 0; i < 100; i++) {
    const c = await plainCycle(config, pm);
    if (!c.rows && !c.transform.calls && !c.transform.agents) break;
    if (i === 0) memberMs = Object.values(c.members);
    cycles++;
    rows += c.rows;
    extractMs += c.extractMs;
    transformMs += c.transformMs;
    tr.batches += c.transform.batches;
    tr.facts += c.transform.facts;
    tr.agentSpans += c.transform.agentSpans;
    bytes.local += c.bytes.local;
    bytes.remote += c.bytes.remote;
    end = Date.now();
    log.info(`  plain cycle ${cycles}: ${c.rows} rows, extract ${seconds(c.extractMs)} s, transform ${seconds(c.transformMs)} s`);
  }
  const waits = await sampler.stop();
  const statements = await readStatements(w);
  const done = await completeness(pm.mart, backlog);
  if (!done.complete) throw new Error(`the plain loop stopped with an incomplete mart: ${JSON.stringify(done)}`);
  const ms = end - t0;
  const r: PlainResult = {
    seconds: seconds(ms),
    rows,
    eventsPerSecond: Math.round((rows * 1000) / ms),
    cycles,
    extractSeconds: seconds(extractMs),
    transformSeconds: seconds(transformMs),
    memberExtractSeconds: { max: seconds(Math.max(0, ...memberMs)), min: seconds(memberMs.length ? Math.min(...memberMs) : 0) },
    transform: tr,
    extraction: config.etl.extraction,
    localBytes: bytes.local,
    remoteBytes: bytes.remote,
    statements,
    waits,
  };
  log.info(`no-Temporal loop (${config.etl.extraction}): ${rows} rows in ${r.seconds} s = ${r.eventsPerSecond} rows/s (extract ${r.extractSeconds} s, transform ${r.transformSeconds} s)`);
  return r;
}

export interface Completeness {
  complete: boolean;
  extractedRows: number;
  pendingChunks: number;
  dirty: boolean;
  stagedCalls: number | null;
  stagedAgents: number | null;
}

/** Complete: every member row extracted, no half-committed delta, queues empty, staging = the union of keys. */
export async function completeness(mart: Pool, backlog: Backlog): Promise<Completeness> {
  const { rows } = await mart.query<{ rows: string; pending: string; dirty: boolean }>(
    `select coalesce(sum(rows_total), 0)::text as rows,
            count(*) filter (where pending_snapshot is not null)::text as pending,
            exists (select 1 from etl_dirty_call) or exists (select 1 from etl_dirty_agent) as dirty
       from ctl_cursor`,
  );
  const r = rows[0]!;
  const c: Completeness = {
    complete: false,
    extractedRows: Number(r.rows),
    pendingChunks: Number(r.pending),
    dirty: r.dirty,
    stagedCalls: null,
    stagedAgents: null,
  };
  if (c.extractedRows < backlog.memberRows || c.pendingChunks > 0 || c.dirty) return c;
  const staged = await mart.query<{ calls: string; agents: string }>(
    'select (select count(*) from stg_call_event)::text as calls, (select count(*) from stg_agent_event)::text as agents',
  );
  c.stagedCalls = Number(staged.rows[0]!.calls);
  c.stagedAgents = Number(staged.rows[0]!.agents);
  c.complete = c.stagedCalls >= backlog.callEvents && c.stagedAgents >= backlog.agentEvents;
  return c;
}

export interface TemporalResult {
  site: string;
  seconds: number;
  rows: number;
  eventsPerSecond: number;
  distinctEventsPerSecond: number;
  cycles: number;
  historyLength: number;
  timings: TaskTimings | null;
  workerPeakRssMb: number | null;
  statements: StatementProfile | null;
  waits: WaitProfile | null;
}

/**
 * Starts the site's ETL workflow (its mart already migrated, so prepareSite finds nothing
 * to do) and waits until the mart is complete, polling every 100 ms. `start` defaults to
 * starting that ETL alone.
 */
export async function temporalCatchup(
  w: BenchWorld,
  site: string,
  backlog: Backlog,
  timeoutSeconds: number,
  start: () => Promise<unknown> = () => startEtl(w.client, w.config, site),
): Promise<TemporalResult> {
  const mart = w.mart(site);
  await migrateMart(mart);
  await resetStatements(w);
  const sampler = sampleWaits(w);
  const t0 = Date.now();
  await start();
  let last: Completeness | null = null;
  let lastLog = Date.now();
  for (;;) {
    last = await completeness(mart, backlog);
    if (last.complete) break;
    if (Date.now() - t0 > timeoutSeconds * 1000) throw new Error(`catch-up of ${site} not complete after ${timeoutSeconds} s: ${JSON.stringify(last)}`);
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log.info(`  ${site}: ${last.extractedRows}/${backlog.memberRows} rows extracted${last.dirty ? ', transform queue not empty' : ''}`);
    }
    await sleep(100);
  }
  const t1 = Date.now();
  const waits = await sampler.stop();
  const statements = await readStatements(w);
  const point = await historyPoint(w.client, etlWorkflowId(site));
  let timings: TaskTimings | null = null;
  try {
    timings = taskTimings(await fetchHistory(w.client, etlWorkflowId(site)), t0, t1);
  } catch (e) {
    log.warn(`could not read the history of ${etlWorkflowId(site)}`, { error: (e as Error).message });
  }
  const ms = t1 - t0;
  const r: TemporalResult = {
    site,
    seconds: seconds(ms),
    rows: last.extractedRows,
    eventsPerSecond: Math.round((backlog.memberRows * 1000) / ms),
    distinctEventsPerSecond: Math.round(((backlog.callEvents + backlog.agentEvents) * 1000) / ms),
    cycles: point.cycle,
    historyLength: point.length,
    timings,
    workerPeakRssMb: peakRssMb(w.state.workers[site]),
    statements,
    waits,
  };
  log.info(`Temporal ETL ${site}: ${backlog.memberRows} rows in ${r.seconds} s = ${r.eventsPerSecond} rows/s, ${r.cycles} cycles`);
  return r;
}

export interface CatchupSummary {
  /** What "events" means in the rates below. */
  events: string;
  callEvents: number;
  agentEvents: number;
  memberRows: number;
  eventsPerSecond: number | null;
  distinctEventsPerSecond: number | null;
  rawCopyEventsPerSecond: number | null;
  /** Distinct events per second into tables with staging's natural key, one member per set (keyedRawCopy). */
  keyedRawCopyEventsPerSecond: number | null;
  noTemporalEventsPerSecond: number | null;
  ratioToRawCopy: number | null;
  /** Distinct events per second of the catch-up against the keyed raw COPY: both land each event once. */
  ratioToKeyedCopy: number | null;
  ratioToNoTemporal: number | null;
  seconds: { temporal: number | null; rawCopy: number | null; keyedRawCopy: number | null; noTemporal: number | null };
}

export const EVENTS_MEANING =
  'rows extracted by one site: call + agent events summed over every member IDB (each event of a two-member set counts twice)';

export function summarize(
  backlog: Backlog,
  raw: RawResult | null,
  keyed: RawResult | null,
  plain: PlainResult | null,
  t: TemporalResult | null,
): CatchupSummary {
  return {
    events: EVENTS_MEANING,
    callEvents: backlog.callEvents,
    agentEvents: backlog.agentEvents,
    memberRows: backlog.memberRows,
    eventsPerSecond: t?.eventsPerSecond ?? null,
    distinctEventsPerSecond: t?.distinctEventsPerSecond ?? null,
    rawCopyEventsPerSecond: raw?.eventsPerSecond ?? null,
    keyedRawCopyEventsPerSecond: keyed?.eventsPerSecond ?? null,
    noTemporalEventsPerSecond: plain?.eventsPerSecond ?? null,
    ratioToRawCopy: ratio(t?.eventsPerSecond ?? null, raw?.eventsPerSecond ?? null),
    ratioToKeyedCopy: ratio(t?.distinctEventsPerSecond ?? null, keyed?.eventsPerSecond ?? null),
    ratioToNoTemporal: ratio(t?.eventsPerSecond ?? null, plain?.eventsPerSecond ?? null),
    seconds: { temporal: t?.seconds ?? null, rawCopy: raw?.seconds ?? null, keyedRawCopy: keyed?.seconds ?? null, noTemporal: plain?.seconds ?? null },
  };
}
