/**
 * Attached data as report dimensions on real PostgreSQL: calls staged with attrs (keys
 * configured and not, events that disagree, a discarded event, values too long, numbers
 * and JSON nulls) and transformed by the real transform into two marts; dims compared with
 * what this file computes from the events, the reports' filters and groupBy with SQL
 * written here, and the two marts with parity; a third mart transformed again after
 * etl.dimensions changed. Config checks need no database.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConfigError } from '../src/config';
import { configFingerprint } from '../src/config/fingerprint';
import { transformSite, type TransformOptions } from '../src/etl/transform';
import { compareMarts } from '../src/parity';
import { get, openReportWorld, reportConfig, type Answer, type ReportWorld } from './helpers/report-world';
import { assertClose } from './helpers/close';
import { csvRecords } from './helpers/csv';
import { queueFigures, type Counts } from './helpers/figures';

const DAY = '2026-03-02';
const at = (seconds: number): string => new Date(Date.parse(`${DAY}T10:00:00Z`) + seconds * 1000).toISOString();
const FROM = `${DAY}T10:00:00.000Z`;
const TO = `${DAY}T12:00:00.000Z`;
const RANGE = `from=${FROM}&to=${TO}`;
const ETL = { serviceLevelSeconds: 20, queueServiceLevelSeconds: { support: 30 }, shortAbandonSeconds: 5, dimensions: ['segment', 'language'] };
const KEYS = ETL.dimensions;
const SEGMENTS = ['gold', 'silver', 'bronze'];
const LONG = 'x'.repeat(250);

interface Event { callId: string; seq: number; event: string; ts: string; queue: string; attrs: Record<string, unknown> }
interface Call { callId: string; events: Event[] }

/** Sixty calls over two hours; the comments say what each kind of call checks. */
function makeCalls(): Call[] {
  return Array.from({ length: 60 }, (_, i) => {
    const callId = `d0000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const queue = i % 3 === 0 ? 'support' : 'sales';
    const t = i * 120 + (i % 7);
    // campaign: not configured, until the backfill test adds it.
    const first: Record<string, unknown> = { language: ['en', 'fr'][i % 2], campaign: i % 3 === 2 ? 'summer' : 'spring' };
    if (i % 4 !== 3) first.segment = SEGMENTS[i % 4]; // every fourth call has no segment
    if (i === 7) first.language = LONG; // cut to 200 characters
    if (i === 11) first.language = 42; // a number: its text
    if (i === 13) first.segment = null; // a JSON null: absent
    // The queued event disagrees on every fifth call: the higher seq wins.
    const queued = i % 5 === 0 ? { segment: 'platinum' } : {};
    const ev = (seq: number, event: string, ts: number, attrs: Record<string, unknown> = {}): Event => ({ callId, seq, event, ts: at(ts), queue, attrs });
    const wait = 2 + (i % 40);
    const events =
      i % 6 === 5
        ? [ev(1, 'created', t, first), ev(2, 'queued', t, queued), ev(3, 'abandoned', t + wait)]
        : [ev(1, 'created', t, first), ev(2, 'queued', t, queued), ev(3, 'established', t + wait), ev(4, 'released', t + wait + 60 + i)];
    // Out of order, so discarded: its attrs must not win.
    if (i % 10 === 9) events.push(ev(events.length + 1, 'routed', t, { segment: 'discarded' }));
    return { callId, events };
  });
}

const CALLS = makeCalls();

/** What the transform should keep: per key, the value of the last usable event with it (the discarded one is the last event). */
function expectedDims(call: Call, keys = KEYS): Record<string, string> {
  const dims: Record<string, string> = {};
  const usable = call.events.filter((e) => e.attrs.segment !== 'discarded');
  for (const e of usable) {
    for (const k of keys) if (e.attrs[k] !== undefined && e.attrs[k] !== null) dims[k] = String(e.attrs[k]).slice(0, 200);
  }
  return dims;
}

let world: ReportWorld;
let twin: ReportWorld;
let backfilled: ReportWorld | undefined;
let port: number;
let passed = 0;
const TESTS = 10;

const transform = (w: ReportWorld, dimensions: string[], batch = 1000, more: Partial<TransformOptions> = {}) =>
  transformSite(w.mart, { batch, queueRules: ETL, maxCallSeconds: 86_400, dimensions, ...more });

async function stage(w: ReportWorld, calls: Call[]): Promise<void> {
  const rows = calls.flatMap((c) => c.events);
  await w.mart.query(
    `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id,
                                 attrs, member_id, quality)
     select (e->>'callId')::uuid, (e->>'seq')::integer, 'sw-voice-1', e->>'event', (e->>'ts')::timestamptz, 'voice', 'inbound',
            null, null, e->>'queue', case when e->>'event' in ('established', 'released') then 'a1' end, e->'attrs', 'idb-voice-1-dc1', 1
       from jsonb_array_elements($1::jsonb) as e`,
    [JSON.stringify(rows)],
  );
  await w.mart.query('insert into etl_dirty_call select distinct call_id from stg_call_event on conflict do nothing');
}

async function stageAndTransform(w: ReportWorld, calls: Call[]): Promise<void> {
  await stage(w, calls);
  await transform(w, KEYS);
}

before(async () => {
  world = await openReportWorld('dimensions');
  twin = await openReportWorld('dimensions_twin');
  await stageAndTransform(world, CALLS);
  // The twin loads the same events in two batches, the later calls first.
  await stageAndTransform(twin, CALLS.slice(30));
  await stageAndTransform(twin, CALLS.slice(0, 30));
  port = await world.serve(reportConfig(world.url, ETL));
});

after(async () => {
  await world?.close(passed === TESTS);
  await twin?.close(passed === TESTS);
  await backfilled?.close(passed === TESTS);
});

async function ok(target: string, on = port): Promise<Answer> {
  const r = await get(on, target);
  assert.equal(r.status, 200, `${target}: ${r.text}`);
  return r;
}

test('the transform keeps the configured attrs of the last usable event that has them, and no others', async () => {
  const { rows } = await world.mart.query<{ call_id: string; dims: Record<string, string> }>('select call_id::text, dims from interaction_fact');
  assert.equal(rows.length, CALLS.length);
  const byId = new Map(rows.map((r) => [r.call_id, r.dims]));
  for (const c of CALLS) assert.deepEqual(byId.get(c.callId), expectedDims(c), c.callId);
  assert.equal(byId.get(CALLS[7]!.callId)!.language, 'x'.repeat(200));
  assert.equal(byId.get(CALLS[11]!.callId)!.language, '42');
  assert.equal(byId.get(CALLS[10]!.callId)!.segment, 'platinum');
  assert.equal(byId.get(CALLS[9]!.callId)!.segment, 'silver', 'the discarded event does not win');
  assert.ok(!('segment' in byId.get(CALLS[13]!.callId)!));
  const { rows: stray } = await world.mart.query(`select 1 from interaction_fact where dims ? 'campaign'`);
  assert.equal(stray.length, 0);
  passed++;
});


/** The report written here: hours of Europe/Paris, per queue and segment, over the facts matching `where`. */
async function expected(where: string, params: unknown[]) {
  const sums = `count(*)::integer as offered,
                count(*) filter (where answer_ts is not null and outcome in ('answered', 'transferred'))::integer as answered,
                count(*) filter (where outcome = 'abandoned')::integer as abandoned,
                count(*) filter (where outcome = 'abandoned' and wait_s < 5)::integer as abandoned_short,
                count(*) filter (where answer_ts is not null and wait_s <= case queue when 'support' then 30 else 20 end)::integer
                  as answered_in_sl,
                coalesce(sum(wait_s) filter (where answer_ts is not null), 0)::float8 as total_wait_s,
                coalesce(sum(talk_s), 0)::float8 as total_talk_s`;
  const facts = `interaction_fact where start_ts >= '${FROM}' and start_ts < '${TO}' and ${where}`;
  const { rows } = await world.mart.query<Counts & { queue: string; hour: Date; segment: string | null }>(
    `select * from (
       select queue, date_trunc('hour', start_ts at time zone 'Europe/Paris') at time zone 'Europe/Paris' as hour,
              dims ->> 'segment' as segment, ${sums}
         from ${facts}
        group by 1, 2, 3) g
      order by hour, queue collate "C", segment collate "C" nulls first`,
    params,
  );
  const { rows: [total] } = await world.mart.query<Counts>(`select ${sums} from ${facts}`, params);
  return {
    rows: rows.map((r) => ({ queue: r.queue, intervalStart: r.hour.toISOString(), dimension: { key: 'segment', value: r.segment }, ...queueFigures(r) })),
    totals: queueFigures(total!),
  };
}

test('groupBy: per queue, hour and value, from the facts; totals those of the ungrouped report', async () => {
  const grouped = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&groupBy=segment`)).body;
  const want = await expected('true', []);
  assertClose(grouped.rows, want.rows);
  assertClose(grouped.totals, want.totals);
  assert.ok(grouped.rows.some((r: { dimension: { value: string | null } }) => r.dimension.value === null), 'calls without a segment have a row');
  const plain = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris`)).body;
  assert.equal(plain.rows[0].dimension, undefined);
  assert.deepEqual(grouped.totals, plain.totals, 'from the facts as from ag_queue_15min');
  passed++;
});

test('filters: OR within a key, AND across keys, also grouped', async () => {
  const target = `/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&dim.segment=gold&dim.segment=platinum&dim.language=en`;
  const where = `dims ->> 'segment' = any($1::text[]) and dims ->> 'language' = $2`;
  const want = await expected(where, [['gold', 'platinum'], 'en']);
  assert.ok(want.totals.offered > 0 && want.totals.offered < CALLS.length);
  const filtered = (await ok(target)).body;
  assertClose(filtered.totals, want.totals);
  assert.deepEqual(filtered.dimensions, { segment: ['gold', 'platinum'], language: ['en'] });
  const grouped = (await ok(`${target}&groupBy=segment`)).body;
  assertClose(grouped.rows, want.rows);
  assertClose(grouped.totals, want.totals);
  passed++;
});

test('CSV of a grouped report: the dimension column after the interval, then the totals line', async () => {
  const r = await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&groupBy=segment&dim.language=fr&format=csv`);
  const json = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&groupBy=segment&dim.language=fr`)).body;
  assert.match(String(r.headers['content-disposition']), /language-fr/);
  assert.deepEqual(r.text.split('\r\n')[0]!.split(',').slice(0, 4), ['queue', 'intervalStart', 'dim.segment', 'offered']);
  const records = csvRecords(r.text);
  assert.equal(records.length, json.rows.length + 1);
  json.rows.forEach((row: { queue: string; dimension: { value: string | null }; offered: number }, i: number) => {
    assert.equal(records[i]!.queue, row.queue);
    assert.equal(records[i]!['dim.segment'], row.dimension.value ?? '');
    assert.equal(Number(records[i]!.offered), row.offered);
  });
  assert.equal(Number(records.at(-1)!.offered), json.totals.offered);
  passed++;
});

test('interactions: the lookups filter by dims, and each call carries its dims', async () => {
  const r = (await ok(`/api/interactions?queue=sales&${RANGE}&dim.segment=silver&dim.segment=bronze`)).body;
  const { rows } = await world.mart.query<{ call_id: string }>(
    `select call_id::text from interaction_fact
      where queue = 'sales' and dims ->> 'segment' in ('silver', 'bronze') order by start_ts desc, call_id desc`,
  );
  assert.ok(rows.length > 0);
  assert.deepEqual(r.rows.map((c: { callId: string }) => c.callId), rows.map((x) => x.call_id));
  for (const c of r.rows) assert.deepEqual(c.dims, expectedDims(CALLS.find((x) => x.callId === c.callId)!));
  const one = CALLS[1]!.callId; // silver
  assert.equal((await ok(`/api/interactions?callId=${one}&dim.segment=silver`)).body.rows.length, 1);
  assert.equal((await ok(`/api/interactions?callId=${one}&dim.segment=gold`)).body.rows.length, 0);
  const csv = csvRecords((await ok(`/api/interactions?callId=${one}&format=csv`)).text);
  assert.equal(csv[0]!['dims.segment'], 'silver');
  passed++;
});

test('/api/dimensions: the values of each key among the calls of the range, most calls first, as SQL counts them; CSV the same rows', async () => {
  const sql = async (queue: string | null) =>
    (await world.mart.query<{ key: string; value: string; calls: number }>(
      `select key, value, calls
         from (select k as key, n, dims ->> k as value, count(*)::integer as calls
                 from interaction_fact, unnest($3::text[]) with ordinality as u(k, n)
                where start_ts >= $1 and start_ts < $2 and dims ? k and ($4::text is null or queue = $4)
                group by k, n, dims ->> k) c
        order by n, calls desc, value collate "C"`,
      [FROM, TO, KEYS, queue],
    )).rows;
  const all = (await ok(`/api/dimensions?${RANGE}`)).body;
  assert.deepEqual(all.keys, KEYS);
  assert.deepEqual(all.truncated, []);
  const want = await sql(null);
  assert.deepEqual(all.rows, want);
  // Every value a filter may offer: the discarded event's is not one, a call without a segment is not counted.
  assert.deepEqual(all.rows.filter((r: { key: string }) => r.key === 'segment').map((r: { value: string }) => r.value).sort(), ['bronze', 'gold', 'platinum', 'silver']);
  assert.equal(
    all.rows.filter((r: { key: string }) => r.key === 'language').reduce((n: number, r: { calls: number }) => n + r.calls, 0),
    CALLS.length,
    'every call has a language',
  );
  assert.deepEqual((await ok(`/api/dimensions?${RANGE}&queue=support`)).body.rows, await sql('support'));
  const csv = await ok(`/api/dimensions?${RANGE}&format=csv`);
  assert.match(String(csv.headers['content-disposition']), /dimensions_/);
  assert.deepEqual(csvRecords(csv.text).map((r) => ({ key: r.key, value: r.value, calls: Number(r.calls) })), want);
  const long = await get(port, `/api/dimensions?from=2025-01-01&to=2026-03-01`);
  assert.equal(long.status, 400);
  assert.match(long.body.error, /^to: range longer than 366 days/);
  // Without etl.dimensions: no keys, no query of the facts.
  const bare = await world.serve(reportConfig(world.url, {}));
  assert.deepEqual((await get(bare, `/api/dimensions?${RANGE}`)).body.rows, []);
  passed++;
});

test('a dimension not configured, a bad groupBy or value: 400 naming the parameter', async () => {
  const cases: [string, string][] = [
    [`/api/queue-summary?${RANGE}&dim.campaign=spring`, 'dim.campaign: not a configured dimension, expected one of segment, language, got "spring"'],
    [`/api/queue-summary?${RANGE}&groupBy=campaign`, 'groupBy: not a configured dimension, expected one of segment, language, got "campaign"'],
    [`/api/queue-summary?${RANGE}&groupBy=segment&groupBy=language`, 'groupBy: given more than once, expected once, got ["segment","language"]'],
    [`/api/queue-summary?${RANGE}&dim.segment=`, 'dim.segment: empty, expected a value, got ""'],
    [`/api/interactions?queue=sales&${RANGE}&dim.Segment=gold`, 'dim.Segment: not a configured dimension, expected one of segment, language, got "gold"'],
  ];
  for (const [target, error] of cases) {
    const r = await get(port, target);
    assert.equal(r.status, 400, target);
    assert.equal(r.body.error, error);
  }
  const grouped = await get(port, `/api/interactions?queue=sales&${RANGE}&groupBy=segment`);
  assert.equal(grouped.status, 400);
  assert.equal(grouped.body.error, 'groupBy: unknown parameter, expected one of callId, ani, queue, from, to, format, dim.segment, dim.language, got "segment"');
  const unknown = await get(port, `/api/queue-summary?${RANGE}&segment=gold`);
  assert.equal(unknown.body.error, 'segment: unknown parameter, expected one of from, to, granularity, tz, format, queue, dim.segment, dim.language, groupBy, got "gold"');
  passed++;
});

test('parity: two marts that loaded the same events apart keep the same dims, and a differing one is found', async () => {
  const report = await compareMarts({ name: 'dc1', pool: world.mart }, { name: 'dc2', pool: twin.mart }, { closedBefore: new Date(TO) });
  assert.ok(report.match, JSON.stringify(report.mismatches));
  await twin.mart.query(`update interaction_fact set dims = dims || '{"segment": "tin"}' where call_id = $1`, [CALLS[2]!.callId]);
  const differs = await compareMarts({ name: 'dc1', pool: world.mart }, { name: 'dc2', pool: twin.mart }, { closedBefore: new Date(TO) });
  assert.ok(!differs.match);
  assert.deepEqual([...new Set(differs.mismatches.map((m) => m.kind))], ['interaction_fact']);
  passed++;
});

test('a key added to or removed from etl.dimensions reaches the calls transformed before, but not purged ones; the aggregates stay', async () => {
  const w = (backfilled = await openReportWorld('dimensions_backfill'));
  const facts = async () => {
    const { rows } = await w.mart.query<{ call_id: string; dims: Record<string, string>; updated_at: Date }>(
      'select call_id::text, dims, updated_at from interaction_fact',
    );
    return new Map(rows.map((r) => [r.call_id, r]));
  };
  const aggregates = async () => (await w.mart.query('select * from ag_queue_15min order by queue, interval_start')).rows;
  assert.equal((await transform(w, ['segment'])).calls, 0, 'an empty mart has nothing to recompute');
  await stage(w, CALLS);
  assert.equal((await transform(w, ['segment'])).calls, CALLS.length);
  // As retention leaves a purged call: its staged events gone, its fact final.
  const purged = CALLS[4]!.callId;
  await w.mart.query('insert into ctl_purged_call (call_id, start_ts) select call_id, start_ts from interaction_fact where call_id = $1', [purged]);
  await w.mart.query('delete from stg_call_event where call_id = $1', [purged]);
  const before = await facts();
  const ag = await aggregates();

  // No new events: only the changed keys make the transform recompute. The calls are
  // queued a few at a time, each chunk reported as progress (the activity's heartbeat): on
  // a mart of millions of facts one statement would outlast etl.stallSeconds.
  const progress: number[] = [];
  const added = await transform(w, ['segment', 'campaign'], 25, { queueChunk: 7, onBatch: (r) => progress.push(r.calls) });
  assert.ok(progress.filter((calls) => calls === 0).length >= Math.ceil(CALLS.length / 7), `progress while queueing in chunks of 7: ${progress}`);
  assert.equal(added.calls, CALLS.length - 1, 'every call but the purged one recomputed');
  assert.equal(added.facts, CALLS.length - 1, 'each fact changed: it gained campaign');
  let after = await facts();
  for (const c of CALLS) {
    if (c.callId === purged) continue;
    assert.deepEqual(after.get(c.callId)!.dims, expectedDims(c, ['segment', 'campaign']), c.callId);
  }
  assert.deepEqual(after.get(purged), before.get(purged), 'the purged call is not touched');
  assert.deepEqual(await aggregates(), ag, 'the counts did not change, so neither did ag_queue_15min');

  // The reports group and filter by the new key over the old calls.
  const served = await w.serve(reportConfig(w.url, { ...ETL, dimensions: ['segment', 'campaign'] }));
  const campaignOf = (c: Call) => (c.callId === purged ? null : String(c.events[0]!.attrs.campaign));
  const grouped = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&groupBy=campaign`, served)).body;
  const offered = new Map<string | null, number>();
  for (const r of grouped.rows as { dimension: { value: string | null }; offered: number }[]) {
    offered.set(r.dimension.value, (offered.get(r.dimension.value) ?? 0) + r.offered);
  }
  const want = new Map<string | null, number>();
  for (const c of CALLS) want.set(campaignOf(c), (want.get(campaignOf(c)) ?? 0) + 1);
  assert.deepEqual(offered, want);
  const plain = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris`, served)).body;
  assert.deepEqual(grouped.totals, plain.totals, 'from the facts as from ag_queue_15min');
  const summer = (await ok(`/api/queue-summary?${RANGE}&granularity=hour&tz=Europe/Paris&dim.campaign=summer`, served)).body;
  assert.equal(summer.totals.offered, want.get('summer'));

  assert.equal((await transform(w, ['campaign', 'segment'])).calls, 0, 'the same keys in another order: nothing to do');

  const removed = await transform(w, ['campaign'], 25);
  assert.equal(removed.calls, CALLS.length - 1);
  after = await facts();
  for (const c of CALLS) {
    if (c.callId !== purged) assert.deepEqual(after.get(c.callId)!.dims, expectedDims(c, ['campaign']), c.callId);
  }
  assert.deepEqual(after.get(purged), before.get(purged));
  assert.deepEqual(await aggregates(), ag);
  assert.equal((await transform(w, ['campaign'])).calls, 0);

  // A mart migrated to 014 with facts in it does not know their keys: it recomputes them once.
  await w.mart.query('delete from ctl_fact_dimensions');
  assert.equal((await transform(w, ['campaign'])).calls, CALLS.length - 1);
  assert.deepEqual(await aggregates(), ag);
  passed++;
});

test('etl.dimensions: bad keys are refused naming the path; the fingerprint tells different dimensions apart', () => {
  const url = 'postgres://postgres@127.0.0.1:5432/unused';
  const refused = (dimensions: unknown, message: RegExp) =>
    assert.throws(() => reportConfig(url, { dimensions }), (e: Error) => e instanceof ConfigError && message.test(e.message));
  refused(['segment', 'segment'], /etl\.dimensions: a dimension key given twice/);
  refused(['has space'], /etl\.dimensions\.0: a dimension key of a letter/);
  refused(['1st'], /etl\.dimensions\.0: a dimension key/);
  refused(['a'.repeat(41)], /etl\.dimensions\.0: a dimension key/);
  refused(['ok', 'bad"quote'], /etl\.dimensions\.1: a dimension key/);
  refused(Array.from({ length: 9 }, (_, i) => `k${i}`), /etl\.dimensions: at most 8 dimensions/);
  assert.deepEqual(reportConfig(url).etl.dimensions, []);
  const a = configFingerprint(reportConfig(url, { dimensions: ['segment'] }));
  const b = configFingerprint(reportConfig(url, { dimensions: ['segment', 'language'] }));
  assert.notEqual(a.digest, b.digest);
  assert.notEqual(a.keys['etl.dimensions'], b.keys['etl.dimensions']);
  assert.equal(a.digest, configFingerprint(reportConfig(url, { dimensions: ['segment'] })).digest);
  passed++;
});
