/**
 * The queue figures as supervisors read them, end to end on real PostgreSQL: calls are
 * staged as events, the real transform builds the facts and ag_queue_15min, and the
 * reporting service answers. Expected figures are worked out here from the calls listed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { configFingerprint } from '../src/config/fingerprint';
import { differingKeys } from '../src/config/match';
import { transformSite } from '../src/etl/transform';
import { get, openReportWorld, reportConfig, type ReportWorld } from './helpers/report-world';

const DAY = '2026-03-02';
const at = (hhmmss: string): string => `${DAY}T${hhmmss}Z`;

interface Call {
  n: number;
  queue: string;
  /** [event, hh:mm:ss] after `created`/`queued` at `start`. */
  start: string;
  then: [string, string][];
}

const call = (n: number, queue: string, start: string, ...then: [string, string][]): Call => ({ n, queue, start, then });
const callId = (n: number): string => `f0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** One 15-minute interval, 10:00, of each queue; the threshold is 20 s, 60 s for vip, short abandons under 5 s. */
const CALLS: Call[] = [
  // waiting: one answered in 5 s, two still in queue.
  call(1, 'waiting', '10:00:00', ['established', '10:00:05'], ['released', '10:01:00']),
  call(2, 'waiting', '10:01:00'),
  call(3, 'waiting', '10:02:00'),
  // sales: answered after 10, 15 (in SL) and 40 s; abandoned after 3 (short), 30 and 12 s (in SL); one still waiting.
  call(11, 'sales', '10:00:00', ['established', '10:00:10'], ['released', '10:02:00']),
  call(12, 'sales', '10:01:00', ['established', '10:01:15'], ['released', '10:03:00']),
  call(13, 'sales', '10:02:00', ['established', '10:02:40'], ['released', '10:04:00']),
  call(14, 'sales', '10:03:00', ['abandoned', '10:03:03']),
  call(15, 'sales', '10:04:00', ['abandoned', '10:04:30']),
  call(16, 'sales', '10:05:00', ['abandoned', '10:05:12']),
  call(17, 'sales', '10:06:00'),
  // vip: answered after 45 s, within its own 60 s threshold.
  call(21, 'vip', '10:00:00', ['established', '10:00:45'], ['released', '10:01:45']),
];

const ETL = { serviceLevelSeconds: 20, queueServiceLevelSeconds: { vip: 60 }, shortAbandonSeconds: 5 };

let world: ReportWorld;
let port: number;
let ok = 0;

async function stage(calls: Call[]): Promise<void> {
  const rows = calls.flatMap((c) => [
    ['created', c.start],
    ['queued', c.start],
    ...c.then,
  ].map(([event, time], i) => ({ callId: callId(c.n), seq: i + 1, event, ts: at(time!), queue: c.queue, agent: event === 'established' || event === 'released' ? 'a1' : null })));
  await world.mart.query(
    `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id,
                                 attrs, member_id, quality)
     select (e->>'callId')::uuid, (e->>'seq')::integer, 'sw-voice-1', e->>'event', (e->>'ts')::timestamptz, 'voice', 'inbound',
            null, null, e->>'queue', e->>'agent', '{}', 'idb-voice-1-dc1', 1
       from jsonb_array_elements($1::jsonb) as e`,
    [JSON.stringify(rows)],
  );
  await world.mart.query('insert into etl_dirty_call select distinct call_id from stg_call_event on conflict do nothing');
}

before(async () => {
  world = await openReportWorld('figures');
  await stage(CALLS);
  const config = reportConfig(world.url, ETL);
  await transformSite(world.mart, { batch: 1000, queueRules: config.etl, maxCallSeconds: 86_400, dimensions: config.etl.dimensions });
  port = await world.serve(config);
});

after(async () => world?.close(ok === TESTS));
const TESTS = 5;

async function queueRow(queue: string, p = port) {
  const r = await get(p, `/api/queue-summary?from=${at('10:00:00')}&to=${at('10:15:00')}&queue=${queue}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.rows.length, 1, r.text);
  return r.body.rows[0];
}

test('a call still waiting is not yet answered late: it lowers neither the service level nor counts as answered', async () => {
  const row = await queueRow('waiting');
  assert.equal(row.offered, 3);
  assert.equal(row.answered, 1);
  assert.equal(row.answeredInSl, 1);
  assert.equal(row.serviceLevelPct, 100, 'two calls still in queue are neither in nor out of the service level');
  ok += 1;
});

test('short abandons count against neither the service level nor the abandon rate; ASA is the wait of answered calls', async () => {
  const row = await queueRow('sales');
  assert.deepEqual(
    { offered: row.offered, answered: row.answered, abandoned: row.abandoned, abandonedShort: row.abandonedShort, answeredInSl: row.answeredInSl },
    { offered: 7, answered: 3, abandoned: 3, abandonedShort: 1, answeredInSl: 2 },
  );
  assert.equal(row.serviceLevelPct, (100 * 2) / (3 + 3 - 1), 'answered in SL / (answered + abandoned - short)');
  assert.equal(row.abandonRatePct, (100 * (3 - 1)) / (7 - 1), '(abandoned - short) / (offered - short)');
  assert.equal(row.asaSeconds, (10 + 15 + 40) / 3);
  const { rows } = await world.mart.query(`select abandoned_in_sl from ag_queue_15min where queue = 'sales'`);
  assert.deepEqual(rows, [{ abandoned_in_sl: 1 }], 'the 12 s abandon: within the threshold, not short');
  ok += 1;
});

test('a queue with its own threshold counts service level against it', async () => {
  const row = await queueRow('vip');
  assert.equal(row.answeredInSl, 1, 'answered after 45 s: within vip\'s 60 s, not the default 20 s');
  assert.equal(row.serviceLevelPct, 100);
  ok += 1;
});

test('reporting.serviceLevelFormula switches the formula, for rows and totals alike', async () => {
  const expected = {
    'answered-over-handled': (100 * 2) / 5,
    'answered-over-offered': (100 * 2) / (7 - 1),
    'answered-and-abandoned-in-sl-over-offered': (100 * (2 + 1)) / (7 - 1),
  };
  for (const [formula, pct] of Object.entries(expected)) {
    const p = await world.serve(reportConfig(world.url, ETL, { serviceLevelFormula: formula }));
    assert.equal((await queueRow('sales', p)).serviceLevelPct, pct, formula);
    const r = await get(p, `/api/queue-summary?from=${at('10:00:00')}&to=${at('10:15:00')}&queue=sales&granularity=day`);
    assert.equal(r.body.serviceLevelFormula, formula);
    assert.equal(r.body.totals.serviceLevelPct, pct, `${formula}: totals`);
  }
  ok += 1;
});

test('sites with different thresholds or formulas are reported as differing', async () => {
  const base = configFingerprint(reportConfig(world.url, ETL));
  const changes: [Record<string, unknown>, Record<string, unknown>, string][] = [
    [{ ...ETL, shortAbandonSeconds: 10 }, {}, 'etl.shortAbandonSeconds'],
    [{ ...ETL, queueServiceLevelSeconds: { vip: 30 } }, {}, 'etl.queueServiceLevelSeconds'],
    [ETL, { serviceLevelFormula: 'answered-over-offered' }, 'reporting.serviceLevelFormula'],
  ];
  for (const [etl, reporting, key] of changes) {
    assert.deepEqual(differingKeys({ a: base, b: configFingerprint(reportConfig(world.url, etl, reporting)) }), [key]);
  }
  ok += 1;
});
