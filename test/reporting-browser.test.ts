/**
 * The dashboard in a real headless browser (Debian `chromium` driven by playwright-core)
 * against the real reporting service (createReportingServer) on a throwaway mart on the
 * default PostgreSQL: the charts hold the numbers of the mart, the totals and the
 * interaction lookup show what was inserted, a bad range shows the API's 400 in the page,
 * and a standby site shows its notice with the report panels disabled while the
 * operations view keeps working. Screenshots go to test/artifacts/. The database is
 * dropped only when every step passed (else its name is printed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { Client as PgClient, type Pool } from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { parseConfig, type Config, type ConfigInput } from '../src/config';
import { Pools } from '../src/db';
import { silentLogger } from '../src/logger';
import { setReportingRole } from '../src/mart/control';
import { migrateMart } from '../src/mart/migrate';
import { repoRoot } from '../src/paths';
import { ensureDebianPackage } from './helpers/apt';
import { hashPassword } from '../src/reporting/password';
import { createReportingServer } from '../src/reporting/server';
import type { DrStatus } from '../src/workflows/dr-messages';
import type { EtlStatus } from '../src/workflows/etl-messages';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const ADMIN_URL = process.env.TWINMART_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ARTIFACTS = join(repoRoot, 'test', 'artifacts');
const SITE = 'dc1';
const MIN15 = 15 * 60_000;

async function admin<T>(fn: (c: PgClient) => Promise<T>): Promise<T> {
  const c = new PgClient({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

// ---------- the data the mart holds (times relative to now, inside the default last 24 hours) ----------

const INTERVALS = 40; // ten hours of 15-minute intervals, the last one closed an hour ago
const base = Math.floor(Date.now() / MIN15) * MIN15 - (INTERVALS + 4) * MIN15;
const at = (ms: number) => new Date(ms);
const iso = (ms: number) => new Date(ms).toISOString();
const I0 = base;
const I1 = base + MIN15;
const I2 = base + 2 * MIN15;

interface QueueRow {
  queue: string;
  interval: number;
  offered: number;
  answered: number;
  abandoned: number;
  inSl: number;
  wait: number;
  talk: number;
}
/** A few hand-picked rows (one at 100 % service level), then a deterministic working day around them. */
const QUEUE_ROWS: QueueRow[] = [
  { queue: 'sales', interval: I0, offered: 12, answered: 10, abandoned: 2, inSl: 9, wait: 120, talk: 1800 },
  { queue: 'support', interval: I0, offered: 8, answered: 7, abandoned: 1, inSl: 4, wait: 210, talk: 1400 },
  { queue: 'sales', interval: I1, offered: 5, answered: 5, abandoned: 0, inSl: 5, wait: 25, talk: 900 },
  { queue: 'support', interval: I2, offered: 4, answered: 2, abandoned: 2, inSl: 1, wait: 80, talk: 300 },
];
['billing', 'sales', 'support'].forEach((queue, j) => {
  for (let k = 0; k < INTERVALS; k++) {
    if (k < 3 && queue !== 'billing') continue;
    const offered = 6 + ((k * 7 + j * 5) % 13) + (queue === 'support' ? 6 : 0) + Math.round(10 * Math.sin((k + j) / 7) ** 2);
    const abandoned = (k + j) % 4 === 0 ? 3 : (k + j) % 3;
    const answered = offered - abandoned;
    const inSl = Math.max(0, answered - ((k * 3 + j) % 5));
    QUEUE_ROWS.push({ queue, interval: base + k * MIN15, offered, answered, abandoned, inSl, wait: answered * (8 + ((k + j) % 10)), talk: answered * (150 + ((k * 11 + j * 29) % 90)) });
  }
});
QUEUE_ROWS.sort((a, b) => a.interval - b.interval || a.queue.localeCompare(b.queue));
/** Per interval, summed over the queues: what the volume and service-level charts show. */
const EXPECTED_BY_INTERVAL = new Map<string, { offered: number; answered: number; abandoned: number; sl: number }>();
for (const r of QUEUE_ROWS) {
  const k = iso(r.interval);
  const e = EXPECTED_BY_INTERVAL.get(k) ?? { offered: 0, answered: 0, abandoned: 0, sl: 0 };
  e.offered += r.offered;
  e.answered += r.answered;
  e.abandoned += r.abandoned;
  e.sl += r.inSl; // answered in SL for now; turned into a percentage below
  EXPECTED_BY_INTERVAL.set(k, e);
}
for (const e of EXPECTED_BY_INTERVAL.values()) e.sl = (100 * e.sl) / e.offered;

