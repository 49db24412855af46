/**
 * Real PostgreSQL instances for the simulated sites of `twinmart dev` and the tests:
 * one data directory and one port per instance, so a site failure can be a real
 * server going away (`pg_ctl stop -m immediate`) rather than a mock.
 *
 * PostgreSQL refuses to run as root; when we are root (CI, containers) initdb and
 * pg_ctl run as the `postgres` OS user and the data directory is given to it.
 */
import { execFile } from 'node:child_process';
import { access, appendFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client, DatabaseError } from 'pg';
import type { Logger } from '../logger';
import { logTail } from './log-tail';
import { isExecutable } from './files';

const exec = promisify(execFile);

export interface PgInstance {
  /** For messages only. */
  name: string;
  dataDir: string;
  port: number;
}

/** Database names are interpolated into DDL, so they are restricted to plain identifiers. */
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** The server's stderr, in the data directory so an instance carries its own evidence. */
const LOG_FILE = 'server.log';
/** Our settings live in their own file, included from postgresql.conf, so re-init can rewrite them. */
const SETTINGS_FILE = 'twinmart.conf';
/** sun_path holds 108 bytes including the terminating NUL. */
const UNIX_SOCKET_PATH_MAX = 107;
const PG_CTL_TIMEOUT_SECONDS = 60;
const OS_USER = 'postgres';

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 5432;

let binDirPromise: Promise<string> | undefined;

/** Directory holding initdb and pg_ctl: `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin. */
export function pgBinDir(): Promise<string> {
  binDirPromise ??= locateBinDir().catch((e: unknown) => {
    binDirPromise = undefined; // let a later call retry after the user installed PostgreSQL
    throw e;
  });
  return binDirPromise;
}

async function locateBinDir(): Promise<string> {
  const candidates = [...(await pgConfigBinDir()), ...(await debianBinDirs())];
  for (const dir of candidates) {
    if (await isExecutable(join(dir, 'initdb'))) return dir;
  }
  const looked = candidates.length ? candidates.join(', ') : 'pg_config is not on PATH and /usr/lib/postgresql has no versions';
  throw new Error(
    `PostgreSQL server binaries (initdb, pg_ctl) not found (looked in: ${looked}). ` +
      'Install the PostgreSQL server, e.g. `apt-get install postgresql`, or put its bin directory\'s pg_config on PATH.',
  );
}

async function pgConfigBinDir(): Promise<string[]> {
  try {
    const { stdout } = await exec('pg_config', ['--bindir']);
    return stdout.trim() ? [stdout.trim()] : [];
  } catch {
    return [];
  }
}

/** Debian and Ubuntu install each major version side by side; the newest wins. */
async function debianBinDirs(): Promise<string[]> {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = await readdir(root);
  } catch {
    return [];
  }
  return versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'));
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

const runningAsRoot = (): boolean => process.geteuid?.() === 0;

/**
 * Runs a PostgreSQL tool as the user that may run it. The working directory is `/`
 * because the postgres user may not be allowed into ours (for example under /root).
 */
async function runPgTool(tool: 'initdb' | 'pg_ctl' | 'pg_basebackup', args: string[]): Promise<{ stdout: string; stderr: string }> {
  const bin = join(await pgBinDir(), tool);
  const [file, argv] = runningAsRoot() ? ['runuser', ['-u', OS_USER, '--', bin, ...args]] : [bin, args];
  return exec(file, argv, { cwd: '/', timeout: (PG_CTL_TIMEOUT_SECONDS + 30) * 1000 });
}

/** Exit code of a failed child process, or undefined when it did not get to exit. */
function exitCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function commandOutput(e: unknown): string {
  const { stderr, stdout } = e as { stderr?: string; stdout?: string };
  return (stderr?.trim() || stdout?.trim() || (e as Error).message).trim();
}

const dataDirOf = (inst: PgInstance): string => resolve(inst.dataDir);
const describeInstance = (inst: PgInstance): string => `PostgreSQL instance "${inst.name}" (port ${inst.port}, data ${dataDirOf(inst)})`;

