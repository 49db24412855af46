/**
 * The reporting service's HTTP answers: JSON, CSV and the dashboard's files, each with the
 * security headers, and the checks of a request's target and Host before any route.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { repoRoot } from '../paths';
import { rawParams, type RawParams } from './params';
import type { CsvFile } from './tables';

export interface Reply {
  status: number;
  body: string | Buffer;
  headers: Record<string, string>;
}

export const WEB_DIR = join(repoRoot, 'web');
/**
 * Names served under /static/: a plain file of web/ or of its module folders lib/ and
 * views/ (the dashboard's browser modules), never any other path.
 */
export const STATIC_NAME = /^(?:(?:lib|views)\/)?[a-z0-9_-][a-z0-9._-]*$/;
export const CHART_JS = 'chart.umd.js';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/**
 * On every answer. The dashboard is same-origin only: scripts (its own and chart.js) come
 * from /static and never inline, since it shows text that callers and collectors chose
 * (caller numbers, queue names); inline styles stay allowed for style attributes set by
 * script. Nothing from another origin can load or frame it.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
};

export function json(status: number, value: unknown, extra: Record<string, string> = {}): Reply {
  return {
    status,
    body: JSON.stringify(value),
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extra },
  };
}

export const notFound = (): Reply => json(404, { error: 'not found' });

export function csv(file: CsvFile): Reply {
  return {
    status: 200,
    body: file.text,
    headers: {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="${file.filename}"`,
      'cache-control': 'no-store',
    },
  };
}

export function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    ...SECURITY_HEADERS,
    ...reply.headers,
    'content-length': String(Buffer.byteLength(reply.body)),
  });
  res.end(reply.body);
}

export interface Target {
  path: string;
  params: RawParams;
}

/** node:http's url is the raw request target: split without normalising, so `..` stays visible. */
export function splitTarget(target: string): Target {
  const q = target.indexOf('?');
  return q < 0
    ? { path: target, params: {} }
    : { path: target.slice(0, q), params: rawParams(new URLSearchParams(target.slice(q + 1))) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * A service bound to loopback answers only requests addressed to a loopback name: a web
 * page elsewhere that rebinds its own DNS name to 127.0.0.1 must not read the reports
 * (they hold callers' numbers).
 */
export function hostAllowed(req: IncomingMessage): boolean {
  const header = req.headers.host;
  if (!header) return false;
  try {
    return LOOPBACK_HOSTS.has(new URL(`http://${header}`).hostname);
  } catch {
    return false;
  }
}

/** chart.js's package exports do not include its UMD build, so it is found beside the main file. */
export function chartJsPath(): string | null {
  try {
    return join(dirname(require.resolve('chart.js')), CHART_JS);
  } catch {
    return null;
  }
}

export async function fileReply(file: string): Promise<Reply | null> {
  try {
    const body = await readFile(file);
    return {
      status: 200,
      body,
      headers: {
        'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        // Revalidated on every load, so a dashboard updated on disk is never served stale.
        'cache-control': 'no-cache',
      },
    };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return null;
    throw e;
  }
}