const CALL_ID = randomUUID();
const OTHER_CALL_ID = randomUUID();
const ANI = '+4930555012';
const CALL_START = I0 + 2 * 60_000;
const CALL_EVENTS = [
  { seq: 1, event: 'created', ts: CALL_START, queue: null, agent: null },
  { seq: 2, event: 'queued', ts: CALL_START + 2_000, queue: 'sales', agent: null },
  { seq: 3, event: 'established', ts: CALL_START + 14_000, queue: 'sales', agent: 'agent-007' },
  { seq: 4, event: 'released', ts: CALL_START + 182_000, queue: 'sales', agent: 'agent-007' },
];
interface Span {
  agent: string;
  seq: number;
  state: string;
  start: number;
  seconds: number;
}
const AGENT_SPANS: Span[] = [
  { agent: 'agent-007', seq: 1, state: 'logged_in', start: I0, seconds: 60 },
  { agent: 'agent-007', seq: 2, state: 'ready', start: I0 + 60_000, seconds: 600 },
  { agent: 'agent-007', seq: 3, state: 'after_call_work', start: I0 + 660_000, seconds: 120 },
  { agent: 'agent-007', seq: 4, state: 'not_ready', start: I0 + 780_000, seconds: 300 },
  { agent: 'agent-008', seq: 1, state: 'ready', start: I1, seconds: 900 },
];
/** More agents, each a login, then ready / after-call / not-ready spans one after the other. */
const OTHER_AGENTS = ['agent-011', 'agent-012', 'agent-013', 'agent-014'];
OTHER_AGENTS.forEach((agent, i) => {
  let t = base + i * 60_000;
  const plan: [string, number][] = [
    ['logged_in', 120 + i * 30],
    ['ready', 3600 + i * 900],
    ['after_call_work', 900 + i * 240],
    ['not_ready', 600 + ((i * 420) % 1500)],
    ['ready', 1800 + i * 300],
  ];
  plan.forEach(([state, seconds], n) => {
    AGENT_SPANS.push({ agent, seq: n + 1, state, start: t, seconds });
    t += seconds * 1000;
  });
});
/** Calls answered by the other agents (facts only: the lookup test uses CALL_ID). */
const OTHER_CALLS = OTHER_AGENTS.flatMap((agent, i) =>
  Array.from({ length: 3 + i * 2 }, (_, n) => {
    const start = base + (n + 1) * 37 * 60_000 + i * 90_000;
    return { id: randomUUID(), agent, queue: ['billing', 'sales', 'support'][(i + n) % 3]!, start, wait: 5 + ((n * 7) % 30), talk: 120 + ((i * 53 + n * 31) % 400) };
  }),
);