/** When root, hands a path to the postgres user and checks that user can actually reach it. */
async function giveToPostgres(path: string): Promise<void> {
  if (!runningAsRoot()) return;
  await exec('chown', ['-R', `${OS_USER}:${OS_USER}`, path]);
  try {
    await exec('runuser', ['-u', OS_USER, '--', 'test', '-w', path], { cwd: '/' });
  } catch {
    throw new Error(
      `user ${OS_USER} cannot write ${path}, although it owns it: one of its parent directories is not ` +
        `searchable by ${OS_USER} (/root and mkdtemp's directories are mode 0700). Put the data directory ` +
        `under a path every user can traverse, or \`chmod o+x\` (0755) the parent directories.`,
    );
  }
}

/** A directory only the server's user may enter, for data directories kept outside a world's root. */
export async function createServerDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (runningAsRoot()) await exec('chown', [`${OS_USER}:${OS_USER}`, path]);
}

/** A value for postgresql.conf: single-quoted, quotes doubled. */
const confString = (value: string): string => `'${value.replace(/'/g, "''")}'`;

function settings(inst: PgInstance, fsync: boolean, logical: boolean): string {
  const dir = dataDirOf(inst);
  const socketFits = Buffer.byteLength(join(dir, `.s.PGSQL.${inst.port}`)) <= UNIX_SOCKET_PATH_MAX;
  const lines = [
    `# Written by twinmart (src/dev/postgres.ts) for the dev instance "${inst.name}"; initInstance rewrites it.`,
    `listen_addresses = '${DEFAULT_HOST}'`,
    `port = ${inst.port}`,
    socketFits
      ? `unix_socket_directories = ${confString(dir)}`
      : `unix_socket_directories = ''  # the socket path under ${dir} would exceed ${UNIX_SOCKET_PATH_MAX} bytes; use TCP`,
    'max_connections = 200',
    // The 128 MB default is sized to start anywhere. A mart with 1M call events holds
    // about 2.4 GB of staging and facts, and a 5,000 events/s load probes it at random.
    'shared_buffers = 1GB',
    // The default 4 prices a random read as if from a spinning disk. With the marts in
    // memory it made the transform scan all of staging (1M rows, up to 1 s) for batches of
    // 10,000 dirty calls instead of probing the index per call.
    'random_page_cost = 1.1',
  ];
  // The freshness benchmark's push-based anchor replicates a member logically.
  if (logical) lines.push('wal_level = logical');
  if (!fsync) {
    // Dev and test data is disposable, and only an OS crash could lose what these
    // protect. synchronous_commit stays on: with it off, a crash of PostgreSQL itself
    // (immediate stop, as in a site failure) loses the last commits still in its WAL
    // buffers, which would make the crash tests lose data at random.
    lines.push('fsync = off', 'full_page_writes = off');
  }
  return lines.join('\n') + '\n';
}

/**
 * Creates the instance's data directory with initdb (superuser `postgres`, trust
 * authentication, UTF8, C locale) unless it already holds one, and (re)writes its
 * settings: listen on 127.0.0.1:port, socket in the data directory, 200 connections,
 * fsync off unless `opts.fsync`, wal_level logical with `opts.logical`. Settings take
 * effect at the next start.
 */
export async function initInstance(inst: PgInstance, opts: { fsync?: boolean; logical?: boolean } = {}): Promise<void> {
  assertPort(inst);
  const dir = dataDirOf(inst);
  const fsync = opts.fsync ?? false;
  if (!(await exists(join(dir, 'PG_VERSION')))) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await giveToPostgres(dir);
    const args = ['-D', dir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C'];
    if (!fsync) args.push('--no-sync');
    try {
      await runPgTool('initdb', args);
    } catch (e) {
      throw new Error(`initdb failed for ${describeInstance(inst)}: ${commandOutput(e)}`);
    }
    await appendFile(join(dir, 'postgresql.conf'), `\ninclude '${SETTINGS_FILE}'\n`);
  }
  await writeFile(join(dir, SETTINGS_FILE), settings(inst, fsync, opts.logical ?? false));
  await giveToPostgres(join(dir, SETTINGS_FILE));
}

function assertPort(inst: PgInstance): void {
  if (!Number.isInteger(inst.port) || inst.port < 1 || inst.port > 65535) {
    throw new Error(`PostgreSQL instance "${inst.name}": port must be an integer from 1 to 65535, got ${inst.port}`);
  }
}

