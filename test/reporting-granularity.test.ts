/**
 * Buckets, time zones, drill-downs and CSV of the reports on real PostgreSQL: ten days of
 * queue intervals, calls and agent spans around two DST changes (Europe/Paris on
 * 2026-10-25, America/New_York on 2026-11-01) written in SQL, every answer compared with
 * SQL written here (grouping by local calendar labels, buckets from generate_series),
 * not with the code under test.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { get, openReportWorld, reportConfig, type Answer, type ReportWorld } from './helpers/report-world';
import { assertClose } from './helpers/close';
import { parseCsv } from './helpers/csv';
import { pct, queueFigures, type Counts } from './helpers/figures';

const FROM = '2026-10-24T00:00:00.000Z';
const TO = '2026-11-03T00:00:00.000Z';
const RANGE = `from=${FROM}&to=${TO}`;
const GRANULARITIES = ['15min', 'hour', 'day', 'month'] as const;
const ZONES = ['UTC', 'Europe/Paris', 'America/New_York'] as const;
/** Queue names a spreadsheet would run, or that need quoting. */
const FORMULA_QUEUE = '=HYPERLINK("http://x")';
const QUOTED_QUEUE = 'a,b "c"';

let world: ReportWorld;
let port: number;
let passed = 0;
const TESTS = 9;

before(async () => {
  world = await openReportWorld('granularity');
  const db = world.mart;
  // Every interval of ten days for sales and support, varied counts; tick offers one call per interval.
  await db.query(
    `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, abandoned_short, answered_in_sl,
                                 abandoned_in_sl, total_wait_s, total_talk_s)
     select q, t, 6 + n % 5, 3 + n % 3, 2, n % 2, 2 + n % 3, 1 - n % 2, (n % 17) + 0.125 * (3 + n % 3), 100.5 + n % 29
       from unnest(array['sales', 'support']) q,
            generate_series($1::timestamptz, $2::timestamptz - interval '15 minutes', interval '15 minutes') t,
            lateral (select (extract(epoch from t) / 900)::integer + case q when 'support' then 5 else 0 end as n) x
     union all
     select 'tick', t, 1, 0, 0, 0, 0, 0, 0, 0
       from generate_series($1::timestamptz, $2::timestamptz - interval '15 minutes', interval '15 minutes') t
     union all
     select unnest(array[$3, $4]), timestamptz '2026-10-26 10:00:00+00', 1, 1, 0, 0, 1, 0, 5, 50`,
    [FROM, TO, FORMULA_QUEUE, QUOTED_QUEUE],
  );
  // Calls answered every 37 minutes by g1 or g2, some in sales.
  await db.query(
    `insert into interaction_fact (call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts,
                                   outcome, wait_s, talk_s, event_count)
     select gen_random_uuid(), 'sw-voice-1', 'voice', 'inbound', case when i % 3 = 0 then 'support' else 'sales' end,
            case when i % 2 = 0 then 'g1' else 'g2' end,
            t, t + make_interval(secs => 5 + i % 30), t + make_interval(secs => 65 + i % 30 + i % 100), 'answered',
            5 + i % 30, 60 + i % 100, 4
       from generate_series($1::timestamptz + interval '5 minutes', $2::timestamptz, interval '37 minutes') with ordinality g (t, i)
     union all
     select gen_random_uuid(), 'sw-voice-1', 'voice', 'inbound', 'sales', null, t, null, t + interval '40 seconds',
            'abandoned', 40, null, 3
       from generate_series($1::timestamptz + interval '11 minutes', $2::timestamptz, interval '3 hours') t`,
    [FROM, TO],
  );
  // g1: a span every 50 minutes in a cycle of states and reasons; g2: every 70 minutes, its last span still open.
  await db.query(
    `insert into agent_state_fact (source_id, agent_id, seq, state, reason, start_ts, end_ts)
     select 'sw-voice-1', 'g1', i, (array['ready', 'not_ready', 'after_call_work', 'not_ready', 'ready', 'not_ready'])[1 + i % 6],
            (array[null, 'break', null, 'lunch', null, null])[1 + i % 6], t, t + interval '50 minutes'
       from generate_series($1::timestamptz - interval '2 hours', $2::timestamptz + interval '2 hours', interval '50 minutes')
            with ordinality g (t, i)
     union all
     select 'sw-voice-1', 'g2', i, (array['logged_in', 'ready', 'not_ready'])[1 + i % 3], case when i % 3 = 2 then 'break' end,
            t, case when t + interval '70 minutes' < $2::timestamptz then t + interval '70 minutes' end
       from generate_series($1::timestamptz + interval '3 minutes', $2::timestamptz, interval '70 minutes') with ordinality g (t, i)`,
    [FROM, TO],
  );
  port = await world.serve(reportConfig(world.url));
});

