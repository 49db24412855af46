/**
 * The dashboard in a real headless browser (Debian `chromium` driven by playwright-core)
 * against the real reporting service (createReportingServer) on a throwaway mart on the
 * default PostgreSQL. Each test names the behaviour it shows: a view restored from its
 * link, the granularity control, a drill to the calls of an interval and back, the CSV
 * export against the API's JSON and SQL on the mart, an agent's state timeline, a DST
 * day, the operations view, the dark theme, auto-refresh pausing while hidden, and a
 * standby's link to the active site. Screenshots of each view go to test/artifacts/ and
 * to $TWINMART_SCREENSHOTS when set; docs/img/dashboard.png (the README's) is written
 * from the queue view, and docs/img/views/ (docs/dashboard.md's) from every view, with
 * TWINMART_README_SCREENSHOT=1. The database is dropped only when every step passed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { Client as PgClient, type Pool } from 'pg';
import type { Browser, Page } from 'playwright-core';
import { parseConfig, type Config, type ConfigInput } from '../src/config';
import { Pools, withPgClient } from '../src/db';
import { silentLogger } from '../src/logger';
import { setReportingRole } from '../src/mart/control';
import { migrateMart } from '../src/mart/migrate';
import { repoRoot } from '../src/paths';
import { openDashboardBrowser } from './helpers/browser';
import { csvRecords } from './helpers/csv';
import { hashPassword } from '../src/reporting/password';
import { createReportingServer } from '../src/reporting/server';
import type { DrStatus } from '../src/workflows/dr-messages';
import type { EtlStatus } from '../src/workflows/etl-messages';

const ADMIN_URL = process.env.TWINMART_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ARTIFACTS = join(repoRoot, 'test', 'artifacts');
const SCREENSHOTS = process.env.TWINMART_SCREENSHOTS;
/** The docs' pictures are drawn on request, so a test run leaves the clone as it was. */
const DOCS_IMG = process.env.TWINMART_README_SCREENSHOT ? join(repoRoot, 'docs', 'img') : undefined;
const DOCS_VIEWS = DOCS_IMG && join(DOCS_IMG, 'views');
const SITE = 'dc1';
const MIN15 = 15 * 60_000;

const admin = <T>(fn: (c: PgClient) => Promise<T>): Promise<T> => withPgClient(ADMIN_URL, fn);

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

/**
 * 25 October 2026 in Europe/Berlin has 25 hours (clocks go back at 03:00 CEST): local
 * midnight to midnight is 22:00 UTC to 23:00 UTC the next day. A queue of its own gets a
 * row per quarter-hour of that day, plus one just before and one just after, which the
 * day bucket must leave out.
 */
const DST_QUEUE = 'dst-line';
const DST_FROM = '2026-10-24T22:00:00.000Z';
const DST_TO = '2026-10-25T23:00:00.000Z';
const DST_ROWS = Array.from({ length: 102 }, (_, k) => {
  const interval = Date.parse(DST_FROM) + (k - 1) * MIN15;
  const offered = 1 + (k % 7);
  return { queue: DST_QUEUE, interval, offered, answered: offered - (k % 2), abandoned: k % 2, inSl: Math.max(0, offered - (k % 2) - (k % 3 === 0 ? 1 : 0)), wait: 10 * offered, talk: 100 * offered };
});

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
/** The configured dimensions (etl.dimensions) and the attached data of the calls. */
const DIMENSIONS = ['segment', 'language'];
const CALL_DIMS = { segment: 'gold', language: 'en' };
/** Calls answered by the other agents (facts only: the lookup test uses CALL_ID). */
const OTHER_CALLS = OTHER_AGENTS.flatMap((agent, i) =>
  Array.from({ length: 3 + i * 2 }, (_, n) => {
    const start = base + (n + 1) * 37 * 60_000 + i * 90_000;
    const dims = { segment: ['gold', 'silver', 'bronze'][(n + i) % 3]!, language: ['en', 'de'][(i * 3 + n) % 2]! };
    return { id: randomUUID(), agent, queue: ['billing', 'sales', 'support'][(i + n) % 3]!, start, wait: 5 + ((n * 7) % 30), talk: 120 + ((i * 53 + n * 31) % 400), dims };
  }),
);

