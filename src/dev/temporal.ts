/**
 * The Temporal side of `twinmart dev` and the tests: find (or build) a Temporal CLI
 * that can run the dev server we need, and run that dev server as a real process
 * which can be stopped, killed and restarted on the same database file.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import type { Logger } from '../logger';
import { SEARCH_ATTRIBUTES } from '../workflows/names';
import { logTail } from './log-tail';
import { freePort } from './ports';
import { isExecutable } from './files';

const exec = promisify(execFile);

/** The CLI release whose dev server (Temporal Server 1.29, UI 2.42) the project is tested with. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
const BUILD_NAME = `temporal-cli-${TEMPORAL_CLI_VERSION}`;
/** How long another process's build may keep us waiting before we give up on it. */
const LOCK_WAIT_MS = 30 * 60_000;
const PROGRESS_EVERY_MS = 10_000;

export interface FindTemporalCliOptions {
  logger: Logger;
  /** Build the CLI with `go install` when nothing usable is found and Go is available. */
  build?: boolean;
  /** Receives build progress lines; defaults to the logger at info level. */
  onBuildProgress?: (line: string) => void;
}

/**
 * A Temporal CLI binary that can run our dev server, tried in this order:
 * $TWINMART_TEMPORAL_CLI, `temporal` on PATH (if capable), the cached build, a new
 * build with Go (when `build` is set). Throws an error naming the fixes otherwise.
 */
export async function findTemporalCli(opts: FindTemporalCliOptions): Promise<string> {
  const { logger } = opts;
  const fromEnv = process.env.TWINMART_TEMPORAL_CLI;
  if (fromEnv) {
    if (!(await isExecutable(fromEnv))) {
      throw new Error(`TWINMART_TEMPORAL_CLI is set to "${fromEnv}", which is not an executable file: point it at a temporal binary or unset it`);
    }
    logger.debug('using the Temporal CLI from TWINMART_TEMPORAL_CLI', { binary: fromEnv });
    return fromEnv;
  }

  let pathNote: string | undefined;
  const onPath = await which('temporal');
  if (onPath) {
    const missing = await missingCapabilities(onPath);
    if (missing.length === 0) {
      logger.debug('using the Temporal CLI on PATH', { binary: onPath });
      return onPath;
    }
    pathNote = `${onPath} (on PATH) cannot be used: ${missing.join('; ')}`;
    logger.warn(`ignoring the Temporal CLI on PATH: ${missing.join('; ')}`, { binary: onPath });
  }

  const root = temporalCacheDir();
  const cached = join(root, BUILD_NAME, 'temporal');
  if (await isExecutable(cached)) {
    logger.debug('using the cached Temporal CLI build', { binary: cached });
    return cached;
  }

  const go = await findGo();
  if (opts.build && go) {
    const progress = opts.onBuildProgress ?? ((line: string) => logger.info(line));
    return buildTemporalCli(go, root, progress);
  }
  throw new Error(notFoundMessage(cached, pathNote, go));
}

function notFoundMessage(cached: string, pathNote: string | undefined, go: string | undefined): string {
  const lines = [
    `No usable Temporal CLI: TWINMART_TEMPORAL_CLI is not set, no capable \`temporal\` is on PATH, and there is no build at ${cached}.`,
    ...(pathNote ? [pathNote + '.'] : []),
    'Any one of these fixes it:',
    '  - install the Temporal CLI (https://docs.temporal.io/cli) so that `temporal` is on PATH;',
    '  - set TWINMART_TEMPORAL_CLI to the path of a temporal binary;',
    go
      ? `  - let twinmart build it with ${go}: run \`npm test\` or \`node dist/src/dev/ensure.js\` (about 6 minutes).`
      : `  - install Go (https://go.dev/dl) so twinmart can build ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION} into ${dirname(cached)}.`,
  ];
  return lines.join('\n');
}

/** ${TWINMART_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/twinmart} */
export function temporalCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TWINMART_CACHE_DIR) return resolve(env.TWINMART_CACHE_DIR);
  return join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'twinmart');
}


async function which(command: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && (await isExecutable(join(dir, command)))) return join(dir, command);
  }
  return undefined;
}

/** Go on PATH, or where the official tarball installs it (often missing from PATH in CI shells). */
export async function findGo(): Promise<string | undefined> {
  const onPath = await which('go');
  if (onPath) return onPath;
  const standard = '/usr/local/go/bin/go';
  return (await isExecutable(standard)) ? standard : undefined;
}

/**
 * What a CLI lacks for our use, judged by what it can do rather than by its version
 * string (builds from source report 0.0.0-DEV): a dev server with a database file and
 * search attributes, and `workflow update execute` for the operator commands.
 */
