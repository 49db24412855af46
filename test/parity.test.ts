/**
 * compareMarts on real PostgreSQL: two throwaway mart databases holding the same facts
 * under different surrogate keys, session time zones and collations, then made to
 * differ in known ways. The databases are kept for inspection when a test fails.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, type Pool, type PoolClient } from 'pg';
import { Pools, withPgClient, withTransaction } from '../src/db';
import { migrateMart } from '../src/mart/migrate';
import { compareMarts, formatParityReport, type ParityReport } from '../src/parity';

const SERVER = 'postgres://postgres@127.0.0.1:5432';

const I0 = '2024-03-01T10:00:00.000Z';
const I1 = '2024-03-01T10:15:00.000Z';
const I2 = '2024-03-01T10:30:00.000Z';
/** I0 and I1 have ended; I2 (10:30-10:45) is still open. */
const CLOSED_BEFORE = new Date('2024-03-01T10:40:00Z');

const at = (hhmmss: string): string => `2024-03-01T${hhmmss}Z`;

const C = {
  c1: 'a0000000-0000-4000-8000-000000000001',
  c2: 'a0000000-0000-4000-8000-000000000002',
  c3: 'a0000000-0000-4000-8000-000000000003',
  c4: 'a0000000-0000-4000-8000-000000000004',
  c5: 'a0000000-0000-4000-8000-000000000005',
};

type Row = Record<string, string | number | null>;
interface Facts {
  calls: Row[];
  events: Row[];
  spans: Row[];
  queues: Row[];
}

function call(
  call_id: string,
  queue: string,
  agent_id: string | null,
  times: { start: string; answer?: string; end?: string },
  outcome: string,
  wait_s: string | null,
  talk_s: string | null,
  event_count: number,
): Row {
  return {
    call_id, source_id: 'sw-voice-1', media: 'voice', direction: 'inbound', queue, agent_id,
    start_ts: at(times.start), answer_ts: times.answer ? at(times.answer) : null,
    end_ts: times.end ? at(times.end) : null, outcome, wait_s, talk_s, event_count,
  };
}

function event(call_id: string, seq: number, name: string, ts: string, member_id: string, discard_reason: string | null = null): Row {
  return {
    call_id, seq, source_id: 'sw-voice-1', event: name, event_ts: at(ts), media: 'voice', direction: 'inbound',
    queue: null, agent_id: null, attrs: '{}', member_id, quality: member_id.endsWith('dc1') ? 1 : 2, discard_reason,
  };
}

function span(agent_id: string, seq: number, state: string, start: string, end: string | null): Row {
  return { source_id: 'sw-voice-1', agent_id, seq, state, reason: null, start_ts: at(start), end_ts: end ? at(end) : null };
}

function queueRow(queue: string, interval_start: string, offered: number, answered: number, abandoned: number, wait: string, talk: string): Row {
  return { queue, interval_start, offered, answered, abandoned, answered_in_sl: answered, total_wait_s: wait, total_talk_s: talk };
}

/**
 * The facts as the given site's mart would hold them. Columns that are not facts
 * (member_id, quality) differ per site, and dc2 staged a discarded event dc1 never saw:
 * neither may count as a difference. Queue names differ in case so that C and ICU
 * collations order them differently.
 */
