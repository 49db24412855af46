/**
 * The queue figures as supervisors read them, end to end on real PostgreSQL: calls are
 * staged as events, the real transform builds the facts and ag_queue_15min, and the
 * reporting service answers. Expected figures are worked out here from the calls listed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
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

/** One 15-minute interval, 10:00, of each queue. */
const CALLS: Call[] = [
  // waiting: one answered in 5 s, two still in queue.
  call(1, 'waiting', '10:00:00', ['established', '10:00:05'], ['released', '10:01:00']),
  call(2, 'waiting', '10:01:00'),
  call(3, 'waiting', '10:02:00'),
];

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
  await transformSite(world.mart, { batch: 1000, serviceLevelSeconds: 20, maxCallSeconds: 86_400 });
  port = await world.serve(reportConfig(world.url));
});

after(async () => world?.close(ok === 1));

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
