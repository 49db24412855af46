import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a
 * listener on port 0, which is closed again at once. Another process may take it
 * before the caller binds it, so callers that can retry on "address in use" should.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`unexpected listener address ${String(address)} while looking for a free port`));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Low ports this process handed out: bindable until their server starts, so a second pick could repeat one. */
const handedOut = new Set<number>();

/**
 * A free port below 32768, outside Linux's ephemeral range (the kernel's picks for
 * port 0 and for outgoing connections are above it): a world's processes bind their
 * ports again after each restart, and Temporal stores membership ports as smallint.
 * Never one this process picked before: a cluster plans eleven of them before any is bound.
 */
export async function freeLowPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port between 20000 and 32000 after 200 tries');
}