after(async () => world?.close(passed === TESTS));

async function ok(target: string): Promise<Answer> {
  const r = await get(port, target);
  assert.equal(r.status, 200, `${target}: ${r.text}`);
  return r;
}

// ---------- queue-summary ----------


/**
 * Grouped by the local calendar label of each interval (for the hour, with the zone's
 * offset then, so both 01:00 hours of a fall-back night stay apart); a bucket starts at
 * local midnight or the first of the month, or at its first interval for hours and quarters.
 */
const LABEL: Record<(typeof GRANULARITIES)[number], string> = {
  '15min': `to_char(interval_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI')`,
  hour: `to_char(interval_start at time zone $1, 'YYYY-MM-DD HH24') || (interval_start at time zone $1 - interval_start at time zone 'UTC')::text`,
  day: `to_char(interval_start at time zone $1, 'YYYY-MM-DD')`,
  month: `to_char(interval_start at time zone $1, 'YYYY-MM') || '-01'`,
};

async function expectedQueues(granularity: (typeof GRANULARITIES)[number], tz: string) {
  const start = granularity === 'day' || granularity === 'month' ? `(label::timestamp at time zone $1)` : `min(interval_start)`;
  const sums = `sum(offered)::integer as offered, sum(answered)::integer as answered, sum(abandoned)::integer as abandoned,
                sum(abandoned_short)::integer as abandoned_short, sum(answered_in_sl)::integer as answered_in_sl,
                sum(total_wait_s)::float8 as total_wait_s, sum(total_talk_s)::float8 as total_talk_s`;
  const { rows } = await world.mart.query<Counts & { queue: string; start: Date }>(
    `select queue, ${start} as start, ${sums}
       from (select *, ${LABEL[granularity]} as label from ag_queue_15min
              where interval_start >= $2 and interval_start < $3 and $1::text is not null) q
      group by queue, label
      order by 2, queue collate "C"`,
    [tz, FROM, TO],
  );
  const { rows: [totals] } = await world.mart.query<Counts>(
    `select ${sums} from ag_queue_15min where interval_start >= $1 and interval_start < $2`,
    [FROM, TO],
  );
  return {
    rows: rows.map((r) => ({ queue: r.queue, intervalStart: r.start.toISOString(), ...queueFigures(r) })),
    totals: queueFigures(totals!),
  };
}

test('queue-summary: rows and totals per granularity and zone equal SQL grouping by local calendar labels', async () => {
  let firstTotals: unknown = null;
  for (const tz of ZONES) {
    for (const granularity of GRANULARITIES) {
      const r = await ok(`/api/queue-summary?${RANGE}&granularity=${granularity}&tz=${encodeURIComponent(tz)}`);
      const expected = await expectedQueues(granularity, tz);
      assert.equal(r.body.granularity, granularity);
      assert.equal(r.body.tz, tz);
      assert.equal(r.body.truncated, false);
      assertClose(r.body.rows, expected.rows, `${tz} ${granularity}`);
      assertClose(r.body.totals, expected.totals, `${tz} ${granularity} totals`);
      // Totals are the same whatever the buckets: computed from the same summed counts.
      firstTotals ??= r.body.totals;
      assert.deepEqual(r.body.totals, firstTotals, `${tz} ${granularity}: totals equal across granularities`);
      for (const k of ['offered', 'answered', 'abandoned', 'abandonedShort', 'answeredInSl'] as const) {
        assert.equal(r.body.rows.reduce((t: number, row: Record<string, number>) => t + row[k]!, 0), r.body.totals[k], `${tz} ${granularity}: ${k} adds up`);
      }
    }
  }
  passed += 1;
});