/**
 * Starts the server and waits until it accepts connections. Does nothing if it is running.
 * `port`: another port than its own for this start, where its clients do not find it.
 */
export async function startInstance(inst: PgInstance, opts: { port?: number } = {}): Promise<void> {
  if (await isInstanceRunning(inst)) return;
  const dir = dataDirOf(inst);
  const log = join(dir, LOG_FILE);
  const port = opts.port === undefined ? [] : ['-o', `-p ${opts.port}`];
  try {
    await runPgTool('pg_ctl', ['start', '-w', '-s', '-t', String(PG_CTL_TIMEOUT_SECONDS), '-D', dir, '-l', log, ...port]);
  } catch (e) {
    if (await isInstanceRunning(inst)) return; // someone else started it meanwhile
    throw new Error(`could not start ${describeInstance(inst)}: ${commandOutput(e)}\n${await logTail(log)}`);
  }
}

/**
 * Stops the server if it runs. 'fast' rolls back open transactions and shuts down
 * cleanly; 'immediate' kills it without a checkpoint, like a crash, so the next start
 * runs crash recovery.
 */
export async function stopInstance(inst: PgInstance, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await isInstanceRunning(inst))) return;
  const dir = dataDirOf(inst);
  try {
    await runPgTool('pg_ctl', ['stop', '-w', '-s', '-t', String(PG_CTL_TIMEOUT_SECONDS), '-D', dir, '-m', mode]);
  } catch (e) {
    if (!(await isInstanceRunning(inst))) return; // it stopped by other means meanwhile
    throw new Error(`could not stop ${describeInstance(inst)} (${mode}): ${commandOutput(e)}\n${await logTail(join(dir, LOG_FILE))}`);
  }
}

/** `pg_ctl status`: exit 0 running, 3 not running, 4 no usable data directory. */
export async function isInstanceRunning(inst: PgInstance): Promise<boolean> {
  const dir = dataDirOf(inst);
  if (!(await exists(dir))) return false;
  try {
    await runPgTool('pg_ctl', ['status', '-D', dir]);
    return true;
  } catch (e) {
    if (exitCode(e) === 3 || exitCode(e) === 4) return false;
    throw new Error(`could not tell whether ${describeInstance(inst)} is running: ${commandOutput(e)}`);
  }
}

/**
 * A base backup of the running instance into `dir` (created, empty), WAL included so it
 * starts on its own. With `standby`, the copy starts as a hot standby streaming from it.
 */
export async function baseBackup(inst: PgInstance, dir: string, opts: { standby?: boolean } = {}): Promise<void> {
  await createServerDir(dir);
  const args = ['-h', DEFAULT_HOST, '-p', String(inst.port), '-U', 'postgres', '-D', resolve(dir), '-X', 'stream', '-c', 'fast'];
  if (opts.standby) args.push('-R');
  try {
    await runPgTool('pg_basebackup', args);
  } catch (e) {
    throw new Error(`pg_basebackup of ${describeInstance(inst)} failed: ${commandOutput(e)}`);
  }
  // The socket's lock file lives in the data directory here and is copied like any file;
  // left there, it makes the restored server think another one holds the socket.
  for (const f of await readdir(dir)) if (f.startsWith('.s.PGSQL.')) await rm(join(dir, f), { force: true });
}

/**
 * Puts a base backup in place of the instance's data, as a DBA restores one: the server
 * stopped, its directory replaced by a copy of the backup with this instance's settings,
 * started again (recovery replays the backup's WAL). The backup itself is kept.
 */
export async function restoreInstance(inst: PgInstance, backupDir: string): Promise<void> {
  await stopInstance(inst, 'immediate');
  await rm(dataDirOf(inst), { recursive: true, force: true });
  await exec('cp', ['-a', resolve(backupDir), dataDirOf(inst)]);
  await giveToPostgres(dataDirOf(inst));
  await initInstance(inst); // the backup carries its source's port
  await startInstance(inst);
}

/** Crash-stops the server and deletes its data directory. */
export async function removeInstance(inst: PgInstance): Promise<void> {
  await stopInstance(inst, 'immediate');
  await rm(dataDirOf(inst), { recursive: true, force: true });
}

