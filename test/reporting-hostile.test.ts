/**
 * A real reporting service process (`twinmart reporting`) on a real mart, sent requests a
 * hostile web page or client could send: prototype names as parameters, bad and absurd
 * dates, huge and repeated values, path traversal, a 20 kB path, other methods, a foreign
 * Host. After every one the process must still run and answer. Then the bounds: a mart
 * holding more rows than one answer lists gets a cut answer that says so.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client } from 'pg';
import { stringify } from 'yaml';
import { Pools } from '../src/db';
import { freePort } from '../src/dev/ports';
import { findTemporalCli, startDevServer, type DevServer } from '../src/dev/temporal';
import { silentLogger } from '../src/logger';
import { setReportingRole } from '../src/mart/control';
import { migrateMart } from '../src/mart/migrate';
import { repoRoot } from '../src/paths';
import { MAX_CALL_EVENTS, MAX_REPORT_ROWS } from '../src/reporting/queries';
import { waitFor } from '../src/wait';

const SERVER = 'postgres://postgres@127.0.0.1:5432';
const DB = `twinmart_hostile_${process.pid}_${randomUUID().slice(0, 8)}`;
const MART_URL = `${SERVER}/${DB}`;
const CALL = 'd0000000-0000-4000-8000-000000000001';
const MONTH = { from: '2024-03-01T00:00:00Z', to: '2024-03-31T00:00:00Z' };

interface Answer {
  status: number;
  text: string;
}

/** Exactly this request line and Host (fetch would normalise the target and refuse some methods). */
function send(port: number, target: string, options: { method?: string; host?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: { host: options.host ?? `127.0.0.1:${port}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function admin(sql: string): Promise<void> {
  const c = new Client({ connectionString: `${SERVER}/postgres` });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const root = mkdtempSync(join(tmpdir(), 'twinmart-reporting-hostile-'));
const logFile = join(root, 'reporting.log');
const pools = new Pools();
let service: ChildProcess;
let temporal: DevServer | undefined;
let port: number;
let failed = false;

function alive(): void {
  assert.equal(service.exitCode, null, `the service ended (exit ${service.exitCode}, ${service.signalCode}); log:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
}

async function healthy(): Promise<void> {
  alive();
  const r = await send(port, '/health');
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text).mart, 'ok');
}

before(async () => {
  await admin(`create database ${DB}`);
  const mart = pools.get(MART_URL);
  await migrateMart(mart);
  await setReportingRole(mart, 'active', 'dc1');
  // More rows than one answer lists: 4 queues over a month of intervals, 10,001 agents, one call of 1,001 events.
  await mart.query(
    `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, answered_in_sl, total_wait_s, total_talk_s)
     select 'q' || n, t, 1, 1, 0, 1, 1, 1
       from generate_series(1, 4) n, generate_series($1::timestamptz, $2::timestamptz - interval '15 minutes', interval '15 minutes') t`,
    [MONTH.from, MONTH.to],
  );
  await mart.query(
    `insert into agent_state_fact (source_id, agent_id, seq, state, start_ts, end_ts)
     select 'sw-voice-1', 'agent-' || lpad(n::text, 6, '0'), 1, 'ready', '2024-03-01T10:00:00Z', '2024-03-01T10:05:00Z'
       from generate_series(1, $1::integer + 1) n`,
    [MAX_REPORT_ROWS],
  );
  await mart.query(
    `insert into interaction_fact (call_id, source_id, media, direction, queue, start_ts, outcome, event_count)
     values ($1, 'sw-voice-1', 'voice', 'inbound', 'q1', '2024-03-01T10:00:00Z', 'in_progress', $2)`,
    [CALL, MAX_CALL_EVENTS + 1],
  );
  await mart.query(
    `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, attrs, member_id, quality)
     select $1, n, 'sw-voice-1', 'held', '2024-03-01T10:00:00Z'::timestamptz + n * interval '1 second', 'voice', 'inbound', '{}', 'idb-voice-1-dc1', 1
       from generate_series(1, $2::integer + 1) n`,
    [CALL, MAX_CALL_EVENTS],
  );

  // An active mart serves only on the DR workflow's word or its absence, so the service
  // needs a Temporal server to ask (here one without a DR workflow).
  temporal = await startDevServer({
    binary: process.env.TWINMART_TEMPORAL_CLI ?? (await findTemporalCli({ logger: silentLogger, build: false })),
    uiPort: null,
    logFile: join(root, 'temporal.log'),
    logger: silentLogger,
  });
  port = await freePort();
  const config = join(root, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      temporal: { address: temporal.address },
      reporting: { primary: 'dc1' },
      sites: { dc1: { mart: MART_URL, reportingPort: port } },
      sources: { 'sw-voice-1': [{ id: 'idb-voice-1-dc1', site: 'dc1', url: `${SERVER}/unused_idb` }] },
    }),
  );
  const log = openSync(logFile, 'a');
  service = spawn(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), 'reporting', '--site', 'dc1', '--config', config], {
    stdio: ['ignore', log, log],
  });
  await waitFor('the reporting service to answer', async () => (await send(port, '/health')).status === 200, 30_000);
});

after(async () => {
  if (service?.exitCode === null) {
    service.kill('SIGTERM');
    await new Promise((resolve) => service.once('exit', resolve));
  }
  await pools.end();
  await temporal?.stop();
  if (failed) {
    process.stderr.write(`reporting-hostile: kept ${root} and database ${DB}\n`);
  } else {
    await admin(`drop database if exists ${DB} with (force)`);
    rmSync(root, { recursive: true, force: true });
  }
});

