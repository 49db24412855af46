/**
 * A local multi-site world: one real PostgreSQL instance per site holding its mart and
 * its IDBs, a Temporal dev server, and one worker process per site. `twinmart dev` and
 * the tests both build on this, so a site failure in a test is the same real server stop
 * an operator sees in the demo. State lives in <root>/world.json so separate CLI
 * invocations (`dev up`, `site stop`, `dev down`) act on the same processes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync, existsSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { Pool } from 'pg';
import { parseConfig, type Config, type ConfigInput } from '../config';
import type { Logger } from '../logger';
import { repoRoot } from '../paths';
import { applyIdbSchema } from '../sim/idb';
import { freeLowPort } from './ports';
import {
  createDatabase,
  createServerDir,
  initInstance,
  instanceUrl,
  removeInstance,
  startInstance,
  stopInstance,
  type PgInstance,
} from './postgres';
import { createRoles, ETL_ROLE, grantIdbReader, IDB_READER, MART_OWNER, REPORTING_ROLE } from './roles';
import { startDevServer, stopProcess } from './temporal';
import { rejoinSiteCluster } from '../temporal/namespace';
import {
  clusterAddress,
  findTemporalServer,
  linkClusters,
  prepareClusterDatabases,
  startCluster,
  stopCluster,
  GLOBAL_NAMESPACE,
  type ClusterState,
} from './temporal-cluster';

/**
 * HA sets: source id -> members as (site, database name). A member's database lives in
 * its site's PostgreSQL instance unless it names an `instance` of its own (so a test can
 * stop one member's server without its site).
 */
export type Layout = Record<string, { site: string; db: string; instance?: string; password?: string; query?: string }[]>;

/**
 * A member's URL, with a layout's password and query if it names them: the local
 * instances trust local connections, so these only travel (a test checks where they show).
 */
function memberUrl(url: string, m: Layout[string][number]): string {
  if (!m.password && !m.query) return url;
  const u = new URL(url);
  if (m.password) u.password = m.password;
  if (m.query) u.search = m.query;
  return u.toString();
}

/** The dev world (docs/architecture.md): one set split across sites, one wholly at each site. */
export const DEV_LAYOUT: Layout = {
  'sw-voice-1': [
    { site: 'dc1', db: 'idb_voice_1' },
    { site: 'dc2', db: 'idb_voice_1' },
  ],
  'sw-voice-2': [
    { site: 'dc1', db: 'idb_voice_2a' },
    { site: 'dc1', db: 'idb_voice_2b' },
  ],
  'sw-chat-1': [
    { site: 'dc2', db: 'idb_chat_1a' },
    { site: 'dc2', db: 'idb_chat_1b' },
  ],
};

export const MART_DB = 'twinmart_mart';

export interface WorldState {
  root: string;
  layout: Layout;
  primary: string;
  /** PostgreSQL instances by name: one per site (named like the site, holding its mart) plus any member's own. */
  pg: Record<string, PgInstance>;
  /**
   * The dev server (one for all sites), or with `clusters` a real Temporal cluster per
   * site on its own PostgreSQL. dynamicConfig is kept so a restarted server runs as the first one did.
   */
  temporal: {
    port: number;
    uiPort: number | null;
    dbFile: string;
    pid: number | null;
    dynamicConfig?: Record<string, unknown>;
    clusters?: Record<string, ClusterState>;
  };
  workers: Record<string, number | null>;
  /** Reporting service per site: its port and process. */
  reporting: Record<string, { port: number; pid: number | null }>;
  /** The port of each site's worker metrics (absent in worlds saved before). */
  metrics?: Record<string, number>;
  etl: Partial<ConfigInput['etl']>;
  dr?: Partial<ConfigInput['dr']>;
  retention?: Partial<ConfigInput['retention']>;
  runHistoryEvents?: number;
  /**
   * PostgreSQL as in production: fsync and full_page_writes on (the benchmark's worlds),
   * and wal_level logical, which a collector offering a push-based feed would run.
   * Dev and test worlds keep them off (see initInstance).
   */
  durable?: boolean;
}

