/**
 * A real Temporal cluster per site for the dev world's production mode (docs/architecture.md,
 * "Temporal per site"): the server built from source, its persistence and visibility in
 * the site's own PostgreSQL, the clusters connected to each other and one global
 * namespace replicated between them, active at the primary site.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, cpSync, existsSync, fstatSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { stringify } from 'yaml';
import type { Logger } from '../logger';
import { SEARCH_ATTRIBUTES } from '../workflows/names';
import { waitFor } from '../wait';
import { logTail } from './log-tail';
import { isExecutable } from './files';
import { createDatabase, instanceUrl, type PgInstance } from './postgres';
import { buildGoTool, findGo, isAlive, stopProcess, temporalCacheDir, waitUntilServing, type GoTool } from './temporal';
import { Client } from 'pg';

const exec = promisify(execFile);

/** The server release the CLI v1.5.1 embeds: its module cache serves this build. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
const SERVER_MODULE = 'go.temporal.io/server';

const SERVER_TOOL: GoTool = {
  name: `temporal-server-${TEMPORAL_SERVER_VERSION}`,
  label: `the Temporal server ${TEMPORAL_SERVER_VERSION}`,
  targets: [`${SERVER_MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`, `${SERVER_MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`],
  binaries: ['server', 'sql'],
  minutes: 4,
  // The PostgreSQL schemas ship inside the module; kept beside the binaries, so a cleaned module cache does not lose them.
  async finish(dir, go) {
    const { stdout } = await exec(go, ['env', 'GOMODCACHE']);
    cpSync(join(stdout.trim(), `${SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12'), join(dir, 'schema'), { recursive: true });
    await exec('chmod', ['-R', 'u+w', join(dir, 'schema')]); // the module cache is read-only
  },
};

/**
 * The Web UI's server (the one the CLI's dev server embeds, same version), a module in
 * the CLI's own module graph: it builds from that cache in about 2 minutes. Its own tool
 * because its binary is called `server` too.
 */
export const TEMPORAL_UI_VERSION = 'v2.42.1';
const UI_TOOL: GoTool = {
  name: `temporal-ui-server-${TEMPORAL_UI_VERSION}`,
  label: `the Temporal Web UI server ${TEMPORAL_UI_VERSION}`,
  targets: [`github.com/temporalio/ui-server/v2/cmd/server@${TEMPORAL_UI_VERSION}`],
  binaries: ['server'],
  minutes: 3,
};

export interface ServerTool {
  server: string;
  sql: string;
  /** The Web UI server, one per cluster. */
  ui: string;
  /** schema/postgresql/v12 of the server module: temporal/versioned and visibility/versioned. */
  schema: string;
}

/** The cached server build, built with Go when `build` and none is there. */
export async function findTemporalServer(opts: { logger: Logger; build?: boolean; onBuildProgress?: (line: string) => void }): Promise<ServerTool> {
  const root = temporalCacheDir();
  const at = (dir: string, uiDir: string): ServerTool => ({
    server: join(dir, 'server'),
    sql: join(dir, 'sql'),
    schema: join(dir, 'schema'),
    ui: join(uiDir, 'server'),
  });
  const cached = at(join(root, SERVER_TOOL.name), join(root, UI_TOOL.name));
  if ((await isExecutable(cached.server)) && existsSync(cached.schema) && (await isExecutable(cached.ui))) return cached;
  const go = await findGo();
  if (!opts.build || !go) {
    throw new Error(
      `No Temporal server and Web UI build at ${cached.server} and ${cached.ui}. ` +
        (go ? 'Run `npm test` or `twinmart dev up --temporal per-site` to build them (about 6 minutes).' : 'Install Go (https://go.dev/dl) so twinmart can build them.'),
    );
  }
  const progress = opts.onBuildProgress ?? ((line: string) => opts.logger.info(line));
  return at(await buildGoTool(SERVER_TOOL, go, root, progress), await buildGoTool(UI_TOOL, go, root, progress));
}

/** The ports of one cluster's four services, and where its process and files are. */
export interface ClusterState {
  /** Cluster name: the site's. */
  name: string;
  initialFailoverVersion: number;
  ports: {
    frontend: number;
    frontendHttp: number;
    history: number;
    matching: number;
    worker: number;
    frontendMembership: number;
    historyMembership: number;
    matchingMembership: number;
    workerMembership: number;
    metrics: number;
    /** The cluster's Web UI (absent in worlds planned before it had one). */
    ui?: number;
  };
  pid: number | null;
  uiPid?: number | null;
}

/** The namespace of the per-site mode: a global one, registered by the world. */
export const GLOBAL_NAMESPACE = 'twinmart';

/** Same for every cluster: failover versions are initialFailoverVersion + n × this. */
const FAILOVER_VERSION_INCREMENT = 10;
const TEMPORAL_ROLE = 'twinmart_temporal';
const DATABASES = { default: 'temporal', visibility: 'temporal_visibility' } as const;