function check(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  });
}

const range = `from=${MONTH.from}&to=${MONTH.to}`;
const PROTOTYPE_NAMES = ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

/** [method, target, Host or default] and the statuses it may get. */
const HOSTILE: { method?: string; target: string; host?: string; expect: number[] }[] = [
  ...PROTOTYPE_NAMES.flatMap((name) => [
    { target: `/?${name}=1`, expect: [200] },
    { target: `/?${name}=1`, host: 'evil.example', expect: [403] },
    { target: `/health?${name}=x&${name}=y`, expect: [200] },
    { target: `/api/queue-summary?${range}&${name}=1`, expect: [400] },
    { target: `/api/agent-summary?${name}=1`, expect: [400] },
    { target: `/api/dimensions?${range}&${name}=1`, expect: [400] },
    { target: `/api/interactions?${name}=${CALL}`, expect: [400] },
  ]),
  { target: '/api/queue-summary?from=2024-02-30&to=2024-03-01', expect: [400] },
  { target: '/api/queue-summary?from=99999-01-01&to=100000-01-01', expect: [400] },
  { target: '/api/queue-summary?from=0000-01-01&to=0000-01-02', expect: [200, 400] },
  { target: '/api/queue-summary?from=2024-03-01T25:61:61Z&to=2024-03-02', expect: [400] },
  { target: '/api/queue-summary?from=2024-03-01T00:00:00+99:99&to=2024-03-02', expect: [400] },
  { target: '/api/queue-summary?from=1970-01-01&to=9999-12-31', expect: [400] },
  { target: '/api/queue-summary?from=%00&to=%ff%fe', expect: [400] },
  { target: `/api/queue-summary?from=${'9'.repeat(5000)}&to=${'9'.repeat(5000)}`, expect: [400] },
  { target: `/api/queue-summary?${range}&queue=${'x'.repeat(10_000)}`, expect: [400] },
  { target: `/api/queue-summary?${range}&${Array.from({ length: 500 }, (_, i) => `queue=q${i}`).join('&')}`, expect: [400] },
  { target: `/api/queue-summary?${range}&${range}`, expect: [400] },
  { target: `/api/interactions?ani=${'1'.repeat(5000)}`, expect: [400] },
  { target: `/api/interactions?callId=${CALL}&callId=${CALL}`, expect: [400] },
  { target: '/api/interactions?callId=%', expect: [400] },
  { target: '/api/interactions?=&&=&%%%', expect: [400] },
  { target: '/static/../../../../etc/passwd', expect: [404] },
  { target: '/static/..%2F..%2F..%2Fetc%2Fpasswd', expect: [404] },
  { target: '/static/%2e%2e/package.json', expect: [404] },
  { target: '/static/.%00./index.html', expect: [404] },
  { target: '/../../etc/passwd', expect: [404] },
  { target: `/${'a'.repeat(20_000)}`, expect: [404, 414, 431] },
  { target: `/api/queue-summary?${'a'.repeat(20_000)}=1`, expect: [400, 414, 431] },
  { target: 'http://evil.example/api/ops', expect: [404] },
  { target: '*', method: 'OPTIONS', expect: [405] },
  ...['POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND'].map((method) => ({ method, target: '/api/ops', expect: [400, 405] })),
  { target: '/health', host: 'evil.example', expect: [403] },
  { target: '/health', host: '[', expect: [403] },
  { target: '/health', host: '127.0.0.1.evil.example', expect: [403] },
];

check('a run of hostile requests gets refusals, and the service still answers after every one', async () => {
  await healthy();
  for (const r of HOSTILE) {
    const what = `${r.method ?? 'GET'} ${r.target.slice(0, 100)} (Host ${r.host ?? 'own'})`;
    const answer = await send(port, r.target, r).catch((e: Error) => ({ status: -1, text: e.message }));
    alive();
    assert.ok(r.expect.includes(answer.status), `${what}: status ${answer.status}, expected ${r.expect.join(' or ')}: ${answer.text.slice(0, 300)}`);
    assert.ok(!answer.text.includes('root:'), `${what}: served a file outside web/`);
    await healthy();
  }
  const log = readFileSync(logFile, 'utf8');
  assert.ok(!/request failed/.test(log), `no request reached the 500 path:\n${log.slice(-3000)}`);
});

check('a report of more rows than an answer lists is cut to the bound and says truncated', async () => {
  const queues = await send(port, `/api/queue-summary?${range}`);
  assert.equal(queues.status, 200, queues.text.slice(0, 300));
  const q = JSON.parse(queues.text);
  assert.equal(q.rows.length, MAX_REPORT_ROWS);
  assert.equal(q.truncated, true);
  assert.equal(q.totals.offered, 4 * 30 * 96, 'the totals cover every interval, listed or not');

  const agents = JSON.parse((await send(port, `/api/agent-summary?from=2024-03-01&to=2024-03-02`)).text);
  assert.equal(agents.rows.length, MAX_REPORT_ROWS);
  assert.equal(agents.truncated, true);

  const few = JSON.parse((await send(port, `/api/agent-summary?from=2024-03-01&to=2024-03-02&agent=agent-000001`)).text);
  assert.deepEqual([few.rows.length, few.truncated], [1, false]);

  const call = JSON.parse((await send(port, `/api/interactions?callId=${CALL}`)).text);
  assert.equal(call.rows[0].events.length, MAX_CALL_EVENTS);
  assert.equal(call.truncated, true);
  await healthy();
});
