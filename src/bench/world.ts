/**
 * Benchmark worlds: the same real world as `twinmart dev` and the tests (a PostgreSQL
 * instance per site, a Temporal dev server, worker processes), created under the
 * system's temp directory and removed at the end, also when a stage failed. The site
 * instances get pg_stat_statements, so a run can tell where the database time went, and
 * run durable (fsync and full_page_writes on, as in production; dev and tests run them off).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as PgClient, type Pool } from 'pg';
import type { Client } from '@temporalio/client';
import { martOwnerUrl, type Config, type Member } from '../config';
import { Pools } from '../db';
import { silentLogger } from '../logger';
import { instanceUrl, startInstance, stopInstance } from '../dev/postgres';
import { findTemporalCli } from '../dev/temporal';
import {
  planWorld,
  saveWorld,
  sitesOf,
  startReporting,
  startSiteDatabases,
  startTemporal,
  startWorker,
  stopWorld,
  configFile,
  type Layout,
  type TemporalMode,
  type WorldState,
} from '../dev/world';
import { connectClient } from '../temporal/connection';
import { log } from './util';

export interface BenchWorld {
  name: string;
  state: WorldState;
  config: Config;
  configFile: string;
  client: Client;
  pools: Pools;
  binary: string;
  /** Whether pg_stat_statements runs on the site instances. */
  statements: boolean;
  mart(site: string): Pool;
  idb(member: Member): Pool;
  /** A pool on another database of a site's instance (created by the caller). */
  db(site: string, database: string): Pool;
  /** The `postgres` database of a site's instance, where pg_stat_statements is read. */
  admin(site: string): Pool;
  close(): Promise<void>;
}

const open = new Set<BenchWorld>();

/** Stops every world still open (on a signal or a failure). */
export async function closeAllWorlds(): Promise<void> {
  await Promise.allSettled([...open].map((w) => w.close()));
}

export interface WorldOptions {
  layout: Layout;
  /** Sites whose worker process runs; default every site. */
  workers?: string[];
  /** Start the reporting services (DR needs them). */
  reporting?: boolean;
  etl?: WorldState['etl'];
  dr?: WorldState['dr'];
  temporal?: TemporalMode;
  /** pg_stat_statements on the site instances (a restart of each); default true. */
  statements?: boolean;
  /** temporal.runHistoryEvents: a small value makes runs continue as new within seconds. */
  runHistoryEvents?: number;
}

async function enableStatements(state: WorldState, site: string): Promise<boolean> {
  const inst = state.pg[site]!;
  const q = async (sql: string) => {
    const c = new PgClient({ connectionString: instanceUrl(inst, 'postgres') });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  try {
    await q(`alter system set shared_preload_libraries = 'pg_stat_statements'`);
    await stopInstance(inst, 'fast');
    await startInstance(inst);
    await q('create extension if not exists pg_stat_statements');
    return true;
  } catch (e) {
    log.warn(`pg_stat_statements unavailable on ${site}; database time per stage will not be reported`, { error: (e as Error).message });
    return false;
  }
}

export async function openBenchWorld(name: string, options: WorldOptions): Promise<BenchWorld> {
  const root = mkdtempSync(join(tmpdir(), `twinmart-bench-${name}-`));
  chmodSync(root, 0o755); // PostgreSQL runs as user postgres and must reach its data dir
  const t0 = Date.now();
  log.info(`world ${name}: starting`, { root });
  const state = await planWorld(root, {
    layout: options.layout,
    etl: options.etl ?? {},
    dr: options.dr ?? {},
    temporal: options.temporal,
    runHistoryEvents: options.runHistoryEvents,
    durable: true,
  });
  const sites = sitesOf(state.layout);
  const pools = new Pools();
  let closing: Promise<void> | undefined;
  const world: BenchWorld = {
    name,
    state,
    config: undefined as unknown as Config,
    configFile: configFile(state),
    client: undefined as unknown as Client,
    pools,
    binary: '',
    statements: false,
    // The bench sets its marts up (migrations, raw COPY tables, truncates): the owner's work.
    mart: (site) => pools.get(martOwnerUrl(world.config, site)),
    // The bench writes probes and vacuums as the collectors do, not as the ETL's reader.
    idb: (member) => pools.get(member.collectorUrl ?? member.url, { max: 8 }),
    db: (site, database) => pools.get(instanceUrl(state.pg[site]!, database)),
    admin: (site) => pools.get(instanceUrl(state.pg[site]!, 'postgres'), { max: 2 }),
    // Every caller waits for the one stop: the run's own end must not exit while a
    // signal's stop is still under way.
    close: () =>
      (closing ??= (async () => {
        const keep = Boolean(process.env.TWINMART_KEEP_BENCH_DATA);
        log.info(`world ${name}: stopping${keep ? ` (kept at ${root})` : ''}`);
        // The world's client of the moment: a run may move it to another site's cluster.
        await (world.client as Client | undefined)?.connection.close().catch(() => undefined);
        await pools.end().catch(() => undefined);
        await stopWorld(state, false).catch((e: Error) => log.warn(`world ${name}: stop failed`, { error: e.message }));
        if (!keep) rmSync(root, { recursive: true, force: true });
        open.delete(world);
      })()),
  };
  open.add(world);
  try {
    for (const site of sites) await startSiteDatabases(state, site, silentLogger);
    if (options.statements !== false) {
      const enabled = await Promise.all(sites.map((s) => enableStatements(state, s)));
      world.statements = enabled.every(Boolean);
    }
    world.binary = process.env.TWINMART_TEMPORAL_CLI ?? (await findTemporalCli({ logger: silentLogger, build: false }));
    await startTemporal(state, world.binary, silentLogger);
    world.config = saveWorld(state);
    for (const site of options.workers ?? sites) startWorker(state, site);
    if (options.reporting) for (const site of sites) startReporting(state, site);
    world.client = await connectClient(world.config);
  } catch (e) {
    await world.close();
    throw e;
  }
  log.info(`world ${name}: up in ${((Date.now() - t0) / 1000).toFixed(1)} s`, {
    sites,
    members: world.config.members.length,
    temporal: world.config.temporal.address,
  });
  return world;
}
