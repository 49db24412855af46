/**
 * A Prometheus scrape endpoint: GET /metrics answers the registry's text (and what
 * `extra` adds, such as the Temporal SDK runtime's own exporter); anything else is 404
 * or 405. Metrics hold ids and counts only, so the endpoint needs no login.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger';

export interface MetricsServer {
  /** The port it listens on. */
  port: number;
  close(): Promise<void>;
}

/** The registry's exposition text, then `extra`'s (its own HELP/TYPE lines, other names). */
export async function exposition(registry: Registry, extra?: () => Promise<string>): Promise<string> {
  const own = await registry.metrics();
  const more = extra ? await extra().catch(() => '') : '';
  return more ? `${own.trimEnd()}\n${more.trimEnd()}\n` : own;
}

export function serveMetrics(opts: { registry: Registry; port: number; host: string; logger: Logger; extra?: () => Promise<string> }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`method ${req.method} not allowed, expected GET\n`);
      return;
    }
    exposition(opts.registry, opts.extra).then(
      (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (e: Error) => {
        opts.logger.error('metrics: scrape failed', { error: e.message });
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: Error) => reject(new Error(`metrics: cannot listen on ${opts.host}:${opts.port}: ${e.message}`)));
    server.listen(opts.port, opts.host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : opts.port;
      opts.logger.info('metrics: listening', { url: `http://${opts.host}:${port}/metrics` });
      resolve({ port, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