export const memberId = (db: string, site: string): string => `${db.replace(/_/g, '-')}-${site}`;

export function sitesOf(layout: Layout): string[] {
  return [...new Set(Object.values(layout).flatMap((ms) => ms.map((m) => m.site)))].sort();
}

const instanceOf = (m: { site: string; instance?: string }): string => m.instance ?? m.site;

/** Where a member of the world lives: its layout entry (its database, and its own instance if it has one). */
export function layoutEntry(state: WorldState, id: string): Layout[string][number] {
  const entry = Object.values(state.layout).flat().find((m) => memberId(m.db, m.site) === id);
  if (!entry) throw new Error(`no member ${id} in the world's layout`);
  return entry;
}

/** The instance that holds a member's database: its own, or its site's. */
export const memberInstance = (state: WorldState, id: string): string => instanceOf(layoutEntry(state, id));

/** The instances a site's failure takes down: its own and those of its members. */
export function instancesOf(layout: Layout, site: string): string[] {
  const own = Object.values(layout).flatMap((ms) => ms.filter((m) => m.site === site).map(instanceOf));
  return [...new Set([site, ...own])];
}

export type TemporalMode = 'dev' | 'per-site';

async function planClusters(sites: string[]): Promise<Record<string, ClusterState>> {
  const clusters: Record<string, ClusterState> = {};
  for (const [i, site] of sites.entries()) {
    const ports = {} as ClusterState['ports'];
    for (const k of CLUSTER_PORTS) ports[k] = await freeLowPort();
    clusters[site] = { name: site, initialFailoverVersion: i + 1, ports, pid: null };
  }
  return clusters;
}
const CLUSTER_PORTS = [
  'frontend', 'frontendHttp', 'history', 'matching', 'worker',
  'frontendMembership', 'historyMembership', 'matchingMembership', 'workerMembership', 'metrics', 'ui',
] as const;

export { GLOBAL_NAMESPACE };

export function worldConfig(state: WorldState): ConfigInput {
  const sites = sitesOf(state.layout);
  const clusters = state.temporal.clusters;
  return {
    temporal: {
      // Per site: the primary's cluster serves commands given without a site.
      address: clusters ? clusterAddress(clusters[state.primary]!) : `127.0.0.1:${state.temporal.port}`,
      namespace: clusters ? GLOBAL_NAMESPACE : 'default',
      ...(state.runHistoryEvents && { runHistoryEvents: state.runHistoryEvents }),
    },
    etl: { cycleSeconds: 1, serviceLevelSeconds: 20, ...state.etl },
    // A local world notices a stopped site within seconds.
    dr: { probeSeconds: 3, ...state.dr },
    ...(state.retention && { retention: state.retention }),
    reporting: { primary: state.primary },
    // Each process connects as the role its job needs (README, Security); the simulator as the collectors' superuser.
    sites: Object.fromEntries(
      sites.map((s) => [
        s,
        {
          mart: instanceUrl(state.pg[s]!, MART_DB, ETL_ROLE),
          martOwner: instanceUrl(state.pg[s]!, MART_DB, MART_OWNER),
          reportingMart: instanceUrl(state.pg[s]!, MART_DB, REPORTING_ROLE),
          reportingPort: state.reporting[s]!.port,
          ...(state.metrics?.[s] && { metricsPort: state.metrics[s] }),
          ...(clusters && { temporal: { address: clusterAddress(clusters[s]!), cluster: clusters[s]!.name } }),
        },
      ]),
    ),
    sources: Object.fromEntries(
      Object.entries(state.layout).map(([source, members]) => [
        source,
        members.map((m) => ({
          id: memberId(m.db, m.site),
          site: m.site,
          url: memberUrl(instanceUrl(state.pg[instanceOf(m)]!, m.db, IDB_READER), m),
          collectorUrl: instanceUrl(state.pg[instanceOf(m)]!, m.db),
        })),
      ]),
    ),
  };
}

export const configFile = (state: WorldState): string => join(state.root, 'dev.yaml');
const stateFile = (root: string): string => join(root, 'world.json');
const logDir = (state: WorldState): string => join(state.root, 'logs');