async function seedMart(db: Pool): Promise<void> {
  for (const r of QUEUE_ROWS) {
    await db.query(
      `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, answered_in_sl, total_wait_s, total_talk_s)
       values ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [r.queue, at(r.interval), r.offered, r.answered, r.abandoned, r.inSl, r.wait, r.talk],
    );
  }
  const fact = `insert into interaction_fact (call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts,
                  outcome, wait_s, talk_s, event_count) values ($1, 'sw-voice-1', 'voice', 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $10)`;
  await db.query(fact, [CALL_ID, 'sales', 'agent-007', at(CALL_START), at(CALL_START + 14_000), at(CALL_START + 182_000), 'answered', 12, 168, 4]);
  await db.query(fact, [OTHER_CALL_ID, 'support', 'agent-008', at(I1 + 60_000), at(I1 + 70_000), at(I1 + 130_000), 'answered', 10, 60, 2]);
  for (const c of OTHER_CALLS) {
    const answer = c.start + c.wait * 1000;
    await db.query(fact, [c.id, c.queue, c.agent, at(c.start), at(answer), at(answer + c.talk * 1000), 'answered', c.wait, c.talk, 4]);
  }
  const event = `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id, attrs,
                   member_id, quality, discard_reason) values ($1, $2, 'sw-voice-1', $3, $4, 'voice', 'inbound', $5, '8000', $6, $7, '{}',
                   'idb-voice-1-dc1', 0, $8)`;
  for (const e of CALL_EVENTS) await db.query(event, [CALL_ID, e.seq, e.event, at(e.ts), ANI, e.queue, e.agent, null]);
  // A discarded event of the same call: never shown.
  await db.query(event, [CALL_ID, 5, 'held', at(CALL_START + 1_000), ANI, 'sales', 'agent-007', 'out of order']);
  await db.query(event, [OTHER_CALL_ID, 1, 'created', at(I1 + 60_000), '+4930555999', null, null, null]);
  for (const s of AGENT_SPANS) {
    await db.query(
      `insert into agent_state_fact (source_id, agent_id, seq, state, start_ts, end_ts) values ('sw-voice-1', $1, $2, $3, $4, $5)`,
      [s.agent, s.seq, s.state, at(s.start), at(s.start + s.seconds * 1000)],
    );
  }
}

// ---------- what the operations view gets from "Temporal" ----------

const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();
const DR_STATUS: DrStatus = {
  phase: 'normal',
  sites: { dc1: 'active', dc2: 'active' },
  reporting: { primary: 'dc1', active: 'dc1', awaitingConfirmation: null },
  pending: [],
  dataLoss: {
    failedSite: 'dc2',
    at: ago(3600),
    potentialLoss: ['sw-chat-1'],
    sets: [
      { sourceId: 'sw-voice-1', members: [], survivingMembers: ['idb-voice-1-dc1'], lastEventBySite: null },
      { sourceId: 'sw-chat-1', members: [], survivingMembers: [], lastEventBySite: { dc1: ago(3650) } },
    ],
    gapsBySite: {},
  },
  timeline: [
    ['declareSiteFailure', 'dc2'],
    ['exclusions confirmed', 'dc1'],
    ['etl cancelled', 'dc2'],
    ['data-loss report', undefined],
    ['degraded', undefined],
    ['siteRebuilt', 'dc2'],
    ['seeded', 'dc2'],
    ['caught up', 'dc2'],
    ['parity passed', 'dc2'],
    ['normal', undefined],
  ].map(([step, site], i) => ({ at: ago(3600 - i * 60), step: step!, ...(site ? { site } : {}) })),
  rejected: [],
  suspected: {},
  lastFailover: {
    site: 'dc2',
    declaredAt: ago(3600),
    exclusionsConfirmedAt: ago(3597),
    reportingActivatedAt: null,
    reportingConfirmedAt: null,
    degradedAt: ago(3595),
    rtoSeconds: 4.2,
  },
  reintroduction: { site: 'dc2', at: ago(3300), caughtUp: true, parity: 'passed' },
  lastError: null,
  continuedAsNew: 0,
};
function etlStatus(site: string): EtlStatus {
  const member = (memberSite: string, sourceId: string, rows: number) => ({
    site: memberSite,
    sourceId,
    state: 'ok' as const,
    lastOkAt: ago(1),
    lastError: null,
    lastReset: null,
    rowsTotal: rows,
    lastRows: 3,
  });
  return {
    site,
    runId: 'run-' + site,
    paused: false,
    cycle: 4711,
    excludedSites: [],
    excludedMembers: [],
    members: { 'idb-voice-1-dc1': member('dc1', 'sw-voice-1', 1520), 'idb-voice-1-dc2': member('dc2', 'sw-voice-1', 1518) },
    totals: { callRows: 3038, agentRows: 120, facts: 400, discarded: 1 },
    lastCycle: { startedAt: ago(2), finishedAt: ago(1), rows: 6, facts: 2 },
    pending: [],
    applied: [],
    rejected: [],
    continuedAsNew: 0,
  };
}
/** Just what the service's status queries need: a handle per workflow id whose query answers from the fixtures. */
const fakeTemporal = {
  withDeadline: <R>(_deadline: number, fn: () => Promise<R>) => fn(),
  connection: { close: async () => {} },
  workflow: {
    getHandle(workflowId: string) {
      return {
        workflowId,
        async query() {
          if (workflowId === 'twinmart-dr') return DR_STATUS;
          const m = /^twinmart-etl-(.+)$/.exec(workflowId);
          if (m && m[1] === 'dc1') return etlStatus('dc1');
          throw new Error(`workflow not found: ${workflowId}`);
        },
      };
    },
  },
} as unknown as Client;

// ---------- the world of this file ----------

const dbName = `twinmart_browser_${process.pid}_${Date.now().toString(36)}`;
let mart: Pool;
let pools: Pools;
let server: { listen(port?: number): Promise<number>; close(): Promise<void> } | undefined;
let baseUrl = '';
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];
let failed = false;

function step(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  };
}

let martUrl = '';
/** The service's config; `auth` for the sign-in test. */
function configInput(auth?: NonNullable<ConfigInput['reporting']>['auth']): ConfigInput {
  return {
    temporal: {},
    reporting: { primary: 'dc1', ...(auth && { auth }) },
    sites: {
      dc1: { mart: martUrl, reportingPort: 8401 },
      dc2: { mart: martUrl.replace(dbName, `${dbName}_dc2_unused`), reportingPort: 8402 },
    },
    sources: {
      'sw-voice-1': [
        { id: 'idb-voice-1-dc1', site: 'dc1', url: 'postgres://postgres@127.0.0.1:5432/unused_idb_1' },
        { id: 'idb-voice-1-dc2', site: 'dc2', url: 'postgres://postgres@127.0.0.1:5432/unused_idb_2' },
      ],
    },
  };
}

before(step(async () => {
  const executablePath = ensureDebianPackage(CHROMIUM, 'chromium');
  mkdirSync(ARTIFACTS, { recursive: true });
  await admin((c) => c.query(`create database ${dbName}`));
  martUrl = ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`);
  const config: Config = parseConfig(configInput());
  pools = new Pools();
  mart = pools.get(martUrl);
  await migrateMart(mart);
  await setReportingRole(mart, 'active', SITE);
  await seedMart(mart);

  server = createReportingServer({ config, site: SITE, pools, logger: silentLogger, temporal: async () => fakeTemporal });
  const port = await server.listen(0);
  baseUrl = `http://127.0.0.1:${port}`;

  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  // Everything comes from the service: any other request is a bug in the page.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(baseUrl + '/') || url.startsWith('data:')) return route.continue();
    pageErrors.push(`external request: ${url}`);
    return route.abort();
  });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The 400 and 503 the steps provoke on purpose are logged by the browser as failed loads.
    if (m.type() === 'error' && !/Failed to load resource: .* status of (400|503)\b/.test(m.text())) {
      pageErrors.push(`console error: ${m.text()}`);
    }
  });
}));