test('a DST day is one day bucket of 25 hours; the two 01:00 hours of the night stay apart', async () => {
  for (const [tz, day, start] of [
    ['America/New_York', '2026-11-01', '2026-11-01T04:00:00.000Z'],
    ['Europe/Paris', '2026-10-25', '2026-10-24T22:00:00.000Z'],
  ] as const) {
    const r = await ok(`/api/queue-summary?${RANGE}&queue=tick&granularity=day&tz=${encodeURIComponent(tz)}`);
    const row = r.body.rows.find((x: { intervalStart: string }) => x.intervalStart === start);
    assert.ok(row, `${tz}: a bucket starts at local midnight of ${day}, ${start}`);
    assert.equal(row.offered, 100, `${tz} ${day}: 25 hours of 15-minute intervals`);
    const others = r.body.rows.filter((x: { intervalStart: string; offered: number }) => x !== row && x.offered !== 96);
    assert.ok(others.every((x: { offered: number }) => x.offered < 96), `${tz}: every other whole day has 96: ${JSON.stringify(others)}`);
  }
  const hours = await ok(`/api/queue-summary?from=2026-11-01T04:00:00Z&to=2026-11-02T05:00:00Z&queue=tick&granularity=hour&tz=America/New_York`);
  assert.equal(hours.body.rows.length, 25);
  assert.ok(hours.body.rows.every((x: { offered: number }) => x.offered === 4), 'each local hour holds four intervals');
  assert.deepEqual(hours.body.rows.slice(1, 3).map((x: { intervalStart: string }) => x.intervalStart), ['2026-11-01T05:00:00.000Z', '2026-11-01T06:00:00.000Z']);
  passed += 1;
});

// ---------- agent-summary ----------

/** Buckets written out per granularity: quarters and hours in UTC (whole-hour zones), local days and months. */
const BUCKETS: Record<(typeof GRANULARITIES)[number], string> = {
  '15min': `select t as b_start, t + interval '15 minutes' as b_end from generate_series($2::timestamptz, $3::timestamptz - interval '1 second', interval '15 minutes') t`,
  hour: `select t as b_start, t + interval '1 hour' as b_end from generate_series($2::timestamptz, $3::timestamptz - interval '1 second', interval '1 hour') t`,
  day: `select d at time zone $1 as b_start, (d + interval '1 day') at time zone $1 as b_end
          from generate_series(date_trunc('day', $2::timestamptz at time zone $1), $3::timestamptz at time zone $1, interval '1 day') d
         where d at time zone $1 < $3::timestamptz`,
  month: `select d at time zone $1 as b_start, (d + interval '1 month') at time zone $1 as b_end
            from generate_series(date_trunc('month', $2::timestamptz at time zone $1), $3::timestamptz at time zone $1, interval '1 month') d
           where d at time zone $1 < $3::timestamptz`,
};

type AgentSums = { calls: number; talk: number; states: Record<string, number>; reasons: Record<string, number> };
const noTime = (): AgentSums => ({ calls: 0, talk: 0, states: { logged_in: 0, ready: 0, not_ready: 0, after_call_work: 0 }, reasons: {} });
function agentFigures(a: AgentSums) {
  const handle = a.talk + a.states.after_call_work!;
  return {
    callsHandled: a.calls,
    talkSeconds: a.talk,
    handleSeconds: handle,
    ahtSeconds: a.calls > 0 ? handle / a.calls : null,
    occupancyPct: pct(handle, a.states.ready! + a.states.after_call_work!),
    stateSeconds: a.states,
    notReadyByReason: a.reasons,
  };
}