/** The root must be traversable: PostgreSQL runs as user postgres, whatever our umask. */
function ensureRoot(state: WorldState): void {
  mkdirSync(state.root, { recursive: true });
  chmodSync(state.root, 0o755);
}

export function saveWorld(state: WorldState): Config {
  ensureRoot(state);
  writeFileSync(stateFile(state.root), JSON.stringify(state, null, 2));
  const input = worldConfig(state);
  writeFileSync(configFile(state), `# written by twinmart dev; edits are overwritten\n${stringify(input)}`);
  return parseConfig(input, configFile(state));
}

export function loadWorld(root: string): WorldState {
  const file = stateFile(root);
  if (!existsSync(file)) throw new Error(`no dev world at ${root}: run \`twinmart dev up\` first`);
  return JSON.parse(readFileSync(file, 'utf8')) as WorldState;
}

async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((ok) => {
    const srv = createServer();
    srv.once('error', () => void freeLowPort().then(ok));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => ok(preferred)));
  });
}

/** Whether every existing directory above `dir` lets other users (user postgres) through. */
function othersCanTraverse(dir: string): boolean {
  for (let d = dirname(dir); ; d = dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      // not created yet: mkdir makes it with the usual 0755
    }
    if (d === dirname(d)) return true;
  }
}

/**
 * Where a world's PostgreSQL data directories go: in its root, unless user postgres
 * cannot reach that (a clone under /root, mode 0700); then under
 * /var/tmp/twinmart-<hash of the root>, so no one has to open up their home directory.
 */
export function pgDataBase(root: string): string {
  const abs = resolve(root);
  if (othersCanTraverse(abs)) return abs;
  return join('/var/tmp', `twinmart-${createHash('sha256').update(abs).digest('hex').slice(0, 12)}`);
}

/** Plans a world: ports (preferred ones when free), data dirs. Nothing is started. */
export async function planWorld(
  root: string,
  options: {
    layout?: Layout;
    primary?: string;
    preferredPorts?: boolean;
    etl?: WorldState['etl'];
    dr?: WorldState['dr'];
    retention?: WorldState['retention'];
    runHistoryEvents?: number;
    temporalDynamicConfig?: Record<string, unknown>;
    /** 'per-site': a Temporal cluster per site with one replicated namespace (the production shape). */
    temporal?: TemporalMode;
    durable?: boolean;
  } = {},
): Promise<WorldState> {
  const layout = options.layout ?? DEV_LAYOUT;
  const sites = sitesOf(layout);
  // Below the ephemeral range: a process of the world binds its port again after a
  // restart, and by then an outgoing connection or a port-0 listener may hold one above.
  const pick = (p: number) => (options.preferredPorts ? portOr(p) : freeLowPort());
  const pg: Record<string, PgInstance> = {};
  const names = [...new Set(sites.flatMap((s) => instancesOf(layout, s)))];
  for (const [i, name] of names.entries()) {
    pg[name] = { name, dataDir: join(pgDataBase(root), `pg-${name}`), port: await pick(5433 + i) };
  }
  return {
    root: resolve(root),
    layout,
    primary: options.primary ?? sites[0]!,
    pg,
    temporal: {
      port: await pick(7233),
      uiPort: options.preferredPorts ? await pick(8233) : null,
      dbFile: join(resolve(root), 'temporal.db'),
      pid: null,
      ...(options.temporalDynamicConfig ? { dynamicConfig: options.temporalDynamicConfig } : {}),
      ...(options.temporal === 'per-site' ? { clusters: await planClusters(sites) } : {}),
    },
    workers: Object.fromEntries(sites.map((s) => [s, null])),
    reporting: Object.fromEntries(
      await Promise.all(sites.map(async (s, i) => [s, { port: await pick(8401 + i), pid: null }] as const)),
    ),
    metrics: Object.fromEntries(await Promise.all(sites.map(async (s, i) => [s, await pick(9464 + i)] as const))),
    etl: options.etl ?? {},
    ...(options.dr ? { dr: options.dr } : {}),
    ...(options.retention ? { retention: options.retention } : {}),
    ...(options.runHistoryEvents ? { runHistoryEvents: options.runHistoryEvents } : {}),
    ...(options.durable ? { durable: true } : {}),
  };
}