async function missingCapabilities(binary: string): Promise<string[]> {
  const help = async (args: string[]): Promise<string | undefined> => {
    try {
      const { stdout, stderr } = await exec(binary, [...args, '--help'], { timeout: 15_000 });
      return stdout + stderr;
    } catch {
      return undefined;
    }
  };
  const missing: string[] = [];
  const startDev = await help(['server', 'start-dev']);
  if (!startDev?.includes('--search-attribute') || !startDev.includes('--db-filename')) {
    missing.push('its `server start-dev` lacks --search-attribute or --db-filename');
  }
  const update = await help(['workflow', 'update']);
  if (!update || !/^\s+execute\s/m.test(update)) {
    missing.push('it has no `workflow update execute` command');
  }
  return missing;
}

export interface GoTool {
  /** Cache directory name, also the lock's. */
  name: string;
  /** What it is, for progress lines. */
  label: string;
  /** `module/cmd@version` targets of one `go install`. */
  targets: string[];
  /** Binaries the install leaves in GOBIN, all moved into the cache directory. */
  binaries: string[];
  minutes: number;
  /** Runs in the fresh build directory before it is moved into place (copy files beside the binaries). */
  finish?: (dir: string, go: string) => Promise<void>;
}

const TEMPORAL_CLI: GoTool = {
  name: BUILD_NAME,
  label: `the Temporal CLI ${TEMPORAL_CLI_VERSION}`,
  targets: [`${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`],
  binaries: ['temporal'],
  minutes: 6,
};

function buildTemporalCli(go: string, root: string, progress: (line: string) => void): Promise<string> {
  return buildGoTool(TEMPORAL_CLI, go, root, progress).then((dir) => join(dir, 'temporal'));
}

/**
 * `go install` into a fresh temporary GOBIN, then an atomic rename of the whole
 * directory into the cache, so a half-built tool is never found. A lock file keeps
 * concurrent builds (two test runs, say) from both spending minutes; the loser waits
 * for the winner. Returns the tool's directory.
 */
export async function buildGoTool(tool: GoTool, go: string, root: string, progress: (line: string) => void): Promise<string> {
  const dir = join(root, tool.name);
  const done = join(dir, tool.binaries[0]!);
  await mkdir(root, { recursive: true });
  const release = await acquireBuildLock(join(root, `${tool.name}.lock`), done, tool.label, progress);
  if (!release) return dir; // another process built it while we waited
  try {
    if (await isExecutable(done)) return dir;
    await removeAbandonedBuilds(root, tool.name);
    const gobin = await mkdtemp(join(root, `${tool.name}.build-`));
    try {
      await runGoInstall(go, gobin, tool, progress);
      await tool.finish?.(gobin, go);
      await rm(dir, { recursive: true, force: true });
      await rename(gobin, dir);
    } finally {
      await rm(gobin, { recursive: true, force: true });
    }
    progress(`built ${tool.label}: ${dir}`);
    return dir;
  } finally {
    await release();
  }
}

/** Temporary GOBINs of builds that were interrupted; only called while holding the lock. */
async function removeAbandonedBuilds(root: string, name: string): Promise<void> {
  for (const entry of await readdir(root)) {
    if (entry.startsWith(`${name}.build-`)) await rm(join(root, entry), { recursive: true, force: true });
  }
}

/**
 * Takes the lock (a file holding our pid, created atomically with link(2) so it is
 * never seen half-written) and returns its release, or returns undefined once the
 * binary exists because the holder finished. A lock whose holder is dead is stale and
 * removed; if two waiters race on that removal both may build, which only costs time.
 */