async function expectedAgents(granularity: (typeof GRANULARITIES)[number], tz: string, from = FROM, to = TO) {
  const { rows } = await world.mart.query<{ agent_id: string; b_start: Date; kind: string; reason: string | null; n: number; seconds: number }>(
    `with b as (select * from (${BUCKETS[granularity]}) b where $1::text is not null)
     select f.agent_id, b.b_start, 'call' as kind, null as reason, count(*)::integer as n, sum(f.talk_s)::float8 as seconds
       from interaction_fact f join b on f.answer_ts >= b.b_start and f.answer_ts < b.b_end
      where f.agent_id is not null and f.answer_ts >= $2 and f.answer_ts < $3
      group by 1, 2
     union all
     select agent_id, b_start, state, reason, 0, sum(seconds)::float8 from (
       select s.agent_id, b.b_start, s.state, s.reason,
              extract(epoch from least(coalesce(s.end_ts, now()), b.b_end, $3::timestamptz) - greatest(s.start_ts, b.b_start, $2::timestamptz)) as seconds
         from agent_state_fact s cross join b) x
      where seconds > 0
      group by 1, 2, 3, 4`,
    [tz, from, to],
  );
  const byKey = new Map<string, AgentSums>();
  const totals = noTime();
  for (const r of rows) {
    const key = `${r.agent_id}|${r.b_start.toISOString()}`;
    if (!byKey.has(key)) byKey.set(key, noTime());
    for (const a of [byKey.get(key)!, totals]) {
      if (r.kind === 'call') {
        a.calls += r.n;
        a.talk += r.seconds;
      } else {
        a.states[r.kind]! += r.seconds;
        if (r.kind === 'not_ready') a.reasons[r.reason ?? '(none)'] = (a.reasons[r.reason ?? '(none)'] ?? 0) + r.seconds;
      }
    }
  }
  const rowsOut = [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, a]) => ({ agentId: key.split('|')[0]!, intervalStart: key.split('|')[1]!, ...agentFigures(a) }));
  return { rows: rowsOut, totals: agentFigures(totals) };
}

test('agent-summary: per agent and bucket, spans clipped to each bucket, equal to SQL over written-out buckets; totals equal across granularities', async () => {
  let firstTotals: { callsHandled: number; stateSeconds: Record<string, number> } | null = null;
  for (const tz of ZONES) {
    for (const granularity of GRANULARITIES) {
      const r = await ok(`/api/agent-summary?${RANGE}&granularity=${granularity}&tz=${encodeURIComponent(tz)}`);
      const expected = await expectedAgents(granularity, tz);
      assert.ok(expected.rows.length > 2, 'the premise: rows to compare');
      assertClose(r.body.rows, expected.rows, `${tz} ${granularity}`);
      assertClose(r.body.totals, expected.totals, `${tz} ${granularity} totals`);
      firstTotals ??= r.body.totals;
      assertClose(r.body.totals, firstTotals, `${tz} ${granularity}: totals equal across granularities`);
    }
  }
  const paris = await ok(`/api/agent-summary?${RANGE}&granularity=day&tz=Europe/Paris&agent=g1`);
  const dst = paris.body.rows.find((x: { intervalStart: string }) => x.intervalStart === '2026-10-24T22:00:00.000Z');
  const seconds = Object.values(dst.stateSeconds as Record<string, number>).reduce((t, v) => t + v, 0);
  assert.equal(seconds, 25 * 3600, 'g1 is in some state all the 25 hours of the DST day');
  passed += 1;
});

// ---------- drill-downs ----------

test('interactions by queue and range: the calls of the interval, newest first, equal to SQL', async () => {
  const from = '2026-10-26T10:00:00.000Z';
  const to = '2026-10-26T14:00:00.000Z';
  const r = await ok(`/api/interactions?queue=sales&from=${from}&to=${to}`);
  const { rows } = await world.mart.query(
    `select call_id::text as "callId", outcome, wait_s::float8 as "waitSeconds", talk_s::float8 as "talkSeconds", agent_id as "agentId"
       from interaction_fact where queue = 'sales' and start_ts >= $1 and start_ts < $2 order by start_ts desc, call_id desc`,
    [from, to],
  );
  assert.ok(rows.length >= 3, 'the premise: calls to list');
  assert.deepEqual(
    r.body.rows.map((c: Record<string, unknown>) => ({ callId: c.callId, outcome: c.outcome, waitSeconds: c.waitSeconds, talkSeconds: c.talkSeconds, agentId: c.agentId })),
    rows,
  );
  assert.equal(r.body.truncated, false);
  passed += 1;
});