/** Creates (if missing) and starts one instance with the databases the layout puts there. */
export async function startInstanceDatabases(state: WorldState, name: string, logger: Logger): Promise<void> {
  const inst = state.pg[name]!;
  ensureRoot(state);
  if (!existsSync(join(inst.dataDir, 'PG_VERSION'))) {
    logger.info(`creating PostgreSQL instance ${name}`, { port: inst.port, dataDir: inst.dataDir });
    if (dirname(inst.dataDir) !== state.root) await createServerDir(dirname(inst.dataDir));
    await initInstance(inst, { fsync: state.durable, logical: state.durable });
  }
  await startInstance(inst);
  await createRoles(inst);
  if (name in state.workers) await createDatabase(inst, MART_DB, MART_OWNER);
  for (const members of Object.values(state.layout)) {
    for (const m of members.filter((x) => instanceOf(x) === name)) {
      await createDatabase(inst, m.db);
      await applyIdbSchema(instanceUrl(inst, m.db));
      await grantIdbReader(inst, m.db);
    }
  }
}

/** A site's PostgreSQL instances with its mart and IDB databases, created where missing. */
export async function startSiteDatabases(state: WorldState, site: string, logger: Logger): Promise<void> {
  for (const name of instancesOf(state.layout, site)) await startInstanceDatabases(state, name, logger);
}

/** Per site: its cluster's server up on its databases, in the site's instance. */
export async function startSiteCluster(state: WorldState, site: string, logger: Logger): Promise<void> {
  const c = state.temporal.clusters![site]!;
  const tool = await findTemporalServer({ logger });
  const inst = state.pg[site]!;
  await prepareClusterDatabases(tool, inst);
  await startCluster(tool, c, inst, join(state.root, `temporal-${site}`), join(logDir(state), `temporal-${site}.log`), logger, state.temporal.dynamicConfig);
}

export async function startTemporal(state: WorldState, binary: string, logger: Logger): Promise<string | null> {
  mkdirSync(logDir(state), { recursive: true });
  const clusters = state.temporal.clusters;
  if (clusters) {
    for (const site of Object.keys(clusters)) await startSiteCluster(state, site, logger);
    await linkClusters(Object.values(clusters), GLOBAL_NAMESPACE, state.primary, logger);
    return null;
  }
  const server = await startDevServer({
    binary,
    port: state.temporal.port,
    uiPort: state.temporal.uiPort,
    dbFile: state.temporal.dbFile,
    logFile: join(logDir(state), 'temporal.log'),
    logger,
    dynamicConfig: state.temporal.dynamicConfig,
  });
  state.temporal.pid = server.pid;
  return server.uiUrl;
}

export async function stopTemporal(state: WorldState, mode: 'graceful' | 'kill' = 'graceful'): Promise<void> {
  for (const c of Object.values(state.temporal.clusters ?? {})) await stopCluster(c, mode);
  const pid = state.temporal.pid;
  state.temporal.pid = null;
  if (pid === null) return;
  if (mode === 'kill') killQuietly(pid, 'SIGKILL');
  else await stopProcess(pid);
}

/** Runs `twinmart <command> --site <site>` as its own detached process, logging to a file. */
function spawnSiteProcess(
  state: WorldState,
  command: 'worker' | 'reporting',
  site: string,
  env: NodeJS.ProcessEnv,
  config = configFile(state),
): number {
  mkdirSync(logDir(state), { recursive: true });
  const log = openSync(join(logDir(state), `${command}-${site}.log`), 'a');
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'bin', 'twinmart.js'), command, '--site', site, '--config', config],
    { stdio: ['ignore', log, log], detached: true, env },
  );
  closeSync(log);
  child.unref();
  return child.pid!;
}