async function acquireBuildLock(
  lock: string,
  binary: string,
  label: string,
  progress: (line: string) => void,
): Promise<(() => Promise<void>) | undefined> {
  const mine = `${lock}.${process.pid}`;
  await writeFile(mine, String(process.pid));
  const started = Date.now();
  let lastNote = 0;
  try {
    for (;;) {
      try {
        await link(mine, lock);
        return () => rm(lock, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      if (await isExecutable(binary)) return undefined;
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) {
        await rm(lock, { force: true });
        continue;
      }
      const waited = Date.now() - started;
      if (waited > LOCK_WAIT_MS) {
        throw new Error(`gave up waiting for process ${holder} to build ${label} (lock ${lock}); if it is stuck, stop it and delete the lock`);
      }
      if (waited - lastNote >= PROGRESS_EVERY_MS) {
        lastNote = waited;
        progress(`waiting for process ${holder}, which is building ${label}… ${Math.round(waited / 1000)} s`);
      }
      await sleep(1000);
    }
  } finally {
    await rm(mine, { force: true });
  }
}

/** Whether a process with this pid exists (none for a pid never recorded). */
export function isAlive(pid: number | null | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Streams go's own lines (`go: downloading …`, errors) and an elapsed-time line every 10 s. */
async function runGoInstall(go: string, gobin: string, tool: GoTool, progress: (line: string) => void): Promise<void> {
  progress(`building ${tool.label} with go install (takes about ${tool.minutes} minutes on 2 cores)…`);
  const started = Date.now();
  const elapsed = (): number => Math.round((Date.now() - started) / 1000);
  const child = spawn(go, ['install', ...tool.targets], {
    env: { ...process.env, GOBIN: gobin },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const recent: string[] = [];
  const onLine = (line: string): void => {
    recent.push(line);
    if (recent.length > 40) recent.shift();
    progress(line);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const timer = setInterval(() => progress(`… still building ${tool.label}, ${elapsed()} s elapsed`), PROGRESS_EVERY_MS);
  try {
    const outcome = await new Promise<string | undefined>((resolveOutcome) => {
      child.once('error', (e) => resolveOutcome(e.message));
      child.once('close', (code, signal) => resolveOutcome(code === 0 ? undefined : `exit ${code ?? signal}`));
    });
    if (outcome !== undefined) {
      throw new Error(`\`${go} install ${tool.targets.join(' ')}\` failed (${outcome}) after ${elapsed()} s:\n${recent.join('\n')}`);
    }
  } finally {
    clearInterval(timer);
  }
}

/**
 * Each SDK search attribute type as the CLI's `--search-attribute` flag spells it and
 * as the OperatorService takes it (temporal.api.enums.v1.IndexedValueType).
 */
const SEARCH_ATTRIBUTE_TYPES: Record<SearchAttributeType, { flag: string; indexed: number }> = {
  TEXT: { flag: 'Text', indexed: 1 },
  KEYWORD: { flag: 'Keyword', indexed: 2 },
  INT: { flag: 'Int', indexed: 3 },
  DOUBLE: { flag: 'Double', indexed: 4 },
  BOOL: { flag: 'Bool', indexed: 5 },
  DATETIME: { flag: 'Datetime', indexed: 6 },
  KEYWORD_LIST: { flag: 'KeywordList', indexed: 7 },
};

export interface DevServerOptions {
  binary: string;
  /** Frontend gRPC port; a free one when omitted. */
  port?: number;
  /** Web UI port; a free one when omitted; null runs headless. */
  uiPort?: number | null;
  /** SQLite file that keeps workflows across restarts; in memory when omitted. */
  dbFile?: string;
  /** Receives the server's stdout and stderr (appended). */
  logFile: string;
  /** Created at launch unless it is `default`, which always exists. */
  namespace?: string;
  logger: Logger;
  /** How long to wait for the frontend to answer. */
  readyTimeoutMs?: number;
  /** Server dynamic config, e.g. a low history limit so tests see continue-as-new. */
  dynamicConfig?: Record<string, unknown>;
}

export interface DevServer {
  /** host:port of the frontend, for clients and workers. */
  address: string;
  uiUrl: string | null;
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
  /** SIGKILL: a crash of the Temporal service. */
  kill(): Promise<void>;
}

/**
 * Starts `temporal server start-dev` and waits until its frontend answers and our
 * search attributes exist. The process is detached, so it can outlive its starter
 * (`twinmart dev up --detach`); stop it with the returned handle or `stopProcess`.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  // Ports we pick ourselves were free a moment ago, but the server also binds random
  // ports of its own (HTTP API, metrics, internal services) and may take one of
  // ours: then it dies with "address already in use" and we try other ports.
  const attempts = opts.port === undefined || opts.uiPort === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const uiPort = opts.uiPort === null ? null : (opts.uiPort ?? (await freePort()));
    try {
      return await launchDevServer(opts, port, uiPort);
    } catch (e) {
      if (!(e instanceof PortTakenError) || attempt >= attempts) throw e;
      opts.logger.warn('a port of the Temporal dev server was taken meanwhile, retrying with other ports', { port, uiPort });
    }
  }
}

class PortTakenError extends Error {
  override name = 'PortTakenError';
}

function devServerArgs(opts: DevServerOptions, port: number, uiPort: number | null, namespace: string): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port)];
  args.push(...(uiPort === null ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (opts.dbFile) args.push('--db-filename', resolve(opts.dbFile));
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const key of Object.values(SEARCH_ATTRIBUTES)) {
    args.push('--search-attribute', `${key.name}=${SEARCH_ATTRIBUTE_TYPES[key.type].flag}`);
  }
  for (const [key, value] of Object.entries(opts.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  args.push('--log-level', 'warn');
  return args;
}

async function launchDevServer(opts: DevServerOptions, port: number, uiPort: number | null): Promise<DevServer> {
  const { logger } = opts;
  const namespace = opts.namespace ?? 'default';
  const address = `127.0.0.1:${port}`;
  const uiUrl = uiPort === null ? null : `http://127.0.0.1:${uiPort}`;
  const logFile = resolve(opts.logFile);
  if (opts.dbFile) await mkdir(dirname(resolve(opts.dbFile)), { recursive: true });
  await mkdir(dirname(logFile), { recursive: true });

  const out = openSync(logFile, 'a');
  const logStart = fstatSync(out).size; // this run's output starts here
  let child;
  try {
    child = spawn(opts.binary, devServerArgs(opts, port, uiPort, namespace), { stdio: ['ignore', out, out], detached: true });
  } finally {
    closeSync(out); // the child has its own copy
  }
  child.unref();
  const exited = new Promise<string>((resolveExit) => {
    child.once('error', (e) => resolveExit(e.message));
    child.once('exit', (code, signal) => resolveExit(`exited with ${code ?? signal}`));
  });
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not run the Temporal CLI ${opts.binary}: ${await exited}`);
  }
  logger.info('starting the Temporal dev server', { address, ui: uiUrl, dbFile: opts.dbFile ?? '(in memory)', log: logFile, pid });

  try {
    const connection = await waitUntilServing(
      address,
      (c) => c.workflowService.describeNamespace({ namespace }),
      exited,
      opts.readyTimeoutMs ?? 90_000,
    );
    try {
      await ensureSearchAttributes(connection, namespace, logger);
    } finally {
      await connection.close();
    }
  } catch (e) {
    await signalAndWait(pid, 'SIGKILL', 5000);
    const tail = await logTail(logFile, 30, logStart);
    const message = `Temporal dev server on ${address} did not come up: ${(e as Error).message}\n${tail}`;
    throw /address already in use/.test(tail) ? new PortTakenError(message) : new Error(message);
  }
  logger.info('Temporal dev server is up', { address, ui: uiUrl });
  return {
    address,
    uiUrl,
    pid,
    stop: () => stopProcess(pid),
    kill: async () => {
      await signalAndWait(pid, 'SIGKILL', 5000);
    },
  };
}

/**
 * Polls the frontend until `getSystemInfo` and `ready` (a call that needs the server
 * fully up) both succeed, and returns the open connection. Fails at once if the server
 * process exits.
 */
export async function waitUntilServing(
  address: string,
  ready: (c: Connection) => Promise<unknown>,
  exited: Promise<string>,
  timeoutMs: number,
): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  let died: string | undefined;
  void exited.then((how) => (died = how));
  let lastError = 'no answer yet';
  for (;;) {
    if (died !== undefined) throw new Error(`the server process ${died}`);
    if (Date.now() > deadline) throw new Error(`no answer within ${Math.round(timeoutMs / 1000)} s (last error: ${lastError})`);
    // Connection.connect would leak its gRPC channel (and keep this process alive)
    // when it fails, so connect lazily and close on failure ourselves.
    const connection = Connection.lazy({ address, connectTimeout: '2s' });
    try {
      await connection.ensureConnected();
      await connection.workflowService.getSystemInfo({});
      await ready(connection);
      return connection;
    } catch (e) {
      lastError = (e as Error).message;
      await connection.close();
    }
    await sleep(250);
  }
}

/**
 * The start-dev flags register our search attributes; this covers a server that
 * ignored them (an older database file, a different CLI), since workflows that set
 * an unknown search attribute fail.
 */
async function ensureSearchAttributes(connection: Connection, namespace: string, logger: Logger): Promise<void> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.values(SEARCH_ATTRIBUTES).filter((key) => !(key.name in (customAttributes ?? {})));
  if (missing.length === 0) return;
  logger.info('registering search attributes', { namespace, missing: missing.map((key) => key.name) });
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((key) => [key.name, SEARCH_ATTRIBUTE_TYPES[key.type].indexed])),
  });
}

/**
 * Stops a process by pid: SIGTERM, then SIGKILL if it is still there after
 * `graceMs`. For servers started by another process (`twinmart dev down`) as well
 * as our own children. Resolves once the process is gone.
 */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  if (await signalAndWait(pid, 'SIGTERM', graceMs)) return;
  if (!(await signalAndWait(pid, 'SIGKILL', 5000))) {
    throw new Error(`process ${pid} is still alive after SIGKILL`);
  }
}

/** Sends the signal and waits up to `timeoutMs` for the process to disappear; true if it did. */
async function signalAndWait(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw e;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}
