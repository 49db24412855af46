/**
 * Connection handling shared by every part that talks to PostgreSQL: pools keyed by
 * URL and application_name (created on first use), transactions, and database errors
 * described without their URL, so credentials never reach logs or workflow history.
 */
import { Transform } from 'node:stream';
import { Client, Pool, type ClientBase, type PoolClient, type PoolConfig } from 'pg';

/** Anything that runs a query: a pool (autocommit) or a client inside a transaction. */
export type Queryable = Pool | ClientBase;

/**
 * Format of every COPY between two servers of twinmart: binary moves rows a quarter
 * faster than text here (no output and parsing of uuid, timestamps and jsonb), and needs
 * the column types of both ends to match exactly.
 */
export const COPY_FORMAT = '(format binary)';

/**
 * Counts what passes through: the COPY data read from an IDB, what a site's link carries
 * for it (the protocol's 5-byte message headers, TLS and TCP not included).
 */
export function byteCounter(): { stream: Transform; bytes: () => number } {
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes };
}

/** Query parameters that carry no secret; any other value (`?password=`, `?sslkey=`) is kept out of messages. */
const PLAIN_PARAMS = new Set(['sslmode', 'application_name', 'connect_timeout', 'target_session_attrs']);

/** The parts of a URL that may be secret, raw and decoded, longest first: what a message must never hold. */
function secretsOf(url: string): string[] {
  const out = [url];
  try {
    const u = new URL(url);
    if (u.password) out.push(u.password, decodeURIComponent(u.password));
    for (const [key, value] of u.searchParams) if (!PLAIN_PARAMS.has(key) && value) out.push(value, encodeURIComponent(value));
  } catch {
    // An unparseable URL is refused by the config; the whole text is still scrubbed.
  }
  return [...new Set(out)].filter((x) => x.length > 0).sort((a, b) => b.length - a.length);
}

const CONNECTION_PHRASES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENOTFOUND: 'host not found',
  EPIPE: 'connection closed',
  '28P01': 'password authentication failed',
  '28000': 'authentication refused',
  '3D000': 'database does not exist',
  '57P01': 'server shutting down',
  '57P02': 'server crashed',
  '57P03': 'server not accepting connections',
};

/**
 * What went wrong talking to the database at `url`, for status, history and logs: a
 * phrase and the error's code, never the URL or a part of it (a driver's message may
 * quote the host or the text it failed to parse, which may hold a password).
 */
export function describeDbError(e: unknown, url: string): string {
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'string' ? err.code : null;
  let text = (code && CONNECTION_PHRASES[code]) ?? (typeof err?.message === 'string' && err.message ? err.message : String(e));
  for (const secret of secretsOf(url)) text = text.split(secret).join('***');
  return `${text}${code ? ` (${code})` : ''}`.slice(0, 300);
}

/** One connection for one piece of work, closed afterwards whatever happens. */
export async function withPgClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export class Pools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly defaults: PoolConfig = {}) {}

  /**
   * The pool of `url`, created with `options` on first use. Sessions that must not mix
   * (see the ETL's load and transform pools) name themselves: one pool per URL and
   * application_name.
   */
  get(url: string, options: PoolConfig = {}): Pool {
    const key = options.application_name ? `${url} ${options.application_name}` : url;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool({ max: 4, idleTimeoutMillis: 10_000, ...this.defaults, ...options, connectionString: url });
      // A client whose server went away (site failure) must not crash the process: idle
      // ones report on the pool, checked-out ones on themselves; the next query fails instead.
      pool.on('error', () => {});
      pool.on('connect', (client) => client.on('error', () => {}));
      this.pools.set(key, pool);
    }
    return pool;
  }

  async end(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((p) => p.end()));
  }
}

/**
 * A pooled client for `fn`. With a `signal`, an abort cancels the statement the client is
 * running (a cancelled activity then stops within a statement, not after it: a transform
 * batch on a large mart runs for seconds, a lock wait for as long as the lock is held),
 * and the client is not given back for reuse, so a late cancel can hit no one else.
 */
export async function withClient<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  let cancel: (() => void) | undefined;
  try {
    if (signal) {
      cancel = await statementCanceller(pool, client);
      signal.addEventListener('abort', cancel, { once: true });
    }
    return await fn(client);
  } catch (e) {
    broken = e as Error;
    throw e;
  } finally {
    if (cancel) signal!.removeEventListener('abort', cancel);
    // A client that failed mid-protocol (e.g. an aborted COPY) is not given back for reuse.
    client.release(broken ?? (signal?.aborted ? new Error('statement cancelled') : undefined));
  }
}

const backendPids = new WeakMap<PoolClient, number>();

/**
 * pg_cancel_backend for the client's server process, sent on a connection of its own: the
 * pool's connections may all be busy with the statements to cancel.
 */
async function statementCanceller(pool: Pool, client: PoolClient): Promise<() => void> {
  let pid = backendPids.get(client);
  if (pid === undefined) {
    pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    backendPids.set(client, pid);
  }
  const target = pid;
  return () => {
    const other = new Client({ ...pool.options, connectionTimeoutMillis: 5000 });
    other.on('error', () => {});
    void other
      .connect()
      .then(() => other.query('select pg_cancel_backend($1)', [target]))
      .catch(() => undefined) // the statement then ends by itself; the activity stops after it
      .finally(() => other.end().catch(() => undefined));
  };
}

export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  options: { begin?: string; signal?: AbortSignal } = {},
): Promise<T> {
  return withClient(
    pool,
    async (client) => {
      await client.query(options.begin ?? 'begin');
      try {
        const result = await fn(client);
        await client.query('commit');
        return result;
      } catch (e) {
        await client.query('rollback').catch(() => {});
        throw e;
      }
    },
    options.signal,
  );
}

/** Errors that mean "the database is not there right now", as opposed to a bug or bad data. */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  const code = err?.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE'].includes(code)) return true;
  // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 3D000 no such database, 08xxx connection exceptions
  if (/^(57P0[123]|3D000|08...)$/.test(code)) return true;
  return /Connection terminated|timeout expired|connection timeout|Client has encountered a connection error/i.test(
    err?.message ?? '',
  );
}