function facts(site: 'dc1' | 'dc2'): Facts {
  const member = `idb-voice-1-${site}`;
  const events = [
    event(C.c1, 1, 'created', '10:01:00', member),
    event(C.c1, 2, 'queued', '10:01:00.5', member),
    event(C.c1, 3, 'established', '10:01:07.123456', member),
    event(C.c1, 4, 'released', '10:05:00', member),
    event(C.c2, 1, 'created', '10:03:00', member),
    event(C.c2, 2, 'queued', '10:03:01', member),
    event(C.c2, 3, 'abandoned', '10:04:00', member),
    event(C.c3, 1, 'created', '10:15:00', member),
    event(C.c3, 2, 'established', '10:15:05', member),
    event(C.c3, 3, 'released', '10:20:00', member),
    event(C.c4, 1, 'created', '10:16:00', member),
    event(C.c4, 2, 'established', '10:16:10', member),
    event(C.c4, 3, 'transferred', '10:18:00', member),
    event(C.c5, 1, 'created', '10:31:00', member),
  ];
  if (site === 'dc2') events.push(event(C.c4, 9, 'bogus', '10:17:00', member, 'unknown event'));
  return {
    calls: [
      call(C.c1, 'Sales', 'alice', { start: '10:01:00', answer: '10:01:07.123456', end: '10:05:00' }, 'answered', '7.123', '232.877', 4),
      call(C.c2, 'billing', null, { start: '10:03:00', end: '10:04:00' }, 'abandoned', '60.000', null, 3),
      call(C.c3, 'Sales', 'bob', { start: '10:15:00', answer: '10:15:05', end: '10:20:00' }, 'answered', '5.000', '295.000', 3),
      call(C.c4, 'billing', 'alice', { start: '10:16:00', answer: '10:16:10', end: '10:18:00' }, 'transferred', '10.000', '110.000', 3),
      call(C.c5, 'Sales', null, { start: '10:31:00' }, 'in_progress', null, null, 1),
    ],
    events,
    spans: [
      span('alice', 1, 'ready', '10:00:00', '10:01:07.123456'),
      span('alice', 2, 'talking', '10:01:07.123456', '10:05:00'),
      span('Bob', 1, 'ready', '10:00:30', '10:15:05'),
      span('bob', 1, 'ready', '10:10:00', '10:15:05'),
      span('bob', 2, 'talking', '10:15:05', '10:20:00'),
      span('alice', 3, 'ready', '10:30:00', null),
    ],
    queues: [
      queueRow('Sales', I0, 1, 1, 0, '7.123', '232.877'),
      queueRow('billing', I0, 1, 0, 1, '60.000', '0.000'),
      queueRow('Sales', I1, 1, 1, 0, '5.000', '295.000'),
      queueRow('billing', I1, 1, 1, 0, '10.000', '110.000'),
      queueRow('Sales', I2, 1, 0, 0, '0.000', '0.000'),
    ],
  };
}

/** Test-owned table and column names only; values always go as parameters. */
async function insert(client: PoolClient, table: string, rows: Row[]): Promise<void> {
  for (const row of rows) {
    const columns = Object.keys(row);
    const params = columns.map((_, i) => `$${i + 1}`);
    await client.query(`insert into ${table} (${columns.join(', ')}) values (${params.join(', ')})`, Object.values(row));
  }
}

/** dc1 loads in order; dc2 in reverse and table by table in another order, so every surrogate id differs. */
async function load(pool: Pool, site: 'dc1' | 'dc2'): Promise<void> {
  const f = facts(site);
  await withTransaction(pool, async (client) => {
    if (site === 'dc1') {
      await insert(client, 'interaction_fact', f.calls);
      await insert(client, 'stg_call_event', f.events);
      await insert(client, 'agent_state_fact', f.spans);
      await insert(client, 'ag_queue_15min', f.queues);
    } else {
      await insert(client, 'ag_queue_15min', f.queues.reverse());
      await insert(client, 'agent_state_fact', f.spans.reverse());
      await insert(client, 'stg_call_event', f.events.reverse());
      await insert(client, 'interaction_fact', f.calls.reverse());
    }
  });
}

async function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  return withPgClient(`${SERVER}/postgres`, fn);
}

/** With ICU available, dc2 gets a linguistic collation so text ordering differs from dc1's. */
async function createDatabase(name: string, linguistic: boolean): Promise<void> {
  await admin(async (c) => {
    const icu = linguistic && (await c.query(`select 1 from pg_collation where collprovider = 'i' limit 1`)).rowCount;
    await c.query(
      icu
        ? `create database ${name} template template0 locale_provider icu icu_locale 'und' encoding 'UTF8'`
        : `create database ${name}`,
    );
  });
}