after(async () => {
  await browser?.close().catch(() => {});
  await server?.close().catch(() => {});
  await pools?.end();
  if (failed) {
    process.stderr.write(`[reporting-browser] a step failed: database ${dbName} kept on ${ADMIN_URL.replace(/\/[^/]*$/, '')}\n`);
  } else {
    await admin((c) => c.query(`drop database if exists ${dbName} with (force)`));
  }
});

/** How far the page scrolls sideways, and the outermost elements that stick out (for the message). */
async function horizontalOverflow(): Promise<{ px: number; culprits: string[] }> {
  return page.evaluate(() => {
    const doc = (globalThis as any).document;
    const width = doc.documentElement.clientWidth;
    const culprits: string[] = [];
    for (const el of doc.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > width + 1 && !(el.parentElement && el.parentElement.getBoundingClientRect().right > width + 1)) {
        culprits.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${String(el.className).replace(/ /g, '.')} (right ${Math.round(r.right)})`);
      }
    }
    return { px: doc.documentElement.scrollWidth - width, culprits: culprits.slice(0, 8) };
  });
}

type ChartData = { labels: string[]; intervals?: string[]; datasets: { label: string; data: (number | null)[]; state?: string }[] };

async function chartData(name: 'volume' | 'serviceLevel' | 'agentStates'): Promise<ChartData> {
  return page.evaluate((n) => {
    const charts = (globalThis as any).twinmartCharts;
    const c = charts && charts[n];
    if (!c) throw new Error(`window.twinmartCharts.${n} is not set`);
    return JSON.parse(JSON.stringify({ labels: c.data.labels, intervals: c.data.intervals, datasets: c.data.datasets.map((d: any) => ({ label: d.label, data: d.data, state: d.state })) }));
  }, name);
}

test(
  'active site: the dashboard renders the mart in charts and tables, and finds a call by its caller number',
  step(async () => {
    await page.goto(`${baseUrl}/`);
    await page.waitForSelector('body[data-reports-loaded]', { timeout: 20_000 });
    await page.waitForSelector('body[data-ops-loaded]', { timeout: 20_000 });

    assert.equal(await page.textContent('#site-name'), SITE);
    assert.equal(await page.getAttribute('#role-badge', 'data-role'), 'active');
    assert.equal(await page.textContent('#active-site'), SITE);
    assert.equal(await page.isVisible('#standby-notice'), false);
    assert.equal(await page.isVisible('#queues-error'), false, `queue error: ${await page.textContent('#queues-error')}`);
    assert.equal(await page.isVisible('#agents-error'), false, `agent error: ${await page.textContent('#agents-error')}`);
    for (const id of ['#chart-volume', '#chart-sl', '#chart-agents']) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `${id} is drawn (${JSON.stringify(box)})`);
    }

    // Volume: offered / answered / abandoned per interval, summed over the queues, zero elsewhere.
    const volume = await chartData('volume');
    assert.deepEqual(volume.datasets.map((d) => d.label), ['Offered', 'Answered', 'Abandoned']);
    assert.ok(volume.intervals && volume.intervals.length === volume.labels.length, 'the chart keeps its interval starts');
    for (const k of EXPECTED_BY_INTERVAL.keys()) assert.ok(volume.intervals!.includes(k), `interval ${k} is on the chart`);
    volume.intervals!.forEach((k, i) => {
      const e = EXPECTED_BY_INTERVAL.get(k) ?? { offered: 0, answered: 0, abandoned: 0 };
      assert.deepEqual([volume.datasets[0]!.data[i], volume.datasets[1]!.data[i], volume.datasets[2]!.data[i]], [e.offered, e.answered, e.abandoned], `volume at ${k}`);
    });

    // Service level: 100 * answered_in_sl / offered per interval; no value where nothing was offered.
    const sl = await chartData('serviceLevel');
    assert.deepEqual(sl.intervals, volume.intervals);
    const overall = sl.datasets[0]!;
    sl.intervals!.forEach((k, i) => {
      const e = EXPECTED_BY_INTERVAL.get(k);
      if (e) assert.ok(Math.abs(overall.data[i]! - e.sl) < 1e-9, `service level at ${k}: ${overall.data[i]} vs ${e.sl}`);
      else assert.equal(overall.data[i], null, `no service level at ${k}`);
    });
    // One dashed line per queue besides the overall one.
    assert.deepEqual(sl.datasets.slice(1).map((d) => d.label), ['billing', 'sales', 'support']);
    const salesI1 = sl.datasets[2]!.data[sl.intervals!.indexOf(iso(I1))];
    assert.equal(salesI1, 100);

    // The queue table: a row per interval and queue, and the totals from summed counts.
    assert.equal(await page.locator('#queue-table tbody tr').count(), QUEUE_ROWS.length);
    const totals = (await page.locator('#queue-table tfoot tr td').allTextContents()).map((s) => s.trim());
    const sum = (k: 'offered' | 'answered' | 'abandoned' | 'inSl', rows = QUEUE_ROWS) => rows.reduce((a, r) => a + r[k], 0);
    const n = new Intl.NumberFormat('en-US');
    assert.deepEqual(totals.slice(0, 4), [n.format(sum('offered')), n.format(sum('answered')), n.format(sum('abandoned')), ((100 * sum('inSl')) / sum('offered')).toFixed(1)]);
    // The queue filter lists the queues seen in the data.
    const queueOptions = await page.locator('#queue-filter input[type=checkbox]').evaluateAll((els) => els.map((e) => (e as any).value));
    assert.deepEqual(queueOptions, ['billing', 'sales', 'support']);

    // Agents: a horizontal stacked bar per agent, seconds per state.
    const agents = await chartData('agentStates');
    assert.deepEqual(agents.labels, ['agent-007', 'agent-008', ...OTHER_AGENTS]);
    const byState = Object.fromEntries(agents.datasets.map((d) => [d.state, d.data]));
    const expectedSeconds = new Map<string, number>();
    for (const s of AGENT_SPANS) expectedSeconds.set(`${s.agent} ${s.state}`, (expectedSeconds.get(`${s.agent} ${s.state}`) ?? 0) + s.seconds);
    for (const [key, seconds] of expectedSeconds) {
      const [agent, state] = key.split(' ') as [string, string];
      const got = byState[state]![agents.labels.indexOf(agent)] as number;
      assert.ok(Math.abs(got - seconds) < 1e-6, `${key}: ${got} s on the chart, ${seconds} s inserted`);
    }
    const agentRow = (await page.locator('#agent-table tbody tr[data-agent="agent-007"] td').allTextContents()).map((s) => s.trim());
    assert.deepEqual(agentRow.slice(0, 4), ['agent-007', '1', '2:48', '10:00']);

    // Filtering by one queue narrows the charts and the table.
    await page.click('#queue-filter summary');
    await page.check('#queue-filter input[value="support"]');
    await page.click('#apply');
    const supportRows = QUEUE_ROWS.filter((r) => r.queue === 'support');
    await page.waitForFunction((n) => (globalThis as any).document.querySelectorAll('#queue-table tbody tr').length === n, supportRows.length);
    const supportOnly = await chartData('volume');
    assert.equal(supportOnly.datasets[0]!.data.reduce((a, b) => a! + b!, 0), sum('offered', supportRows));
    assert.deepEqual((await chartData('serviceLevel')).datasets.length, 1, 'one queue: one service-level line');
    await page.click('#queue-filter summary');
    await page.uncheck('#queue-filter input[value="support"]');
    await page.click('#apply');
    await page.waitForFunction((n) => (globalThis as any).document.querySelectorAll('#queue-table tbody tr').length === n, QUEUE_ROWS.length);

    // Interaction lookup by caller number: the call, its fields and its usable events in order.
    await page.fill('#lookup-input', ANI);
    await page.click('#lookup-button');
    const call = page.locator(`.call[data-call-id="${CALL_ID}"]`);
    await call.waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('.call').count(), 1);
    const events = await call.locator('.timeline__item').evaluateAll((els) => els.map((e) => (e as any).dataset.event));
    assert.deepEqual(events, CALL_EVENTS.map((e) => e.event));
    const callText = await call.textContent();
    for (const s of [ANI, 'agent-007', 'sales', 'answered', '0:12', '2:48']) assert.ok(callText!.includes(s), `the call shows ${s}`);

    // Operations view: DR and ETL status from Temporal.
    assert.equal(await page.textContent('#dr-phase'), 'normal');
    assert.match((await page.textContent('#dr-rto'))!, /4\.2 s/);
    assert.equal(await page.locator('#dr-body .steps li').count(), 10);
    assert.match((await page.textContent('.etl-site[data-site="dc1"]'))!, /running/);
    assert.match((await page.textContent('.etl-site[data-site="dc2"]'))!, /not running/);
    assert.equal(await page.locator('.etl-site[data-site="dc1"] tr[data-state="ok"]').count(), 2);

    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-active.png'), fullPage: true });
    // A phone-sized screen: everything reflows, nothing pushes the page sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300); // charts resize on the next frames
    const narrow = await horizontalOverflow();
    assert.ok(narrow.px <= 0, `no horizontal overflow on a narrow screen: ${narrow.px} px, from ${narrow.culprits.join(', ')}`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-active-narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // A range the API refuses (to before from): its 400 message is shown in the page.
    const from = await page.inputValue('#from');
    const to = await page.inputValue('#to');
    await page.fill('#from', to);
    await page.fill('#to', from);
    await page.click('#apply');
    await page.waitForSelector('#queues-error:not([hidden])');
    assert.match((await page.textContent('#queues-error'))!, /refused: .*to/);
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'standby site: the notice names the active site, the report panels are disabled, operations still work',
  step(async () => {
    await setReportingRole(mart, 'standby', 'dc2');
    pageErrors.length = 0;
    await page.reload();
    await page.waitForSelector('#standby-notice:not([hidden])', { timeout: 20_000 });
    await page.waitForSelector('body[data-ops-loaded]', { timeout: 20_000 });

    assert.equal(await page.getAttribute('#role-badge', 'data-role'), 'standby');
    assert.equal(await page.textContent('#active-site'), 'dc2');
    assert.match((await page.textContent('#standby-notice'))!, /standby: reports are served by dc2/);
    assert.equal(await page.getAttribute('#reports', 'data-disabled'), 'true');
    assert.equal(await page.getAttribute('#reports', 'inert'), '');
    assert.equal(await page.isDisabled('#apply'), true);
    assert.equal(await page.isDisabled('#lookup-input'), true);
    assert.match((await page.textContent('#queues-error'))!, /standby: reports are served by dc2/);
    // The service refuses the reports itself too.
    const res = await page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, body: (await r.json()) as { error?: string } };
    }, `${baseUrl}/api/queue-summary?from=${iso(I0)}&to=${iso(I2 + MIN15)}`);
    assert.equal(res.status, 503);
    assert.equal(res.body.error, 'standby');
    // The operations view still works on the standby.
    assert.equal(await page.textContent('#dr-phase'), 'normal');
    assert.equal(await page.locator('.etl-site').count(), 2);

    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-standby.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const narrow = await horizontalOverflow();
    assert.ok(narrow.px <= 0, `no horizontal overflow on a narrow screen: ${narrow.px} px, from ${narrow.culprits.join(', ')}`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-standby-narrow.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'with reporting.auth the dashboard sends the user to the sign-in page, which refuses a wrong password and opens the dashboard',
  step(async () => {
    await setReportingRole(mart, 'active', SITE); // the standby test before left it standby
    const secretEnv = 'TWINMART_BROWSER_TEST_SECRET';
    process.env[secretEnv] = 'browser-test-secret-long-enough-0123456789';
    const users = { ann: { passwordHash: await hashPassword('ann-password'), role: 'operator' as const } };
    const guarded = createReportingServer({
      config: parseConfig(configInput({ sessionSecretEnv: secretEnv, users })),
      site: SITE,
      pools,
      logger: silentLogger,
      temporal: async () => fakeTemporal,
    });
    const guardedUrl = `http://127.0.0.1:${await guarded.listen(0)}`;
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
    try {
      const signIn = await context.newPage();
      const errors: string[] = [];
      signIn.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      await signIn.goto(`${guardedUrl}/`);
      await signIn.waitForURL(`${guardedUrl}/static/login.html`, { timeout: 20_000 });
      await signIn.fill('#login-user', 'ann');
      await signIn.fill('#login-password', 'not-her-password');
      await signIn.click('#login-submit');
      await signIn.waitForSelector('#login-error:not([hidden])', { timeout: 10_000 });
      assert.match((await signIn.textContent('#login-error'))!, /wrong user or password/);
      await signIn.fill('#login-password', 'ann-password');
      await signIn.click('#login-submit');
      await signIn.waitForURL(`${guardedUrl}/`, { timeout: 10_000 });
      await signIn.waitForSelector('body[data-reports-loaded]', { timeout: 20_000 });
      await signIn.waitForSelector('body[data-ops-loaded]', { timeout: 20_000 });
      assert.equal(await signIn.textContent('#site-name'), SITE);
      assert.equal(await signIn.isVisible('#queues-error'), false, `queue error: ${await signIn.textContent('#queues-error')}`);
      const [cookie] = await context.cookies(guardedUrl);
      assert.deepEqual([cookie?.name, cookie?.httpOnly, cookie?.sameSite], ['twinmart_session', true, 'Strict']);
      await signIn.screenshot({ path: join(ARTIFACTS, 'dashboard-signed-in.png') });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await guarded.close();
    }
  }),
);