test('agent-states: the spans of one agent overlapping the range, clipped, in order, with reason, equal to SQL', async () => {
  const from = '2026-10-25T00:10:00.000Z';
  const to = '2026-10-25T06:00:00.000Z';
  const r = await ok(`/api/agent-states?agent=g1&from=${from}&to=${to}&tz=Europe/Paris`);
  const { rows } = await world.mart.query(
    `select state, reason, greatest(start_ts, $1) as s, least(end_ts, $2) as e,
            extract(epoch from least(end_ts, $2) - greatest(start_ts, $1))::float8 as seconds
       from agent_state_fact where agent_id = 'g1' and start_ts < $2 and end_ts > $1 order by start_ts`,
    [from, to],
  );
  assert.equal(r.body.tz, 'Europe/Paris');
  assert.deepEqual(
    r.body.rows.map((x: Record<string, unknown>) => [x.state, x.reason, x.startTs, x.endTs, x.seconds]),
    rows.map((x) => [x.state, x.reason, x.s.toISOString(), x.e.toISOString(), x.seconds]),
  );
  assert.equal(r.body.rows[0].startTs, from, 'the first span clipped to the range');
  assert.equal(r.body.rows.reduce((t: number, x: { seconds: number }) => t + x.seconds, 0), (Date.parse(to) - Date.parse(from)) / 1000);
  passed += 1;
});

// ---------- CSV ----------

/** A JSON value as the CSV cell must hold it. */
const cell = (v: unknown): string => (v === null || v === undefined ? '' : typeof v === 'number' ? JSON.stringify(v) : /^[=+\-@]/.test(String(v)) ? `'${v}` : String(v));

/** The CSV of `target` holds the JSON answer's rows and totals, cell for cell, under `columns` (dotted paths). */
async function assertCsvMatches(target: string, filename: string, totalsLabel: string | null) {
  const [j, c] = [await ok(target), await ok(`${target}&format=csv`)];
  assert.equal(c.headers['content-type'], 'text/csv; charset=utf-8');
  assert.equal(c.headers['content-disposition'], `attachment; filename="${filename}"`);
  const [header, ...lines] = parseCsv(c.text);
  const value = (row: Record<string, any>, path: string) => path.split('.').reduce((v, k) => v?.[k], row);
  const rows = totalsLabel ? lines.slice(0, -1) : lines;
  assert.equal(rows.length, j.body.rows.length, 'one line per JSON row');
  j.body.rows.forEach((row: Record<string, unknown>, i: number) => assert.deepEqual(rows[i], header!.map((h) => cell(value(row, h))), `line ${i + 2}`));
  if (totalsLabel) {
    const totals = lines.at(-1)!;
    assert.equal(totals[0], totalsLabel);
    assert.deepEqual(totals.slice(2), header!.slice(2).map((h) => cell(value(j.body.totals, h))), 'the totals line');
  }
  return { header: header!, lines };
}

test('CSV: the same rows and totals as the JSON answer for every report, with its file name', async () => {
  const q = await assertCsvMatches(`/api/queue-summary?${RANGE}&granularity=day&tz=Europe/Paris&queue=sales&queue=support`,
    'queue-summary_20261024T000000Z_20261103T000000Z_sales-support_day.csv', 'Total');
  assert.deepEqual(q.header, ['queue', 'intervalStart', 'offered', 'answered', 'abandoned', 'abandonedShort', 'answeredInSl', 'serviceLevelPct', 'asaSeconds', 'ahtSeconds', 'abandonRatePct']);
  const a = await assertCsvMatches(`/api/agent-summary?${RANGE}&granularity=hour&tz=America/New_York`,
    'agent-summary_20261024T000000Z_20261103T000000Z_hour.csv', 'Total');
  assert.ok(a.header.includes('notReadyByReason.lunch') && a.header.includes('stateSeconds.after_call_work'), a.header.join(','));
  await assertCsvMatches('/api/agent-states?agent=g2&from=2026-10-25T00:00:00Z&to=2026-10-26T00:00:00Z',
    'agent-states_20261025T000000Z_20261026T000000Z_g2.csv', null);
  await assertCsvMatches('/api/interactions?queue=sales&from=2026-10-26T00:00:00Z&to=2026-10-27T00:00:00Z',
    'interactions_20261026T000000Z_20261027T000000Z_sales.csv', null);
  passed += 1;
});