async function seedMart(db: Pool): Promise<void> {
  for (const r of [...QUEUE_ROWS, ...DST_ROWS]) {
    await db.query(
      `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, answered_in_sl, total_wait_s, total_talk_s)
       values ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [r.queue, at(r.interval), r.offered, r.answered, r.abandoned, r.inSl, r.wait, r.talk],
    );
  }
  const fact = `insert into interaction_fact (call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts,
                  outcome, wait_s, talk_s, event_count, dims) values ($1, 'sw-voice-1', 'voice', 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`;
  await db.query(fact, [CALL_ID, 'sales', 'agent-007', at(CALL_START), at(CALL_START + 14_000), at(CALL_START + 182_000), 'answered', 12, 168, 4, CALL_DIMS]);
  // No attached data: a row of its own when grouped.
  await db.query(fact, [OTHER_CALL_ID, 'support', 'agent-008', at(I1 + 60_000), at(I1 + 70_000), at(I1 + 130_000), 'answered', 10, 60, 2, {}]);
  for (const c of OTHER_CALLS) {
    const answer = c.start + c.wait * 1000;
    await db.query(fact, [c.id, c.queue, c.agent, at(c.start), at(answer), at(answer + c.talk * 1000), 'answered', c.wait, c.talk, 4, c.dims]);
  }
  const event = `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id, attrs,
                   member_id, quality, discard_reason) values ($1, $2, 'sw-voice-1', $3, $4, 'voice', 'inbound', $5, '8000', $6, $7, '{}',
                   'idb-voice-1-dc1', 0, $8)`;
  for (const e of CALL_EVENTS) await db.query(event, [CALL_ID, e.seq, e.event, at(e.ts), ANI, e.queue, e.agent, null]);
  // A discarded event of the same call: never shown.
  await db.query(event, [CALL_ID, 5, 'held', at(CALL_START + 1_000), ANI, 'sales', 'agent-007', 'out of order']);
  await db.query(event, [OTHER_CALL_ID, 1, 'created', at(I1 + 60_000), '+4930555999', null, null, null]);
  // The DR probe's last measure of this mart's lag per member (ctl_member_lag).
  await db.query(
    `insert into ctl_member_lag (member_id, rows_behind, last_read_at, measured_at)
     values ('idb-voice-1-dc1', 0, now() - interval '2 seconds', now()), ('idb-voice-1-dc2', 42, now() - interval '7 seconds', now())`,
  );
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
    recentCycles: [
      { startedAt: ago(4), finishedAt: ago(3), rows: 0, facts: 0 },
      { startedAt: ago(2), finishedAt: ago(1), rows: 6, facts: 2 },
    ],
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
let pageErrors: string[] = [];
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
    etl: { dimensions: DIMENSIONS },
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
  for (const dir of [ARTIFACTS, SCREENSHOTS, DOCS_VIEWS]) if (dir) mkdirSync(dir, { recursive: true });
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

  ({ browser, page, pageErrors } = await openDashboardBrowser(baseUrl));
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

/** Waits until the page has shown the view of its current URL. */
async function loaded(p: Page = page): Promise<void> {
  await p.waitForFunction(() => {
    const g = globalThis as any;
    return g.document.body.dataset.loaded === g.location.search && !g.document.body.dataset.loading;
  }, undefined, { timeout: 20_000 });
}

async function open(search: string): Promise<void> {
  await page.goto(`${baseUrl}/${search}`);
  await loaded();
}

async function search(): Promise<URLSearchParams> {
  return new URLSearchParams(await page.evaluate(() => (globalThis as any).location.search));
}

/** Screenshots go to test/artifacts/, and to $TWINMART_SCREENSHOTS and docs/img/views/ when asked for. */
async function shot(name: string): Promise<void> {
  for (const dir of [ARTIFACTS, SCREENSHOTS, DOCS_VIEWS].filter(Boolean) as string[]) {
    await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
  }
}

async function noViewError(view: string): Promise<void> {
  const box = page.locator(`#${view}-error`);
  assert.equal(await box.isVisible(), false, `${view} error: ${await box.textContent()}`);
}

/** The JSON of an API URL, fetched by the page (same origin, same session). */
async function apiJson(path: string): Promise<any> {
  return page.evaluate(async (u) => {
    const r = await fetch(u);
    if (!r.ok) throw new Error(`${u}: ${r.status} ${await r.text()}`);
    return r.json();
  }, path);
}

test(
  'a link with a view in it restores report, range, filters, granularity and time zone; the granularity control changes it',
  step(async () => {
    const from = iso(I0);
    const to = iso(I0 + 12 * MIN15);
    await open(`?view=queues&from=${from}&to=${to}&granularity=hour&tz=America%2FNew_York&queue=sales&queue=support`);
    await noViewError('queues');
    assert.equal(await page.inputValue('#granularity'), 'hour');
    assert.equal(await page.inputValue('#tz'), 'America/New_York');
    assert.equal(await page.inputValue('#range'), 'custom');
    assert.equal(await page.textContent('#queue-filter-summary'), 'sales, support');
    assert.equal(await page.getAttribute('.section-nav a[data-view="queues"]', 'aria-current'), 'page');
    // The table holds the hourly buckets of the two queues: the mart's 15-minute rows summed per hour.
    const expected = await mart.query<{ queue: string; hour: Date; offered: string }>(
      `select queue, date_trunc('hour', interval_start) as hour, sum(offered) as offered from ag_queue_15min
        where interval_start >= $1 and interval_start < $2 and queue in ('sales', 'support') group by 1, 2 order by 2, 1`,
      [from, to],
    );
    const rows = await page.locator('#queue-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => ({ queue: tr.dataset.queue, interval: tr.dataset.interval, offered: tr.children[2].textContent })));
    assert.deepEqual(rows, expected.rows.map((r) => ({ queue: r.queue, interval: r.hour.toISOString(), offered: String(Number(r.offered)) })));

    // Changing the granularity is a new URL (a history entry), and the table follows.
    await page.selectOption('#granularity', '15min');
    await loaded();
    assert.equal((await search()).get('granularity'), '15min');
    const quarter = QUEUE_ROWS.filter((r) => r.interval >= I0 && r.interval < I0 + 12 * MIN15 && ['sales', 'support'].includes(r.queue));
    assert.equal(await page.locator('#queue-table tbody tr').count(), quarter.length);
    await page.goBack();
    await loaded();
    assert.equal(await page.inputValue('#granularity'), 'hour');
    assert.equal(await page.locator('#queue-table tbody tr').count(), expected.rows.length);
    // A reload keeps the view.
    await page.reload();
    await loaded();
    assert.equal(await page.inputValue('#granularity'), 'hour');
    assert.equal((await search()).getAll('queue').join(','), 'sales,support');
    // The queue filter: one queue left, applied, is the link's filter.
    await page.click('#queue-filter summary');
    await page.uncheck('#queue-filter input[value="support"]');
    await page.click('#apply');
    await loaded();
    assert.deepEqual((await search()).getAll('queue'), ['sales']);
    assert.deepEqual(new Set(await page.locator('#queue-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => tr.dataset.queue))), new Set(['sales']));
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'queue view: the charts hold the mart, every figure has its definition, and the page reads on a phone',
  step(async () => {
    await open('?view=queues&range=24h&granularity=15min&tz=UTC');
    await noViewError('queues');
    const volume = await chartData('volume');
    for (const k of EXPECTED_BY_INTERVAL.keys()) assert.ok(volume.intervals!.includes(k), `interval ${k} is on the chart`);
    volume.intervals!.forEach((k, i) => {
      const e = EXPECTED_BY_INTERVAL.get(k) ?? { offered: 0, answered: 0, abandoned: 0 };
      assert.deepEqual(volume.datasets.map((d) => d.data[i]), [e.offered, e.answered, e.abandoned], `volume at ${k}`);
    });
    // A queue's line shown in the legend stays shown when the view loads again (as auto-refresh does).
    const slLabels = (await chartData('serviceLevel')).datasets.map((d) => d.label);
    assert.deepEqual(slLabels, ['All selected queues', 'billing', 'sales', 'support']);
    await page.evaluate(() => {
      const c = (globalThis as any).twinmartCharts.serviceLevel;
      c.setDatasetVisibility(2, true);
      c.update();
    });
    await page.selectOption('#tz', 'Europe/Berlin');
    await loaded();
    const visible = await page.evaluate(() => [0, 1, 2, 3].map((i) => (globalThis as any).twinmartCharts.serviceLevel.isDatasetVisible(i)));
    assert.deepEqual(visible, [true, false, true, false]);
    await page.goBack();
    await loaded();
    // The chart's numbers are also a table (for screen readers).
    assert.equal(await page.locator('#chart-volume-table tbody tr').count(), volume.labels.length);
    // Each figure carries its definition, reachable by keyboard.
    for (const key of ['offered', 'answered', 'abandoned', 'abandonedShort', 'serviceLevel', 'asa', 'abandonRate', 'aht']) {
      const tip = page.locator(`#queue-table thead .term[data-term="${key}"] .term__tip`);
      assert.ok(((await tip.textContent()) ?? '').length > 20, `${key} is defined`);
    }
    await page.focus('#queue-table thead .term[data-term="serviceLevel"]');
    assert.equal(await page.isVisible('#queue-table thead .term[data-term="serviceLevel"] .term__tip'), true, 'the definition shows on focus');
    await page.click('h2'); // blur
    await shot('queues');
    if (DOCS_IMG) await page.screenshot({ path: join(DOCS_IMG, 'dashboard.png') });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300); // charts resize on the next frames
    const narrow = await horizontalOverflow();
    assert.ok(narrow.px <= 0, `no horizontal overflow on a narrow screen: ${narrow.px} px, from ${narrow.culprits.join(', ')}`);
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.waitForTimeout(300);
    await shot('queues-wall');
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'drill from a queue interval to its calls and back; the export of the queue table has the API\'s and the mart\'s numbers',
  step(async () => {
    const view = `?view=queues&from=${iso(I0)}&to=${iso(I2 + MIN15)}&granularity=15min&tz=UTC`;
    await open(view);
    // Export: the download is the API's format=csv of the same view, named after it.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#queues-export a')]);
    const name = download.suggestedFilename();
    assert.match(name, /\.csv$/);
    const compact = (ms: number) => iso(ms).replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
    assert.equal(name, `queue-summary_${compact(I0)}_${compact(I2 + MIN15)}_15min.csv`, 'the file name carries the range and granularity');
    const csv = csvRecords(readFileSync(await download.path(), 'utf8'));
    const json = await apiJson(`/api/queue-summary?from=${iso(I0)}&to=${iso(I2 + MIN15)}&granularity=15min&tz=UTC`);
    const truth = await mart.query<{ queue: string; interval_start: Date; offered: number; answered: number; abandoned: number }>(
      `select queue, interval_start, offered, answered, abandoned from ag_queue_15min
        where interval_start >= $1 and interval_start < $2 order by interval_start, queue collate "C"`,
      [iso(I0), iso(I2 + MIN15)],
    );
    // A line per row, then the totals.
    assert.equal(csv.length, json.rows.length + 1);
    assert.equal(json.rows.length, truth.rows.length);
    const counts = ['offered', 'answered', 'abandoned'] as const;
    json.rows.forEach((j: any, i: number) => {
      const r = csv[i]!;
      const t = truth.rows[i]!;
      assert.equal(r.queue, j.queue);
      assert.equal(Date.parse(r.intervalStart!), Date.parse(j.intervalStart));
      assert.equal(Date.parse(j.intervalStart), t.interval_start.getTime());
      for (const k of counts) {
        assert.equal(Number(r[k]), j[k], `${k} of row ${i}: CSV vs JSON`);
        assert.equal(j[k], t[k], `${k} of row ${i}: JSON vs SQL`);
      }
      for (const k of ['serviceLevelPct', 'asaSeconds', 'ahtSeconds', 'abandonRatePct']) assert.equal(r[k] === '' ? null : Number(r[k]), j[k], `${k} of row ${i}`);
    });
    const total = csv[csv.length - 1]!;
    assert.equal(total.queue, 'Total');
    for (const k of counts) {
      const sum = truth.rows.reduce((a, t) => a + t[k], 0);
      assert.deepEqual([Number(total[k]), json.totals[k]], [sum, sum], `total ${k}: CSV, JSON and SQL`);
    }
    // The table on screen shows the same totals.
    const foot = (await page.locator('#queue-table tfoot td').allTextContents()).map((s) => s.trim());
    assert.deepEqual(foot.slice(0, 3), counts.map((k) => new Intl.NumberFormat('en-US').format(json.totals[k])));

    // Drill, by keyboard: the sales row of I0 opens the calls of that queue and interval, as a link.
    await page.focus(`#queue-table tr[data-queue="sales"][data-interval="${iso(I0)}"] a.drill`);
    await Promise.all([page.keyboard.press('Enter'), page.waitForURL(/view=interactions/)]);
    await loaded();
    const drill = await search();
    assert.deepEqual([drill.get('queue'), drill.get('from'), drill.get('to')], ['sales', iso(I0), iso(I1)]);
    await noViewError('interactions');
    const calls = await page.locator('#calls-table tbody tr[data-call-id]').evaluateAll((trs) => trs.map((tr: any) => tr.dataset.callId));
    const sql = await mart.query<{ call_id: string }>(`select call_id from interaction_fact where queue = 'sales' and start_ts >= $1 and start_ts < $2`, [iso(I0), iso(I1)]);
    assert.deepEqual([...calls].sort(), sql.rows.map((r) => r.call_id).sort());
    const row = (await page.locator(`#calls-table tr[data-call-id="${CALL_ID}"] td`).allTextContents()).map((s) => s.trim());
    assert.deepEqual([row[3], row[4], row[5], row[6]], ['answered', '0:12', '2:48', 'agent-007']);
    assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement.id), 'interactions-title', 'the focus moves to the new view');
    assert.match((await page.textContent('#view-status'))!, /^Calls of sales .* shown, \d+ rows?\.$/, 'a screen reader hears of the new view');
    await shot('interactions-drill');
    // A call of the list opens its events, a link too.
    await page.click(`#calls-table tr[data-call-id="${CALL_ID}"] a[href*="callId"]`);
    await loaded();
    const events = await page.locator(`.call[data-call-id="${CALL_ID}"] .timeline__item`).evaluateAll((els) => els.map((e: any) => e.dataset.event));
    assert.deepEqual(events, CALL_EVENTS.map((e) => e.event), 'the usable events in order, the discarded one left out');
    await page.goBack();
    await loaded();
    // Back: the queue view as it was.
    await page.goBack();
    await loaded();
    assert.equal((await search()).toString(), new URLSearchParams(view).toString());
    assert.equal(await page.isVisible('#view-queues'), true);
    assert.equal(await page.locator('#queue-table tbody tr').count(), QUEUE_ROWS.filter((r) => r.interval >= I0 && r.interval <= I2).length);

    // The lookup by caller number is a link too (ani in the URL), and finds the call.
    await page.click('.section-nav a[data-view="interactions"]');
    await loaded();
    await page.fill('#lookup-input', ANI);
    await page.press('#lookup-input', 'Enter');
    await loaded();
    assert.equal((await search()).get('ani'), ANI);
    assert.deepEqual(await page.locator('.call').evaluateAll((els) => els.map((e: any) => e.dataset.callId)), [CALL_ID]);
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'dimensions: a filter per configured key offers the values of the range, group by adds a column, both are in the link and the export, and a grouped row drills to its calls',
  step(async () => {
    const from = iso(base);
    const to = iso(base + INTERVALS * MIN15);
    const view = `?view=queues&from=${from}&to=${to}&granularity=day&tz=UTC`;
    await open(view);
    await noViewError('queues');
    // A menu per configured key, listing the values the range's calls have.
    assert.deepEqual(await page.locator('#dimension-filters .field__label').allTextContents(), DIMENSIONS);
    await page.click('#dim-filter-0 summary');
    const offered = await page.locator('#dim-filter-0 input').evaluateAll((inputs) => inputs.map((i: any) => i.value));
    const values = await mart.query<{ v: string }>(
      `select distinct dims ->> 'segment' as v from interaction_fact where start_ts >= $1 and start_ts < $2 and dims ? 'segment' order by 1`,
      [from, to],
    );
    assert.deepEqual(offered, values.rows.map((r) => r.v));
    await page.click('#dim-filter-0 summary');

    /** The grouped table as on screen, and as SQL counts the facts: per queue, day and segment. */
    const table = () => page.locator('#queue-table tbody tr').evaluateAll((trs) =>
      trs.map((tr: any) => [tr.dataset.queue, tr.dataset.interval, tr.dataset.dimension, tr.children[3].textContent.trim()].join(' ')));
    const sql = async (language: string | null) => (await mart.query<{ line: string }>(
      `select concat_ws(' ', queue, to_char(date_trunc('day', start_ts, 'UTC') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"'),
                        coalesce(dims ->> 'segment', '(none)'), count(*)) as line
         from interaction_fact where start_ts >= $1 and start_ts < $2 and ($3::text is null or dims ->> 'language' = $3)
        group by queue, date_trunc('day', start_ts, 'UTC'), dims ->> 'segment'
        order by date_trunc('day', start_ts, 'UTC'), queue collate "C", (dims ->> 'segment') collate "C" nulls first`,
      [from, to, language],
    )).rows.map((r) => r.line);

    await page.selectOption('#group-by', 'segment');
    await loaded();
    await noViewError('queues');
    assert.equal((await search()).get('groupBy'), 'segment');
    assert.equal((await page.locator('#queue-table thead th').nth(2).textContent())!.trim(), 'segment');
    assert.deepEqual(await table(), await sql(null));
    // Calls without the key: a row of their own, with no drill (the API cannot filter by a missing value).
    const none = page.locator('#queue-table tbody tr[data-dimension="(none)"]');
    assert.equal(await none.count(), 1);
    assert.equal(await none.locator('a').count(), 0);

    // A filter: applied, it is the link's, and the table and totals follow.
    await page.click('#dim-filter-1 summary');
    await page.check('#dim-filter-1 input[value="de"]');
    await page.click('#apply');
    await loaded();
    await noViewError('queues');
    assert.deepEqual((await search()).getAll('dim.language'), ['de']);
    assert.equal(await page.textContent('#dim-filter-1-summary'), 'de');
    const german = await sql('de');
    assert.ok(german.length > 0);
    assert.deepEqual(await table(), german);
    const count = await mart.query<{ n: number }>(
      `select count(*)::integer as n from interaction_fact where start_ts >= $1 and start_ts < $2 and dims ->> 'language' = 'de'`, [from, to]);
    assert.equal((await page.locator('#queue-table tfoot td').first().textContent())!.trim(), String(count.rows[0]!.n));
    await shot('queues-by-dimension');
    // A reload keeps both; the export is the same view.
    await page.reload();
    await loaded();
    assert.equal(await page.inputValue('#group-by'), 'segment');
    assert.deepEqual(await table(), german);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#queues-export a')]);
    assert.match(download.suggestedFilename(), /language-de/);
    const csv = csvRecords(readFileSync(await download.path(), 'utf8'));
    assert.deepEqual(csv.slice(0, -1).map((r) => [r.queue, r.intervalStart, r['dim.segment'] || '(none)', r.offered].join(' ')), german);

    // Drill from a grouped row: the calls of that queue, day and segment, in German.
    const row = page.locator('#queue-table tbody tr[data-dimension]:not([data-dimension="(none)"])').first();
    const [queue, segment] = [await row.getAttribute('data-queue'), await row.getAttribute('data-dimension')];
    await Promise.all([row.locator('a.drill').click(), page.waitForURL(/view=interactions/)]);
    await loaded();
    await noViewError('interactions');
    const drill = await search();
    assert.deepEqual([drill.get('queue'), drill.get('dim.segment'), drill.get('dim.language')], [queue, segment, 'de']);
    const calls = await page.locator('#calls-table tbody tr[data-call-id]').evaluateAll((trs) => trs.map((tr: any) => tr.dataset.callId));
    const want = await mart.query<{ call_id: string }>(
      `select call_id from interaction_fact where queue = $1 and start_ts >= $2 and start_ts < $3 and dims @> $4::jsonb`,
      [queue, drill.get('from'), drill.get('to'), { segment, language: 'de' }],
    );
    assert.ok(want.rows.length > 0);
    assert.deepEqual([...calls].sort(), want.rows.map((r) => r.call_id).sort());
    assert.match((await page.locator('#calls-table tbody tr[data-call-id] td').last().textContent())!, new RegExp(`segment ${segment} · language de`));
    await page.goBack();
    await loaded();
    assert.equal((await search()).get('groupBy'), 'segment');
    // Group by none: the plain report again.
    await page.selectOption('#group-by', '');
    await loaded();
    assert.equal((await search()).get('groupBy'), null);
    assert.equal((await page.locator('#queue-table thead th').nth(2).textContent())!.trim().startsWith('Offered'), true);
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'agents: a row opens the agent\'s state timeline for the range, a link of its own',
  step(async () => {
    await open(`?view=agents&from=${iso(I0)}&to=${iso(I2 + MIN15)}&granularity=hour&tz=UTC`);
    await noViewError('agents');
    const agents = await chartData('agentStates');
    assert.ok(agents.labels.includes('agent-007'));
    // Agent-007's rows: a cell per heading, and its states summed over the buckets as inserted.
    const headings = await page.locator('#agent-table thead th').count();
    const rows007 = await page.locator('#agent-table tbody tr[data-agent="agent-007"]').evaluateAll((trs) => trs.map((tr: any) => [...tr.children].map((td: any) => td.textContent.trim())));
    for (const r of rows007) assert.equal(r.length, headings, `a cell per heading: ${JSON.stringify(r)}`);
    const seconds = (t: string) => t.split(':').reduce((a, p) => a * 60 + Number(p), 0);
    const readyColumn = 6; // agent, interval, calls, talk, AHT, occupancy, then the states from ready
    assert.equal(rows007.reduce((a, r) => a + seconds(r[readyColumn]!), 0), AGENT_SPANS.filter((x) => x.agent === 'agent-007' && x.state === 'ready').reduce((a, x) => a + x.seconds, 0));
    // The totals row: the calls answered in the range, as the mart holds them.
    const calls = await mart.query<{ n: string }>(`select count(*) as n from interaction_fact where answer_ts >= $1 and answer_ts < $2`, [iso(I0), iso(I2 + MIN15)]);
    assert.equal((await page.locator('#agent-table tfoot td').first().textContent())!.trim(), String(Number(calls.rows[0]!.n)));
    // The export: the API's CSV of this view, a line per row of its JSON, then the totals.
    const range = `from=${iso(I0)}&to=${iso(I2 + MIN15)}&tz=UTC`;
    const hourly = await apiJson(`/api/agent-summary?${range}&granularity=hour`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#agents-export a')]);
    assert.match(download.suggestedFilename(), /^agent-summary_.*_hour\.csv$/);
    const csv = csvRecords(readFileSync(await download.path(), 'utf8'));
    const cut = (r: any) => [r.agentId, Date.parse(r.intervalStart) || '', Number(r.callsHandled), Number(r.talkSeconds), Number(r['stateSeconds.ready'])];
    assert.deepEqual(csv.map(cut), [...hourly.rows, { ...hourly.totals, agentId: 'Total', intervalStart: '' }].map((r: any) =>
      cut({ ...r, 'stateSeconds.ready': r.stateSeconds.ready })));
    // Month buckets: a row per agent and month, the same totals as per hour.
    const hourTotals = await page.locator('#agent-table tfoot td').allTextContents();
    await page.selectOption('#granularity', 'month');
    await loaded();
    await noViewError('agents');
    const monthly = await apiJson(`/api/agent-summary?${range}&granularity=month`);
    assert.deepEqual(
      await page.locator('#agent-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => tr.dataset.agent + ' ' + tr.dataset.interval)),
      monthly.rows.map((r: any) => r.agentId + ' ' + r.intervalStart),
    );
    // (Unless this run's range straddles the start of a month in UTC.)
    if (iso(I0).slice(0, 7) === iso(I2 + MIN15 - 1).slice(0, 7)) {
      assert.equal(new Set(monthly.rows.map((r: any) => r.agentId)).size, monthly.rows.length, 'a row per agent');
    }
    assert.deepEqual(await page.locator('#agent-table tfoot td').allTextContents(), hourTotals);
    await page.goBack();
    await loaded();
    await shot('agents');
    await Promise.all([page.locator('#agent-table tr[data-agent="agent-007"] a.drill').first().click(), page.waitForURL(/view=agent-states/)]);
    await loaded();
    await noViewError('agent-states');
    assert.equal((await search()).get('agent'), 'agent-007');
    const states = await page.locator('#agent-states-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => tr.dataset.state));
    assert.deepEqual(states, AGENT_SPANS.filter((s) => s.agent === 'agent-007').map((s) => s.state));
    assert.equal(await page.locator('.state-bar__span').count(), states.length);
    await shot('agent-timeline');
    await page.setViewportSize({ width: 390, height: 844 });
    const narrow = await horizontalOverflow();
    assert.ok(narrow.px <= 0, `no horizontal overflow of the timeline on a narrow screen: ${narrow.px} px, from ${narrow.culprits.join(', ')}`);
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goBack();
    await loaded();
    assert.equal((await search()).get('view'), 'agents');
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'a DST day in Europe/Berlin (25 hours): the day view shows one bucket whose totals equal the sum of its 15-minute rows',
  step(async () => {
    const range = `from=${DST_FROM}&to=${DST_TO}&tz=Europe%2FBerlin&queue=${DST_QUEUE}`;
    await open(`?view=queues&${range}&granularity=day`);
    await noViewError('queues');
    const day = await page.locator('#queue-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => [...tr.children].map((td: any) => td.textContent.trim())));
    assert.equal(day.length, 1, 'one day bucket');
    await page.selectOption('#granularity', '15min');
    await loaded();
    const quarters = await page.locator('#queue-table tbody tr').evaluateAll((trs) => trs.map((tr: any) => [...tr.children].slice(2, 5).map((td: any) => Number(td.textContent.replace(/,/g, '')))));
    assert.equal(quarters.length, 100, 'a 25-hour day has 100 quarter-hours');
    // The day's row holds the sums of its 15-minute rows.
    const sums = [0, 1, 2].map((c) => quarters.reduce((a, r) => a + r[c]!, 0));
    assert.deepEqual(day[0]!.slice(2, 5).map((s) => Number(s.replace(/,/g, ''))), sums);
    const expected = DST_ROWS.filter((r) => r.interval >= Date.parse(DST_FROM) && r.interval < Date.parse(DST_TO)).reduce((a, r) => a + r.offered, 0);
    assert.equal(day[0]![2], new Intl.NumberFormat('en-US').format(expected));
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'relative ranges resolve on the wall clock of the chosen zone: today on DST days has 25 and 23 hours, a week starts on Monday',
  step(async () => {
    // The page's own module (lib/range.js), run in the page as the dashboard runs it (a
    // string, so the test's compiler does not turn import() into require()).
    await open('?view=ops&range=24h&granularity=15min&tz=UTC');
    const got = await page.evaluate(`(async () => {
      const r = await import('/static/lib/range.js');
      const iso = (x) => [new Date(x.from).toISOString(), new Date(x.to).toISOString()];
      return {
        fallBack: iso(r.resolveRelative('today', 'Europe/Berlin', Date.parse('2026-10-25T12:00:00Z'))),
        springForward: iso(r.resolveRelative('today', 'Europe/Berlin', Date.parse('2026-03-29T12:00:00Z'))),
        yesterdayNewYork: iso(r.resolveRelative('yesterday', 'America/New_York', Date.parse('2026-11-02T03:00:00Z'))),
        weekKolkata: iso(r.resolveRelative('week', 'Asia/Kolkata', Date.parse('2026-12-07T12:00:00Z'))),
        dayAfter: new Date(r.bucketEnd(Date.parse('2026-10-24T22:00:00Z'), 'day', 'Europe/Berlin')).toISOString(),
        gap: new Date(r.fromZonedInput('2026-03-29T02:30', 'Europe/Berlin')).toISOString(),
      };
    })()`);
    assert.deepEqual(got, {
      fallBack: [DST_FROM, DST_TO],
      springForward: ['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'],
      yesterdayNewYork: ['2026-10-31T04:00:00.000Z', '2026-11-01T04:00:00.000Z'],
      weekKolkata: ['2026-12-06T18:30:00.000Z', '2026-12-13T18:30:00.000Z'],
      dayAfter: DST_TO,
      // 02:30 does not exist that night: the time moves forward to 03:30 CEST.
      gap: '2026-03-29T01:30:00.000Z',
    });
  }),
);

test(
  'operations view and dark theme; auto-refresh is a setting of the link and pauses while the tab is hidden',
  step(async () => {
    await open('?view=ops&range=24h&granularity=15min&tz=UTC');
    await page.waitForSelector('body[data-ops-loaded]');
    assert.equal(await page.textContent('#dr-phase'), 'normal');
    assert.equal(await page.locator('#dr-body .steps li').count(), 10);
    assert.match((await page.textContent('.etl-site[data-site="dc1"]'))!, /running/);
    assert.match((await page.textContent('.etl-site[data-site="dc2"]'))!, /not running/);
    assert.equal(await page.locator('.etl-site[data-site="dc1"] tr[data-state="ok"] [data-freshness] .badge--ok').count(), 2, 'both members read a second ago');
    const lag = await page.locator('.etl-site[data-site="dc1"] tr[data-member="idb-voice-1-dc2"] td').allTextContents();
    assert.deepEqual([lag[2]!.trim(), lag[3]!.trim()], ['42', '7.0 s'], 'rows behind and cursor age from the mart');
    const cycles = page.locator('.etl-site[data-site="dc1"] [data-etl-cycles] tbody tr');
    assert.equal(await cycles.count(), 2, 'the last cycles, newest first');
    assert.deepEqual((await cycles.first().locator('td').allTextContents()).slice(2), ['6', '2']);
    await shot('ops');
    await page.setViewportSize({ width: 390, height: 844 });
    const narrow = await horizontalOverflow();
    assert.ok(narrow.px <= 0, `no horizontal overflow of the operations view on a narrow screen: ${narrow.px} px, from ${narrow.culprits.join(', ')}`);
    await page.setViewportSize({ width: 1280, height: 900 });

    await page.selectOption('#theme', 'dark');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    await open('?view=queues&range=24h&granularity=15min&tz=UTC');
    const bg = await page.evaluate(() => (globalThis as any).getComputedStyle((globalThis as any).document.body).backgroundColor);
    assert.equal(bg, 'rgb(11, 17, 32)', 'the theme choice survives a new view');
    await shot('dark');
    await page.selectOption('#theme', 'light');

    await page.selectOption('#refresh', '10s');
    await loaded();
    assert.equal((await search()).get('refresh'), '10s');
    assert.equal(await page.getAttribute('body', 'data-refreshing'), 'true');
    await page.evaluate(() => {
      const d = (globalThis as any).document;
      Object.defineProperty(d, 'hidden', { configurable: true, get: () => true });
      d.dispatchEvent(new Event('visibilitychange'));
    });
    assert.equal(await page.getAttribute('body', 'data-refreshing'), 'false', 'paused while hidden');
    await page.evaluate(() => {
      const d = (globalThis as any).document;
      Object.defineProperty(d, 'hidden', { configurable: true, get: () => false });
      d.dispatchEvent(new Event('visibilitychange'));
    });
    assert.equal(await page.getAttribute('body', 'data-refreshing'), 'true', 'running again when shown');
    await page.selectOption('#refresh', 'off');
    assert.deepEqual(pageErrors, []);
  }),
);

test(
  'standby site: the notice links to the active site\'s dashboard with the same view; operations still work',
  step(async () => {
    await setReportingRole(mart, 'standby', 'dc2');
    try {
      const view = '?view=queues&range=today&granularity=hour&tz=UTC';
      await page.goto(`${baseUrl}/${view}`);
      await page.waitForSelector('#standby-notice:not([hidden])', { timeout: 20_000 });
      assert.equal(await page.getAttribute('#role-badge', 'data-role'), 'standby');
      assert.match((await page.textContent('#standby-notice'))!, /standby: reports are served by dc2/);
      assert.equal(await page.getAttribute('#standby-link', 'href'), `http://127.0.0.1:8402/${view}`);
      assert.equal(await page.isDisabled('#granularity'), true);
      assert.match((await page.textContent('#queues-error'))!, /standby: reports are served by dc2/);
      await shot('standby');
      await page.click('.section-nav a[data-view="ops"]');
      await page.waitForSelector('body[data-ops-loaded]');
      assert.equal(await page.textContent('#dr-phase'), 'normal');
      assert.deepEqual(pageErrors, []);
    } finally {
      await setReportingRole(mart, 'active', SITE);
    }
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
      // A link to a view, opened signed out: the sign-in comes first, then that view.
      const view = '?view=agents&range=24h&granularity=hour&tz=UTC';
      await signIn.goto(`${guardedUrl}/${view}`);
      await signIn.waitForURL(`${guardedUrl}/static/login.html?next=${encodeURIComponent(view)}`, { timeout: 20_000 });
      await signIn.fill('#login-user', 'ann');
      await signIn.fill('#login-password', 'not-her-password');
      await signIn.click('#login-submit');
      await signIn.waitForSelector('#login-error:not([hidden])', { timeout: 10_000 });
      assert.match((await signIn.textContent('#login-error'))!, /wrong user or password/);
      await signIn.fill('#login-password', 'ann-password');
      await signIn.click('#login-submit');
      await signIn.waitForURL(`${guardedUrl}/${view}`, { timeout: 10_000 });
      await signIn.waitForFunction(() => (globalThis as any).document.body.dataset.loaded === (globalThis as any).location.search, undefined, { timeout: 20_000 });
      assert.equal(await signIn.textContent('#site-name'), SITE);
      assert.equal(await signIn.isVisible('#agents-error'), false, `agent error: ${await signIn.textContent('#agents-error')}`);
      const [cookie] = await context.cookies(guardedUrl);
      assert.deepEqual([cookie?.name, cookie?.httpOnly, cookie?.sameSite], ['twinmart_session', true, 'Strict']);
            assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await guarded.close();
    }
  }),
);
