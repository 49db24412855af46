/**
 * Who may use a reporting service (README, Security). Users sign in with a scrypt-hashed
 * password from `reporting.auth.users` and get a session cookie (HttpOnly,
 * SameSite=Strict, HMAC-signed with the secret from the environment variable
 * `reporting.auth.sessionSecretEnv`), or arrive through a trusted reverse proxy that
 * names them in a header. `supervisor` reads reports; `operator` also sees /api/ops.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config';
import { json as reply, type Reply } from './http';
import { verifyPassword } from './password';

type AuthConfig = NonNullable<Config['reporting']['auth']>;
export type ReportingUserRole = 'supervisor' | 'operator';

export interface ReportingAuth {
  /**
   * Answers /api/login, /api/logout and /api/me, and refuses an API request without a
   * user allowed to make it; null lets the request through.
   */
  gate(req: IncomingMessage, path: string): Promise<Reply | null>;
}

const COOKIE = 'twinmart_session';
const MIN_SECRET_LENGTH = 32;
const LOGIN_BODY_LIMIT = 4096;
/** Failed logins per client address and window before it must wait. */
const LOGIN_FAILURES = 5;
const LOGIN_WINDOW_MS = 60_000;

/** The secret, or an error naming what to set. */
function sessionSecret(auth: AuthConfig, env: NodeJS.ProcessEnv): Buffer {
  const secret = env[auth.sessionSecretEnv];
  if (!secret || secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `reporting.auth: environment variable ${auth.sessionSecretEnv} must hold the session secret ` +
        `(at least ${MIN_SECRET_LENGTH} characters, e.g. \`openssl rand -base64 48\`)`,
    );
  }
  return Buffer.from(secret);
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > LOGIN_BODY_LIMIT) return null;
    chunks.push(chunk as Buffer);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function createReportingAuth(auth: AuthConfig, env: NodeJS.ProcessEnv = process.env): ReportingAuth {
  const secret = sessionSecret(auth, env);
  const maxAgeSeconds = auth.sessionHours * 3600;
  const failures = new Map<string, { count: number; since: number }>();

  const sign = (payload: string) => createHmac('sha256', secret).update(payload).digest('base64url');

  function issue(user: string): string {
    const payload = Buffer.from(JSON.stringify({ u: user, exp: Date.now() + maxAgeSeconds * 1000 })).toString('base64url');
    return `${payload}.${sign(payload)}`;
  }

  /** The user of a valid, unexpired session that is still configured. */
  function sessionUser(req: IncomingMessage): string | undefined {
    const value = readCookie(req, COOKIE);
    const [payload, mac] = value?.split('.') ?? [];
    if (!payload || !mac) return undefined;
    const expected = Buffer.from(sign(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const { u, exp } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { u: string; exp: number };
      return Date.now() < exp && Object.hasOwn(auth.users, u) ? u : undefined;
    } catch {
      return undefined;
    }
  }

  /** The user a trusted proxy names; a header from anyone else counts for nothing. */
  function proxyUser(req: IncomingMessage): string | undefined {
    const proxy = auth.proxy;
    if (!proxy || req.socket.remoteAddress?.replace(/^::ffff:/, '') !== proxy.trustedProxy) return undefined;
    const name = req.headers[proxy.header.toLowerCase()];
    return typeof name === 'string' && Object.hasOwn(auth.users, name) ? name : undefined;
  }

  function throttled(client: string): boolean {
    const f = failures.get(client);
    if (f && Date.now() - f.since > LOGIN_WINDOW_MS) failures.delete(client);
    return (failures.get(client)?.count ?? 0) >= LOGIN_FAILURES;
  }

  function failed(client: string): void {
    const f = failures.get(client) ?? { count: 0, since: Date.now() };
    f.count += 1;
    failures.set(client, f);
  }

  async function login(req: IncomingMessage): Promise<Reply> {
    if (req.method !== 'POST') return reply(405, { error: `method ${req.method} not allowed, expected POST` }, { allow: 'POST' });
    const client = req.socket.remoteAddress ?? 'unknown';
    if (throttled(client)) return reply(429, { error: 'too many failed logins: wait a minute' }, { 'retry-after': '60' });
    const body = await readJson(req);
    const user = typeof body?.user === 'string' ? body.user : '';
    const password = typeof body?.password === 'string' ? body.password : '';
    const hash = Object.hasOwn(auth.users, user) ? auth.users[user]!.passwordHash : undefined;
    if (!hash || !(await verifyPassword(password, hash))) {
      failed(client);
      return reply(401, { error: 'wrong user or password' });
    }
    failures.delete(client);
    const cookie = `${COOKIE}=${issue(user)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}`;
    return reply(200, { user, role: auth.users[user]!.role }, { 'set-cookie': cookie });
  }

  return {
    async gate(req, path) {
      if (path === '/api/login') return login(req);
      if (path === '/api/logout') {
        return reply(200, { user: null }, { 'set-cookie': `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
      }
      // The dashboard's files, the login page and /health (probed by the workers) are open.
      if (!path.startsWith('/api/')) return null;
      const user = proxyUser(req) ?? sessionUser(req);
      if (!user) return reply(401, { error: 'sign in first', login: '/static/login.html' });
      const role = auth.users[user]!.role;
      if (path === '/api/me') return reply(200, { user, role });
      if (path === '/api/ops' && role !== 'operator') return reply(403, { error: `user ${user} (${role}) may not see /api/ops` });
      return null;
    },
  };
}