test('CSV: a cell a spreadsheet would run gets a leading quote; commas and quotes are quoted; file names keep safe characters', async () => {
  const target = `/api/queue-summary?from=2026-10-26T10:00:00Z&to=2026-10-26T10:15:00Z&queue=${encodeURIComponent(FORMULA_QUEUE)}&queue=${encodeURIComponent(QUOTED_QUEUE)}&format=csv`;
  const r = await ok(target);
  const lines = r.text.split('\r\n');
  assert.equal(lines[1]!.split(',2026')[0], `"'=HYPERLINK(""http://x"")"`);
  assert.equal(lines[2]!.split(',2026')[0], `"a,b ""c"""`);
  assert.match(String(r.headers['content-disposition']), /^attachment; filename="queue-summary_20261026T100000Z_20261026T101500Z_[A-Za-z0-9.-]+_15min\.csv"$/);
  passed += 1;
});

test('bad format, granularity or tz: 400 naming the parameter; day and month allow a year', async () => {
  const cases: [string, RegExp][] = [
    [`/api/queue-summary?${RANGE}&format=xlsx`, /^format: expected json or csv, got "xlsx"$/],
    [`/api/agent-states?agent=g1&${RANGE}&format=CSV`, /^format: expected json or csv, got "CSV"$/],
    [`/api/interactions?queue=sales&${RANGE}&format=`, /^format: /],
    [`/api/queue-summary?${RANGE}&granularity=week`, /^granularity: expected one of 15min, hour, day, month, got "week"$/],
    [`/api/agent-summary?${RANGE}&granularity=day&granularity=hour`, /^granularity: given more than once/],
    [`/api/queue-summary?${RANGE}&tz=Mars/Olympus`, /^tz: expected an IANA time zone such as Europe\/Paris or UTC, got "Mars\/Olympus"$/],
    [`/api/agent-summary?${RANGE}&tz=%2B01:00`, /^tz: expected an IANA time zone/],
    [`/api/agent-summary?${RANGE}&tz=${encodeURIComponent("UTC'; drop table x; --")}`, /^tz: expected an IANA time zone/],
    ['/api/queue-summary?from=2026-01-01&to=2026-03-01&granularity=hour', /^to: range longer than 31 days .*366 with granularity day or month/],
    ['/api/queue-summary?from=2025-01-01&to=2026-01-03&granularity=month', /^to: range longer than 366 days/],
    ['/api/interactions?queue=sales', /^from: missing: queue needs from and to$/],
    [`/api/interactions?queue=sales&ani=%2B15551230001&${RANGE}`, /^queue: not with ani/],
    ['/api/agent-states?from=2026-10-25&to=2026-10-26', /^agent: missing/],
  ];
  for (const [target, message] of cases) {
    const r = await get(port, target);
    assert.equal(r.status, 400, `${target}: ${r.text}`);
    assert.match(r.body.error, message, target);
  }
  await ok('/api/queue-summary?from=2025-11-01&to=2026-11-01&granularity=month&tz=europe/paris');
  const year = await ok('/api/agent-summary?from=2025-11-01&to=2026-11-01&granularity=day');
  assert.equal(year.body.tz, 'UTC');
  passed += 1;
});

test('the defaults are 15-minute intervals in UTC; a zone is named as Intl spells it', async () => {
  const r = await ok(`/api/queue-summary?from=2026-10-26T10:00:00Z&to=2026-10-26T11:00:00Z&queue=tick&tz=europe/paris`);
  assert.equal(r.body.tz, 'Europe/Paris');
  assert.equal(r.body.granularity, '15min');
  assert.deepEqual(r.body.rows.map((x: { intervalStart: string }) => x.intervalStart), ['10:00', '10:15', '10:30', '10:45'].map((t) => `2026-10-26T${t}:00.000Z`));
  passed += 1;
});
