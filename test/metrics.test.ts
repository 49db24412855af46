/**
 * Metrics and logs of a running world (docs/operations.md): the workers' and reporting
 * services' /metrics show what the test caused (rows it wrote, a member it stopped, the
 * DR phase, which site serves reports), `promtool check metrics` passes on what they
 * serve, the workers log JSON lines that carry the site, the workflow and the member, and
 * the dashboard's operations view shows the same in a real browser.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger, prettyLine } from '../src/logger';
import { runSim } from '../src/sim';
import { startInstance, stopInstance } from '../src/dev/postgres';
import { configFile } from '../src/dev/world';
import { repoRoot } from '../src/paths';
import { openWorld, settled, waitFor, type TestWorld } from './helpers/world';
import { ensureDebianPackage } from './helpers/apt';
import { fullCopyBytes } from './helpers/pg';
import { openDashboardBrowser } from './helpers/browser';

const LAYOUT = {
  'sw-voice-1': [
    { site: 'dc1', db: 'idb_voice_1', instance: 'v1-dc1' },
    { site: 'dc2', db: 'idb_voice_1', instance: 'v1-dc2' },
  ],
};

let w: TestWorld;
before(async () => {
  w = await openWorld('metrics', { layout: LAYOUT });
});
after(() => w?.close());

/** `name{labels}` → value, from the exposition text, with the labels in name order (as the test writes them). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(line.slice(0, i))!;
    const labels = (m[2] ?? '').match(/[a-zA-Z_]+="(?:[^"\\]|\\.)*"/g) ?? [];
    out.set(labels.length ? `${m[1]}{${labels.sort().join(',')}}` : m[1]!, Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(port: number): Promise<{ text: string; values: Map<string, number> }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, values: samples(text) };
}

const workerPort = (site: string) => w.config.sites[site]!.metricsPort!;
const reportingPort = (site: string) => w.config.sites[site]!.reportingPort;

test('a worker counts the rows it loaded and tells which member it cannot reach', async () => {
  await runSim(w.config, { calls: 200, rate: 50, seed: 5, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
  await waitFor('both sites settled', async () => (await settled(w, 'dc1')) && settled(w, 'dc2'), 60_000);
  const written = Number((await w.db('v1-dc1', 'idb_voice_1').query('select count(*) from idb.call_event')).rows[0].count);
  const dc1 = await waitFor('the status query answered in a scrape', async () => {
    const s = await scrape(workerPort('dc1'));
    return s.values.get('twinmart_etl_workflow_up{site="dc1"}') === 1 && s;
  }, 20_000);
  // idb-voice-1-dc1 is the set's best member: every mart reads it in full.
  assert.equal(dc1.values.get('twinmart_member_rows_extracted_total{member="idb-voice-1-dc1",site="dc1",table="call_event"}'), written);
  assert.equal(dc1.values.get('twinmart_member_state{member="idb-voice-1-dc1",site="dc1",state="ok"}'), 1);
  assert.equal(dc1.values.get('twinmart_member_state{member="idb-voice-1-dc1",site="dc1",state="unreachable"}'), 0);
  assert.equal(dc1.values.get('twinmart_mart_up{site="dc1"}'), 1);
  const facts = Number((await w.mart('dc1').query('select count(*) from interaction_fact')).rows[0].count);
  assert.ok(dc1.values.get('twinmart_facts_written_total{site="dc1"}')! >= facts, 'every fact the mart holds was written and counted');
  assert.ok(dc1.values.get('twinmart_cycle_duration_seconds_count{site="dc1"}')! > 0);
  assert.ok(dc1.values.get('twinmart_transform_duration_seconds_count{site="dc1"}')! > 0);
  assert.ok(dc1.values.get('twinmart_member_cursor_age_seconds{member="idb-voice-1-dc2",site="dc1"}')! < 30);
  assert.equal(dc1.values.get('twinmart_data_gaps_open{site="dc1",source="sw-voice-1"}'), 0);
  assert.ok([...dc1.values.keys()].some((k) => k.startsWith('temporal_')), "the SDK runtime's own metrics are there too");
  // Each worker read every member's events in full once: at least one COPY of all its rows
  // (more COPYs add 21 bytes of header and trailer each), counted as local where the
  // member is at the worker's site and remote (the WAN) elsewhere, one series per member.
  for (const site of ['dc1', 'dc2']) {
    const values = (await scrape(workerPort(site))).values;
    for (const m of w.config.members) {
      const full = await fullCopyBytes(m.collectorUrl!);
      const series = (locality: string) => `twinmart_member_bytes_read_total{locality="${locality}",member="${m.id}",site="${site}"}`;
      const [own, other] = m.site === site ? ['local', 'remote'] : ['remote', 'local'];
      const bytes = values.get(series(own))!;
      assert.ok(bytes >= full && bytes < full * 1.2, `${site} read ${bytes} bytes from ${m.id} (${own}); one full copy is ${full}`);
      assert.equal(values.get(series(other)), undefined, `${site}: no ${other} series for ${m.id}`);
    }
  }

  await stopInstance(w.state.pg['v1-dc2']!, 'immediate');
  try {
    await waitFor('idb-voice-1-dc2 unreachable in dc1\'s metrics', async () => {
      const v = (await scrape(workerPort('dc1'))).values;
      return v.get('twinmart_member_state{member="idb-voice-1-dc2",site="dc1",state="unreachable"}') === 1;
    }, 30_000);
    // The worker's log says so too: a JSON line from the extraction activity with the
    // workflow's and the member's ids (the SDK holds its lines up to 100 ms to sort them).
    const log = () => readFileSync(join(w.state.root, 'logs', 'worker-dc1.log'), 'utf8').split('\n').filter(Boolean);
    const records = () => log().map((l) => JSON.parse(l) as Record<string, unknown>);
    const miss = await waitFor('the unreachable member in the log', async () =>
      records().find((r) => r.msg === 'member not extracted' && r.member === 'idb-voice-1-dc2'), 10_000).catch((e: Error) => {
      throw new Error(`${e.message}:\n${log().slice(-15).join('\n')}`);
    });
    assert.ok(records().every((r) => typeof r.time === 'string' && typeof r.level === 'number' && typeof r.msg === 'string' && r.site === 'dc1'), 'every line is a JSON record of dc1');
    assert.equal(miss.workflowId, 'twinmart-etl-dc1');
    assert.match(String(miss.activityType), /^extract(Member|AndTransform)$/);
  } finally {
    await startInstance(w.state.pg['v1-dc2']!);
  }
  await waitFor('idb-voice-1-dc2 ok again', async () => (await scrape(workerPort('dc1'))).values.get('twinmart_member_state{member="idb-voice-1-dc2",site="dc1",state="ok"}') === 1, 30_000);
});

test('a reporting service shows the DR phase and where reports are served, and counts its requests by route', async () => {
  await fetch(`http://127.0.0.1:${reportingPort('dc1')}/no/such/page?x=1`);
  const dc1 = await waitFor('the DR status in a scrape', async () => {
    const s = await scrape(reportingPort('dc1'));
    return s.values.get('twinmart_dr_workflow_up{site="dc1"}') === 1 && s;
  }, 20_000);
  assert.equal(dc1.values.get('twinmart_reporting_active{site="dc1"}'), 1);
  assert.equal(dc1.values.get('twinmart_dr_phase{phase="normal",site="dc1"}'), 1);
  assert.equal(dc1.values.get('twinmart_dr_phase{phase="degraded",site="dc1"}'), 0);
  assert.equal(dc1.values.get('twinmart_dr_site_state{dr_site="dc2",site="dc1",state="active"}'), 1);
  assert.equal(dc1.values.get('twinmart_dr_suspected_sites{site="dc1"}'), 0);
  assert.equal(dc1.values.get('twinmart_dr_pending_confirmations{site="dc1"}'), 0);
  assert.equal(dc1.values.get('twinmart_http_requests_total{code="404",route="other",site="dc1"}'), 1, 'an unknown path counts as other, not by its path');
  const dc2 = (await scrape(reportingPort('dc2'))).values;
  assert.equal(dc2.get('twinmart_reporting_active{site="dc2"}'), 0);
  assert.equal(dc2.get('twinmart_dr_reporting_site{dr_site="dc1",site="dc2"}'), 1);
  const post = await fetch(`http://127.0.0.1:${workerPort('dc1')}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal((await fetch(`http://127.0.0.1:${workerPort('dc1')}/`)).status, 404);
});

test('the dashboard operations view shows the running workflows as they are: a member stopped turns unreachable and back by itself, the DR phase, the last cycles', async () => {
  const base = `http://127.0.0.1:${reportingPort('dc1')}`;
  const { browser, page, pageErrors } = await openDashboardBrowser(base);
  const member = (state: string) => `.etl-site[data-site="dc1"] tr[data-member="idb-voice-1-dc2"][data-state="${state}"]`;
  try {
    await page.goto(`${base}/?view=ops`);
    await page.waitForSelector(member('ok'), { timeout: 20_000 });
    await stopInstance(w.state.pg['v1-dc2']!, 'immediate');
    try {
      // No reload: the view refreshes itself every 5 s from the workflows' status queries.
      await page.waitForSelector(member('unreachable'), { timeout: 30_000 });
      assert.match((await page.textContent(member('unreachable')))!, /ECONNREFUSED/, 'the error the worker saw');
    } finally {
      await startInstance(w.state.pg['v1-dc2']!);
    }
    await page.waitForSelector(member('ok'), { timeout: 30_000 });
    assert.equal(await page.textContent('#dr-phase'), 'normal');
    for (const site of ['dc1', 'dc2']) assert.match((await page.textContent(`.etl-site[data-site="${site}"] .etl-site__head`))!, /running/);
    assert.ok((await page.locator('.etl-site[data-site="dc1"] [data-etl-cycles] tbody tr').count()) > 0, 'the last cycles');
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
  }
});

test('promtool check metrics passes on what the workers and reporting services serve', async () => {
  const promtool = ensureDebianPackage('/usr/bin/promtool', 'prometheus', { recommends: false });
  for (const port of [workerPort('dc1'), workerPort('dc2'), reportingPort('dc1'), reportingPort('dc2')]) {
    const { text } = await scrape(port);
    const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool on :${port}: ${r.stdout}${r.stderr}`);
  }
});

test('every metric the alert rules and the Grafana dashboard use is served', async () => {
  const served = new Set<string>(['up']);
  for (const port of [workerPort('dc1'), reportingPort('dc1')]) {
    for (const m of (await scrape(port)).text.matchAll(/^# TYPE (\S+)/gm)) served.add(m[1]!);
  }
  const used = (text: string) => new Set([...text.matchAll(/\b((?:twinmart|temporal)_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, '')));
  const missing = (file: string) => [...used(readFileSync(join(repoRoot, 'deploy', ...file.split('/')), 'utf8'))].filter((n) => !served.has(n));
  assert.deepEqual(missing('prometheus/alerts.yml'), []);
  assert.deepEqual(missing('grafana/twinmart.json'), []);
});

test('LOG_LEVEL is checked, and a terminal gets one line per record', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), 'worker', '--site', 'dc1', '--config', configFile(w.state)], {
    env: { ...process.env, LOG_LEVEL: 'loud' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /LOG_LEVEL must be one of trace, debug, info, warn, error, got "loud"/);
  const line = prettyLine(JSON.stringify({ time: '2026-12-01T00:00:00.000Z', level: 40, name: 'worker', pid: 1, site: 'dc1', msg: 'member not extracted', member: 'm' }));
  assert.equal(line, '2026-12-01T00:00:00.000Z WARN  [worker] member not extracted {"site":"dc1","member":"m"}');
  const out = spawnSync(process.execPath, ['-e', "require('./dist/src/logger').createLogger('t', 'info', { site: 'dc9' }).info('hello', { n: 1 })"], {
    cwd: repoRoot,
    env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: '' },
    encoding: 'utf8',
  });
  const record = JSON.parse(out.stderr.trim()) as Record<string, unknown>;
  assert.deepEqual([record.level, record.name, record.site, record.msg, record.n], [30, 't', 'dc9', 'hello', 1]);
});