export const clusterAddress = (c: ClusterState): string => `127.0.0.1:${c.ports.frontend}`;
export const clusterUiUrl = (c: ClusterState): string | null => (c.ports.ui ? `http://127.0.0.1:${c.ports.ui}` : null);

/** The cluster's persistence and visibility databases in the site's instance, schemas up to date. */
export async function prepareClusterDatabases(tool: ServerTool, inst: PgInstance): Promise<void> {
  const admin = new Client({ connectionString: instanceUrl(inst, 'postgres') });
  await admin.connect();
  try {
    // A role of its own: the Temporal server needs no rights on the marts or IDBs.
    await admin.query(`do $$ begin create role ${TEMPORAL_ROLE} login; exception when duplicate_object then null; end $$`);
  } finally {
    await admin.end();
  }
  for (const [kind, db] of Object.entries(DATABASES)) {
    await createDatabase(inst, db, TEMPORAL_ROLE);
    const base = ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(inst.port), '-u', TEMPORAL_ROLE, '--db', db];
    const versioned = join(tool.schema, kind === 'default' ? 'temporal' : 'visibility', 'versioned');
    // setup-schema -v 0.0 creates the version table and fails harmlessly if it is there.
    await exec(tool.sql, [...base, 'setup-schema', '-v', '0.0']).catch(() => undefined);
    try {
      await exec(tool.sql, [...base, 'update-schema', '-d', versioned]);
    } catch (e) {
      throw new Error(`the Temporal schema of ${db} on ${inst.name} could not be brought up to date: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
    }
  }
}

function serverConfig(c: ClusterState, inst: PgInstance, dynamicConfigFile: string): unknown {
  const sql = (databaseName: string, conns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `127.0.0.1:${inst.port}`,
      connectProtocol: 'tcp',
      user: TEMPORAL_ROLE,
      password: '',
      maxConns: conns,
      maxIdleConns: conns,
      maxConnLifetime: '1h',
    },
  });
  const rpc = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: '127.0.0.1', ...extra },
  });
  return {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: 4,
      datastores: { default: sql(DATABASES.default, 20), visibility: sql(DATABASES.visibility, 4) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: { prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${c.ports.metrics}` } },
    },
    services: {
      frontend: rpc(c.ports.frontend, c.ports.frontendMembership, { httpPort: c.ports.frontendHttp }),
      history: rpc(c.ports.history, c.ports.historyMembership),
      matching: rpc(c.ports.matching, c.ports.matchingMembership),
      worker: rpc(c.ports.worker, c.ports.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: true,
      failoverVersionIncrement: FAILOVER_VERSION_INCREMENT,
      // Each cluster names itself master: one whose master is not in its own list panics at start.
      masterClusterName: c.name,
      currentClusterName: c.name,
      clusterInformation: {
        [c.name]: { enabled: true, initialFailoverVersion: c.initialFailoverVersion, rpcName: 'frontend', rpcAddress: clusterAddress(c) },
      },
    },
    // Calls for the namespace at the cluster where it is not active go to the one where it is.
    dcRedirectionPolicy: { policy: 'all-apis-forwarding' },
    archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    namespaceDefaults: { archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } } },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
}

/** Dynamic config: clusters see each other within seconds instead of the default minute. */
function dynamicConfig(extra: Record<string, unknown>): string {
  const values: Record<string, unknown> = {
    'system.clusterMetadataRefreshInterval': '2s',
    'system.namespaceCacheRefreshInterval': '2s',
    'frontend.enableUpdateWorkflowExecution': true,
    'system.forceSearchAttributesCacheRefreshOnRead': true,
    ...extra,
  };
  return stringify(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, [{ value: v }]])));
}

/** Starts the cluster's server (detached) and waits until its frontend answers. */
export async function startCluster(
  tool: ServerTool,
  c: ClusterState,
  inst: PgInstance,
  dir: string,
  logFile: string,
  logger: Logger,
  extraDynamicConfig: Record<string, unknown> = {},
): Promise<void> {
  if (isAlive(c.pid)) return;
  mkdirSync(join(dir, 'config'), { recursive: true });
  const dynamicFile = join(dir, 'dynamicconfig.yaml');
  writeFileSync(dynamicFile, dynamicConfig(extraDynamicConfig));
  writeFileSync(join(dir, 'config', 'development.yaml'), stringify(serverConfig(c, inst, dynamicFile)));
  const out = openSync(logFile, 'a');
  const logStart = fstatSync(out).size;
  const child = spawn(tool.server, ['--root', dir, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'], {
    stdio: ['ignore', out, out],
    detached: true,
    cwd: dir,
  });
  closeSync(out);
  child.unref();
  c.pid = child.pid ?? null;
  const exited = new Promise<string>((resolveExit) => child.once('exit', (code, signal) => resolveExit(`exited with ${code ?? signal}`)));
  logger.info(`starting the Temporal cluster ${c.name}`, { address: clusterAddress(c), pid: c.pid });
  try {
    const connection = await waitUntilServing(clusterAddress(c), (conn) => conn.operatorService.listClusters({}), exited, 90_000);
    await connection.close();
  } catch (e) {
    throw new Error(`the Temporal server of ${c.name} did not come up: ${(e as Error).message}\n${await logTail(logFile, 30, logStart)}`);
  }
  await startClusterUi(tool, c, join(dir, 'ui'), logFile.replace(/\.log$/, '-ui.log'), logger);
}

