import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { byteCounter, withPgClient } from '../../src/db';
import { copyAllSql, EVENT_TABLES } from '../../src/sources/idb';

export { withPgClient };

/**
 * A TCP relay in front of a PostgreSQL server, whose connections can be reset (RST) as
 * when a site's network or machine goes: the client sees ECONNRESET at once, whatever
 * it was waiting for, which a server stop or pg_terminate_backend does not give.
 */
export async function resettableRelay(url: string): Promise<{ url: string; reset(): void; close(): Promise<void> }> {
  const target = new URL(url);
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };
  const server = createServer((down) => {
    const up = connect(Number(target.port), target.hostname);
    track(down);
    track(up);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relayed = new URL(url);
  relayed.port = String((server.address() as AddressInfo).port);
  return {
    url: relayed.toString(),
    reset: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Bytes of one binary COPY of every row of a member's event tables: one full copy of its events, as an extraction reads them. */
export async function fullCopyBytes(url: string): Promise<number> {
  let bytes = 0;
  for (const table of EVENT_TABLES) {
    bytes += await withPgClient(url, async (client) => {
      const counter = byteCounter();
      await pipeline(client.query(copyTo(copyAllSql(table))), counter.stream, new Writable({ write: (_chunk, _encoding, done) => done() }));
      return counter.bytes();
    });
  }
  return bytes;
}