/** `config`: a file of the worker's own, as when a site's configuration differs from the others'. */
export function startWorker(state: WorldState, site: string, env: NodeJS.ProcessEnv = process.env, config?: string): number {
  return (state.workers[site] = spawnSiteProcess(state, 'worker', site, env, config));
}

export function startReporting(state: WorldState, site: string, env: NodeJS.ProcessEnv = process.env): number {
  return (state.reporting[site]!.pid = spawnSiteProcess(state, 'reporting', site, env));
}

export async function stopWorker(state: WorldState, site: string, mode: 'graceful' | 'kill' = 'graceful'): Promise<void> {
  const pid = state.workers[site];
  state.workers[site] = null;
  await stopPid(pid ?? null, mode, 30_000);
}

async function stopReporting(state: WorldState, site: string, mode: 'graceful' | 'kill'): Promise<void> {
  const pid = state.reporting[site]!.pid;
  state.reporting[site]!.pid = null;
  await stopPid(pid, mode, 10_000);
}

async function stopPid(pid: number | null, mode: 'graceful' | 'kill', graceMs: number): Promise<void> {
  if (!pid) return;
  if (mode === 'kill') killQuietly(pid, 'SIGKILL');
  else await stopProcess(pid, graceMs);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** A real site failure: its workers die and its PostgreSQL stops as in a crash. */
export async function failSite(state: WorldState, site: string): Promise<void> {
  await stopWorker(state, site, 'kill');
  await stopReporting(state, site, 'kill');
  const cluster = state.temporal.clusters?.[site];
  if (cluster) await stopCluster(cluster, 'kill');
  for (const name of instancesOf(state.layout, site)) await stopInstance(state.pg[name]!, 'immediate');
}

/**
 * The site comes back; with `wipe` as a replacement: empty databases, IDBs recreated
 * with new incarnations, an empty mart.
 */
export async function restoreSite(state: WorldState, site: string, logger: Logger, wipe: boolean): Promise<void> {
  if (wipe) for (const name of instancesOf(state.layout, site)) await removeInstance(state.pg[name]!);
  await startSiteDatabases(state, site, logger);
  if (state.temporal.clusters?.[site]) {
    await startSiteCluster(state, site, logger);
    // A replacement's cluster starts empty: back into the namespace before its worker asks for it.
    if (wipe) await rejoinSiteCluster(parseConfig(worldConfig(state), configFile(state)), site);
  }
  startWorker(state, site);
  startReporting(state, site);
}

/** Everything stopped; data kept unless `wipe`. */
export async function stopWorld(state: WorldState, wipe: boolean): Promise<void> {
  for (const site of Object.keys(state.workers)) {
    await stopWorker(state, site);
    await stopReporting(state, site, 'graceful');
  }
  await stopTemporal(state);
  for (const inst of Object.values(state.pg)) await stopInstance(inst, 'fast');
  if (!wipe) return;
  rmSync(state.root, { recursive: true, force: true });
  // Data directories kept outside the root (pgDataBase), and their directory once empty.
  for (const inst of Object.values(state.pg)) {
    rmSync(inst.dataDir, { recursive: true, force: true });
    try {
      rmdirSync(dirname(inst.dataDir));
    } catch {
      // gone with the root, or still holding another instance's directory
    }
  }
}

/**
 * On SIGINT or SIGTERM, runs `stop` and exits (130 or 143). The servers of a world run in
 * sessions of their own, so without this an interrupted bench or test run would leave
 * them running. Returns the function that removes the handlers.
 */
export function stopOnSignals(stop: (signal: NodeJS.Signals) => Promise<unknown>): () => void {
  let stopping = false;
  // Later signals (a test runner passes its own on) must not cut the stop short.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // An interrupted parent may close the pipes this process logs to: the stop goes on.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
    void stop(signal).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  const remove = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return remove;
}

/** A pool on one of the world's databases (instance by name), for tests. */
export function worldPool(state: WorldState, instance: string, db: string): Pool {
  const pool = new Pool({ connectionString: instanceUrl(state.pg[instance]!, db), max: 2 });
  pool.on('error', () => {});
  return pool;
}
