/**
 * Reporting authentication on the real HTTP server: it will not listen beyond loopback
 * without reporting.auth; a session comes only from a right password (scrypt), is an
 * HttpOnly SameSite=Strict cookie signed with the secret, and carries its user's role;
 * failed logins are throttled; a proxy's header counts only from the trusted proxy.
 * The routes answered here (/api/me, refusals) never reach the mart.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig, type ConfigInput } from '../src/config';
import { Pools } from '../src/db';
import { silentLogger } from '../src/logger';
import { repoRoot } from '../src/paths';
import { createReportingServer, type ReportingServer } from '../src/reporting/server';

const SECRET_ENV = 'TWINMART_TEST_SESSION_SECRET';
process.env[SECRET_ENV] = 'a-test-secret-that-is-long-enough-0123456789';

const hash = (password: string) =>
  execFileSync(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), 'hash-password'], { input: `${password}\n`, encoding: 'utf8' }).trim();

function config(auth?: NonNullable<ConfigInput['reporting']>['auth']) {
  return parseConfig({
    temporal: {},
    reporting: { primary: 'dc1', ...(auth && { auth }) },
    sites: { dc1: { mart: 'postgres://twinmart_reporting@127.0.0.1:1/unused', reportingPort: 8401 } },
    sources: { s: [{ id: 'm', site: 'dc1', url: 'postgres://r@127.0.0.1:1/unused' }] },
  });
}

const pools = new Pools();
let server: ReportingServer;
let base = '';
let users: Record<string, { passwordHash?: string; role: 'supervisor' | 'operator' }>;

before(async () => {
  users = { ann: { passwordHash: hash('ann-password'), role: 'operator' }, sam: { passwordHash: hash('sam-password'), role: 'supervisor' }, pat: { role: 'operator' } };
  server = createReportingServer({
    config: config({ sessionSecretEnv: SECRET_ENV, users, proxy: { header: 'X-Auth-User', trustedProxy: '127.0.0.2' } }),
    site: 'dc1',
    pools,
    logger: silentLogger,
    host: '0.0.0.0',
  });
  base = `http://127.0.0.1:${await server.listen(0)}`;
});
after(async () => {
  await server?.close();
  await pools.end();
});

const login = (user: string, password: string) =>
  fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
const cookieOf = (res: Response) => res.headers.get('set-cookie')!.split(';')[0]!;

test('without reporting.auth the service refuses to listen beyond loopback', () => {
  assert.throws(
    () => createReportingServer({ config: config(), site: 'dc1', pools, logger: silentLogger, host: '0.0.0.0' }),
    /refusing to listen on 0\.0\.0\.0 without reporting\.auth/,
  );
});

test('the API needs a session; a right password gives an HttpOnly, SameSite=Strict cookie with the user\'s role', async () => {
  const anonymous = await fetch(`${base}/api/queue-summary`);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { login: string }).login, '/static/login.html');
  assert.equal((await fetch(`${base}/static/login.html`)).status, 200, 'the login page is open');
  assert.equal((await login('ann', 'wrong-password')).status, 401);
  assert.equal((await login('pat', '')).status, 401, 'a proxy-only user cannot sign in with a password');

  const ok = await login('ann', 'ann-password');
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('set-cookie')!, /^twinmart_session=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
  const me = await fetch(`${base}/api/me`, { headers: { cookie: cookieOf(ok) } });
  assert.deepEqual(await me.json(), { user: 'ann', role: 'operator' });

  // A cookie changed by the client is worthless.
  const [payload, mac] = cookieOf(ok).split('=')[1]!.split('.');
  const forged = Buffer.from(JSON.stringify({ u: 'ann', exp: Date.now() + 1e9 })).toString('base64url');
  assert.notEqual(forged, payload);
  assert.equal((await fetch(`${base}/api/me`, { headers: { cookie: `twinmart_session=${forged}.${mac}` } })).status, 401);
});

test('a supervisor reads reports but not the operations view', async () => {
  const cookie = cookieOf(await login('sam', 'sam-password'));
  const ops = await fetch(`${base}/api/ops`, { headers: { cookie } });
  assert.equal(ops.status, 403);
  assert.match(((await ops.json()) as { error: string }).error, /sam \(supervisor\) may not see \/api\/ops/);
});

test('the proxy header counts only from the trusted proxy', async () => {
  assert.equal((await fetch(`${base}/api/me`, { headers: { 'x-auth-user': 'pat' } })).status, 401, 'from 127.0.0.1, not the proxy');
  const port = new URL(base).port;
  // The same request from the trusted proxy's address (127.0.0.2 is loopback too, so it reaches us).
  const { request } = await import('node:http');
  const body = await new Promise<string>((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/me', localAddress: '127.0.0.2', headers: { 'x-auth-user': 'pat' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => ok(`${res.statusCode} ${text}`));
    });
    req.on('error', fail);
    req.end();
  });
  assert.equal(body, '200 {"user":"pat","role":"operator"}');
});

test('failed logins from one address are throttled', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await login('sam', `guess-${i}`)).status);
  assert.deepEqual(statuses.slice(-2), [429, 429]);
  assert.equal((await login('sam', 'sam-password')).status, 429, 'even the right password waits');
});