/** A URL on the instance as `user` (the superuser unless named; trust needs no password). */
export function instanceUrl(inst: PgInstance, db: string, user = 'postgres'): string {
  return `postgres://${encodeURIComponent(user)}@${DEFAULT_HOST}:${inst.port}/${encodeURIComponent(db)}`;
}

/** Creates the database (owned by `owner`, a role that exists) unless it exists; safe to call concurrently. */
export async function createDatabase(inst: PgInstance, name: string, owner?: string): Promise<void> {
  if (!DATABASE_NAME.test(name)) {
    throw new Error(`invalid database name "${name}": expected ${DATABASE_NAME} (lowercase letters, digits, _)`);
  }
  const client = new Client({ connectionString: instanceUrl(inst, 'postgres') });
  await client.connect();
  try {
    const existing = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (existing.rowCount) return;
    if (owner !== undefined && !DATABASE_NAME.test(owner)) throw new Error(`invalid owner role "${owner}": expected ${DATABASE_NAME}`);
    await client.query(`create database "${name}"${owner ? ` owner "${owner}"` : ''}`);
  } catch (e) {
    // duplicate_database, or the catalog's unique index when two creators race.
    const code = e instanceof DatabaseError ? e.code : undefined;
    if (code !== '42P04' && code !== '23505') throw e;
  } finally {
    await client.end();
  }
}

type Probe = { ok: true } | { ok: false; answered: boolean; message: string };

async function probe(url: string): Promise<Probe> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {}); // a dropped connection is reported by the failing call
  try {
    await client.connect();
    await client.query('select 1');
    return { ok: true };
  } catch (e) {
    return { ok: false, answered: e instanceof DatabaseError, message: (e as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Makes sure the machine's default PostgreSQL answers on 127.0.0.1:5432 as user
 * postgres without a password; starts the Debian cluster on that port if it is down.
 */
export async function ensureDefaultPostgres(logger: Logger): Promise<void> {
  const url = `postgres://postgres@${DEFAULT_HOST}:${DEFAULT_PORT}/postgres`;
  const first = await probe(url);
  if (first.ok) {
    logger.debug('default PostgreSQL answers', { address: `${DEFAULT_HOST}:${DEFAULT_PORT}` });
    return;
  }
  if (first.answered) {
    throw new Error(
      `PostgreSQL on ${DEFAULT_HOST}:${DEFAULT_PORT} answers but refused user postgres: ${first.message}. ` +
        'twinmart connects as postgres without a password: allow it with `trust` for 127.0.0.1 in pg_hba.conf.',
    );
  }
  logger.info('default PostgreSQL does not answer, starting it', { reason: first.message });
  await startDefaultCluster(logger);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const again = await probe(url);
    if (again.ok) return;
    if (Date.now() > deadline) {
      throw new Error(`started the default PostgreSQL cluster, but ${DEFAULT_HOST}:${DEFAULT_PORT} still does not answer: ${again.message}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Debian's cluster tools: find the cluster configured for port 5432 and start it. */
async function startDefaultCluster(logger: Logger): Promise<void> {
  const fix =
    `Start a PostgreSQL server on ${DEFAULT_HOST}:${DEFAULT_PORT} with trust authentication for user postgres ` +
    '(on Debian: `pg_ctlcluster --skip-systemctl-redirect <version> main start`).';
  let listing: string;
  try {
    listing = (await exec('pg_lsclusters', ['--no-header'])).stdout;
  } catch (e) {
    throw new Error(`PostgreSQL does not answer on ${DEFAULT_HOST}:${DEFAULT_PORT} and pg_lsclusters failed (${commandOutput(e)}). ${fix}`);
  }
  // Columns: version, cluster, port, status, owner, data directory, log file.
  const cluster = listing
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((cols) => cols[2] === String(DEFAULT_PORT));
  if (!cluster) {
    throw new Error(`PostgreSQL does not answer on ${DEFAULT_HOST}:${DEFAULT_PORT} and no cluster is configured for that port. ${fix}`);
  }
  const [version, name] = cluster as [string, string];
  logger.info('starting PostgreSQL cluster', { version, cluster: name });
  try {
    await exec('pg_ctlcluster', ['--skip-systemctl-redirect', version, name, 'start'], { timeout: 90_000 });
  } catch (e) {
    throw new Error(`pg_ctlcluster ${version} ${name} start failed: ${commandOutput(e)}. ${fix}`);
  }
}