/** The cluster's Web UI, on loopback, its namespace the default view; waits until it serves its page. */
async function startClusterUi(tool: ServerTool, c: ClusterState, dir: string, logFile: string, logger: Logger): Promise<void> {
  const url = clusterUiUrl(c);
  if (!url || isAlive(c.uiPid ?? null)) return;
  mkdirSync(join(dir, 'config'), { recursive: true });
  const config = {
    temporalGrpcAddress: clusterAddress(c),
    host: '127.0.0.1',
    port: c.ports.ui,
    enableUi: true,
    defaultNamespace: GLOBAL_NAMESPACE,
    notifyOnNewVersion: false,
    cors: { cookieInsecure: true, allowOrigins: [] },
  };
  writeFileSync(join(dir, 'config', 'development.yaml'), stringify(config));
  const out = openSync(logFile, 'a');
  const child = spawn(tool.ui, ['--root', dir, '--config', 'config', '--env', 'development', 'start'], { stdio: ['ignore', out, out], detached: true, cwd: dir });
  closeSync(out);
  child.unref();
  c.uiPid = child.pid ?? null;
  await waitFor(`the Web UI of cluster ${c.name} at ${url}`, async () => (await fetch(url).catch(() => null))?.ok === true, 30_000, 250).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await logTail(logFile, 20)}`);
  });
  logger.info(`the Web UI of cluster ${c.name}`, { url });
}

export async function stopCluster(c: ClusterState, mode: 'graceful' | 'kill'): Promise<void> {
  for (const key of ['uiPid', 'pid'] as const) {
    const pid = c[key];
    c[key] = null;
    if (!pid || !isAlive(pid)) continue;
    if (mode === 'kill') process.kill(pid, 'SIGKILL');
    else await stopProcess(pid, 20_000);
  }
}

/** Each step of linking the clusters may take up to two minutes, checked every second. */
const linked = <T>(what: string, check: () => Promise<T | false>): Promise<T> => waitFor(what, check, 120_000, 1000);

async function withConnection<T>(address: string, fn: (c: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: '5s' });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

/**
 * Connects every cluster to every other (`temporal operator cluster upsert
 * --enable-connection`), waits until each lists the others, then registers the global
 * namespace active at `active` and replicated to all, with the search attributes the
 * workflows set. Idempotent: a cluster that is already connected or a namespace that
 * exists is left as it is.
 */
export async function linkClusters(clusters: ClusterState[], namespace: string, active: string, logger: Logger): Promise<void> {
  for (const a of clusters) {
    for (const b of clusters.filter((x) => x !== a)) {
      await withConnection(clusterAddress(a), (c) =>
        c.operatorService.addOrUpdateRemoteCluster({ frontendAddress: clusterAddress(b), enableRemoteClusterConnection: true }),
      );
    }
  }
  const names = clusters.map((c) => c.name);
  await linked(`every cluster to list ${names.join(', ')}`, async () => {
    for (const a of clusters) {
      const { clusters: listed } = await withConnection(clusterAddress(a), (c) => c.operatorService.listClusters({}));
      const known = new Set((listed ?? []).filter((x) => x.isConnectionEnabled || x.clusterName === a.name).map((x) => x.clusterName));
      if (!names.every((n) => known.has(n))) return false;
    }
    return true;
  });
  const primary = clusters.find((c) => c.name === active)!;
  // The cluster list is read from the database, but a registration checks the clusters'
  // in-memory metadata, refreshed every system.clusterMetadataRefreshInterval.
  await linked(`the global namespace ${namespace} registered`, () =>
    withConnection(clusterAddress(primary), async (c) => {
      try {
        await c.workflowService.registerNamespace({
          namespace,
          isGlobalNamespace: true,
          activeClusterName: active,
          clusters: names.map((clusterName) => ({ clusterName })),
          workflowExecutionRetentionPeriod: msToTs('3 days'),
        });
        logger.info(`registered the global namespace ${namespace}, active at ${active}`, { clusters: names });
        return true;
      } catch (e) {
        if (/already exists|AlreadyExists/i.test((e as Error).message)) return true;
        throw e;
      }
    }),
  );
  for (const cl of clusters) {
    await linked(`namespace ${namespace} at ${cl.name}`, () =>
      withConnection(clusterAddress(cl), (c) => c.workflowService.describeNamespace({ namespace })).then(() => true, () => false),
    );
  }
  await withConnection(clusterAddress(primary), async (c) => {
    const { customAttributes } = await c.operatorService.listSearchAttributes({ namespace });
    const missing = Object.values(SEARCH_ATTRIBUTES).filter((k) => !(k.name in (customAttributes ?? {})));
    if (!missing.length) return;
    await c.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, proto.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  });
}
