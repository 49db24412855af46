/**
 * What each kind of ETL session may take before it counts as hung (docs/architecture.md,
 * "Sessions and timeouts"). Three things go wrong with a connection: the peer is gone
 * (TCP keepalive finds that on an idle connection, from both ends), the client is gone
 * while its session holds a snapshot or a lock (the server's own timeouts end it), and
 * the server is there but silent, paused or behind a network that drops packets, whose
 * kernel still acknowledges everything: only a timer of the client sees that.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PoolClient, PoolConfig } from 'pg';

/**
 * The server drops a session whose client went silent after about 10 + 3 × 5 s (the OS
 * default is two hours), and with it the session's snapshot and locks.
 */
const SERVER_KEEPALIVE = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';
/** Node sets only the idle time; the interval and count are the OS's. */
const CLIENT_KEEPALIVE = { keepAlive: true, keepAliveInitialDelayMillis: 10_000 };
const MINUTES = 60_000;

export interface SessionLimits {
  connectTimeoutSeconds: number;
  idbTimeoutSeconds: number;
}

/**
 * Reads of a member IDB. The statement and idle-in-transaction limits bound one chunk's
 * COPY and the snapshot a vanished worker would hold (it holds back the IDB's vacuum); a
 * collector's DDL waiting behind our read would block its writes behind it too, so our
 * reads give up a lock wait quickly and the member is read next cycle.
 */
export function idbReadSession(limits: SessionLimits, applicationName: string): PoolConfig {
  return {
    ...CLIENT_KEEPALIVE,
    max: 2,
    application_name: applicationName,
    connectionTimeoutMillis: limits.connectTimeoutSeconds * 1000,
    options: SERVER_KEEPALIVE,
    statement_timeout: 10 * MINUTES,
    idle_in_transaction_session_timeout: 10 * MINUTES,
    lock_timeout: 5_000,
  };
}

/** Short reads of an IDB (the backlog probes): plain queries, so the driver's own query timer bounds them. */
export function idbProbeSession(limits: SessionLimits, applicationName: string): PoolConfig {
  return { ...idbReadSession(limits, applicationName), query_timeout: limits.idbTimeoutSeconds * 1000 };
}

/**
 * The ETL's loads and transforms on its mart. A transform batch may run for minutes on a
 * large mart, so no client timer: a silent mart stops the activity's progress, and the
 * heartbeat stall (etl.stallSeconds) retries it. A load's transaction holds its member's
 * cursor lock; the server's keepalive and idle limit free it when the worker vanishes.
 */
export function etlMartSession(applicationName: string): PoolConfig {
  return {
    ...CLIENT_KEEPALIVE,
    application_name: applicationName,
    options: SERVER_KEEPALIVE,
    statement_timeout: 30 * MINUTES,
    idle_in_transaction_session_timeout: 1 * MINUTES,
  };
}

/**
 * Fails the client's statements when its server sends nothing for `ms` while one waits
 * for it: the socket is destroyed, the statement ends with a connection error (ETIMEDOUT)
 * and the client must not go back to its pool for reuse. A COPY stream whose consumer
 * holds it back (paused by its pipe, or its buffer full) is not waiting for the server. Unlike the driver's
 * query_timeout this bounds silence, not length, so a long COPY that keeps sending is
 * never cut. Returns what stops the watch.
 */
export function answerWithin(client: PoolClient, ms: number): () => void {
  const c = client as PoolClient & { connection: { stream: Socket } };
  const socket = c.connection.stream;
  const query = c.query;
  let waiting = 0;
  let bytes = socket.bytesRead;
  let quietSince = Date.now();
  // A COPY stream does not always hear of its socket's end: it is failed itself, so its pipeline ends too.
  const streams = new Set<Duplex>();
  const finished = () => {
    waiting -= 1;
  };
  c.query = function (this: PoolClient, ...args: unknown[]) {
    const r = (query as (...a: unknown[]) => unknown).apply(this, args) as PromiseLike<unknown> | Duplex | undefined;
    if (!r) return r;
    if (waiting++ === 0) quietSince = Date.now();
    if (typeof (r as PromiseLike<unknown>).then === 'function') (r as PromiseLike<unknown>).then(finished, finished);
    else {
      const stream = r as Duplex;
      streams.add(stream);
      stream.once('close', () => {
        streams.delete(stream);
        finished();
      });
    }
    return r;
  } as PoolClient['query'];
  const timer = setInterval(() => {
    // (A COPY stream reads its socket in paused mode all along, so the socket's own state says nothing.)
    const heldBack = [...streams].some((st) => st.readableFlowing === false || st.readableLength >= st.readableHighWaterMark);
    if (socket.bytesRead !== bytes || waiting === 0 || heldBack) {
      bytes = socket.bytesRead;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= ms) {
      const error = Object.assign(new Error(`the server did not answer within ${ms / 1000} s`), { code: 'ETIMEDOUT' });
      for (const stream of streams) stream.destroy(error);
      socket.destroy(error);
    }
  }, Math.min(1000, ms / 4));
  timer.unref();
  return () => {
    clearInterval(timer);
    c.query = query;
  };
}