function mismatchSummary(report: ParityReport) {
  return report.mismatches.map((m) => ({ kind: m.kind, interval: m.interval, differences: m.differences, examples: m.examples }));
}

describe('compareMarts', () => {
  const suffix = `${process.pid}_${randomUUID().slice(0, 8)}`;
  const names = { dc1: `twinmart_parity_dc1_${suffix}`, dc2: `twinmart_parity_dc2_${suffix}` };
  const pools = new Pools();
  // Different session time zones (one not on a 15-minute offset) and date styles must not change any text.
  const dc1 = () => ({ name: 'dc1', pool: pools.get(`${SERVER}/${names.dc1}`, { options: '-c TimeZone=America/New_York' }) });
  const dc2 = () => ({
    name: 'dc2',
    pool: pools.get(`${SERVER}/${names.dc2}`, { options: '-c TimeZone=Asia/Kathmandu -c DateStyle=SQL,DMY' }),
  });
  const planned = 5;
  let passed = 0;

  before(async () => {
    await createDatabase(names.dc1, false);
    await createDatabase(names.dc2, true);
    await migrateMart(dc1().pool);
    await migrateMart(dc2().pool);
    await load(dc1().pool, 'dc1');
    await load(dc2().pool, 'dc2');
  });

  after(async () => {
    await pools.end();
    if (passed === planned) {
      await admin(async (c) => {
        for (const name of Object.values(names)) await c.query(`drop database if exists ${name} with (force)`);
      });
    } else {
      process.stderr.write(`parity: databases ${names.dc1} and ${names.dc2} kept for inspection\n`);
    }
  });

  test('identical facts under different surrogate keys match', async () => {
    const ids = async (pool: Pool) =>
      (await pool.query<{ id: string }>('select interaction_id::text as id from interaction_fact order by call_id')).rows.map((r) => r.id);
    assert.notDeepEqual(await ids(dc1().pool), await ids(dc2().pool), 'the premise: surrogate keys differ');

    const report = await compareMarts(dc1(), dc2(), { closedBefore: CLOSED_BEFORE });
    assert.deepEqual(report.mismatches, []);
    assert.equal(report.match, true);
    assert.equal(report.closedBefore, '2024-03-01T10:40:00.000Z');
    assert.equal(report.intervalsCompared, 2);
    const closedCounts = { calls: 4, events: 13, agentSpans: 5, queueRows: 4 };
    assert.deepEqual(report.counts, { a: closedCounts, b: closedCounts });
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON');
    passed++;
  });

  test('reports exactly the differing natural keys of closed intervals', async () => {
    await withTransaction(dc2().pool, async (c) => {
      await c.query('delete from interaction_fact where call_id = $1', [C.c2]);
      await c.query('delete from stg_call_event where call_id = $1', [C.c2]);
      await c.query(`update interaction_fact set outcome = 'abandoned' where call_id = $1`, [C.c3]);
      await c.query('update ag_queue_15min set answered = answered - 1 where queue = $1 and interval_start = $2', ['Sales', I1]);
      // Still open at CLOSED_BEFORE: the marts may be at different points of loading it.
      await c.query(`update interaction_fact set outcome = 'abandoned' where call_id = $1`, [C.c5]);
      await c.query('delete from ag_queue_15min where interval_start = $1', [I2]);
      await c.query(`update agent_state_fact set state = 'not_ready' where agent_id = 'alice' and seq = 3`);
    });

    const report = await compareMarts(dc1(), dc2(), { closedBefore: CLOSED_BEFORE });
    assert.equal(report.match, false);
    assert.deepEqual(mismatchSummary(report), [
      { kind: 'interaction_fact', interval: I0, differences: { onlyInA: 1, onlyInB: 0, changed: 0 }, examples: [C.c2] },
      {
        kind: 'stg_call_event',
        interval: I0,
        differences: { onlyInA: 3, onlyInB: 0, changed: 0 },
        examples: [`${C.c2}/1`, `${C.c2}/2`, `${C.c2}/3`],
      },
      { kind: 'interaction_fact', interval: I1, differences: { onlyInA: 0, onlyInB: 0, changed: 1 }, examples: [C.c3] },
      {
        kind: 'ag_queue_15min',
        interval: I1,
        differences: { onlyInA: 0, onlyInB: 0, changed: 1 },
        examples: ['Sales/2024-03-01T10:15:00.000000Z'],
      },
    ]);
    const [missingCall] = report.mismatches;
    assert.equal(missingCall!.a.rows, 2);
    assert.equal(missingCall!.b.rows, 1);
    assert.notEqual(missingCall!.a.checksum, missingCall!.b.checksum);
    assert.deepEqual(report.counts.a, { calls: 4, events: 13, agentSpans: 5, queueRows: 4 });
    assert.deepEqual(report.counts.b, { calls: 3, events: 10, agentSpans: 5, queueRows: 4 });
    passed++;
  });

  test('an interval is compared as soon as it has ended', async () => {
    const stillOpen = await compareMarts(dc1(), dc2(), { closedBefore: new Date('2024-03-01T10:44:59.999Z'), from: new Date(I2) });
    assert.equal(stillOpen.intervalsCompared, 0);
    assert.equal(stillOpen.match, true);

    const ended = await compareMarts(dc1(), dc2(), { closedBefore: new Date('2024-03-01T10:45:00Z'), from: new Date(I2) });
    assert.deepEqual(
      ended.mismatches.map((m) => [m.kind, m.interval, m.examples]),
      [
        ['interaction_fact', I2, [C.c5]],
        ['agent_state_fact', I2, ['sw-voice-1/alice/3']],
        ['ag_queue_15min', I2, [`Sales/2024-03-01T10:30:00.000000Z`]],
      ],
    );
    passed++;
  });

  test('from and maxExamples narrow the report', async () => {
    const report = await compareMarts(dc1(), dc2(), {
      closedBefore: CLOSED_BEFORE,
      from: new Date('2024-03-01T10:07:00Z'), // inside I0: the whole of I0 is compared
      maxExamples: 2,
    });
    assert.equal(report.from, '2024-03-01T10:07:00.000Z');
    assert.equal(report.intervalsCompared, 2);
    const events = report.mismatches.find((m) => m.kind === 'stg_call_event');
    assert.deepEqual(events?.examples, [`${C.c2}/1`, `${C.c2}/2`]);
    assert.equal(events?.differences.onlyInA, 3);

    const later = await compareMarts(dc1(), dc2(), { closedBefore: CLOSED_BEFORE, from: new Date(I1) });
    assert.equal(later.intervalsCompared, 1);
    assert.deepEqual(
      later.mismatches.map((m) => [m.kind, m.interval]),
      [
        ['interaction_fact', I1],
        ['ag_queue_15min', I1],
      ],
    );
    await assert.rejects(compareMarts(dc1(), dc2(), { closedBefore: CLOSED_BEFORE, maxExamples: -1 }), RangeError);
    passed++;
  });

  test('formatParityReport shows counts side by side and each mismatch with its examples', async () => {
    const report = await compareMarts(dc1(), dc2(), { closedBefore: CLOSED_BEFORE, maxExamples: 1 });
    const text = formatParityReport(report);
    assert.match(text, /^parity dc1 vs dc2: MISMATCH$/m);
    assert.match(text, /2 closed 15-minute intervals compared before 2024-03-01T10:40:00.000Z/);
    assert.match(text, /^ {2}calls +4 +3 {2}\*$/m);
    assert.match(text, /^ {2}agent spans +5 +5$/m);
    assert.match(text, new RegExp(`${I0} {2}stg_call_event: 7 vs 4 rows; 3 only in dc1, 0 only in dc2, 0 changed\\n {4}${C.c2}/1\\n {4}… and 2 more`));
    assert.match(text, /^mismatches \(4\):$/m);
    passed++;
  });
});
