/**
 * The simulator against a real PostgreSQL: every test creates its own databases and
 * drops them only when it passed, so a failure leaves its evidence behind.
 */
import assert from 'node:assert/strict';
import { withPgClient } from './helpers/pg';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type TestContext, test } from 'node:test';
import { type Config, parseConfig } from '../src/config';
import { type Logger, silentLogger } from '../src/logger';
import { type SimResult, SimOptionsError, applyIdbSchema, runSim } from '../src/sim';
import { resolveSimPlan } from '../src/sim/plan';

const SERVER = process.env.TWINMART_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432';
const START = new Date('2025-03-03T08:00:00Z');
const DAY_MS = 86_400_000;


/** Creates `count` throwaway databases; drops them only if `fn` succeeds. */
async function withDatabases<T>(t: TestContext, count: number, fn: (urls: string[]) => Promise<T>): Promise<T> {
  const run = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const names = Array.from({ length: count }, (_, i) => `twinmart_sim_${run}_${i}`);
  await withPgClient(`${SERVER}/postgres`, async (c) => {
    for (const name of names) await c.query(`create database ${name}`);
  });
  let result: T;
  try {
    result = await fn(names.map((n) => `${SERVER}/${n}`));
  } catch (e) {
    t.diagnostic(`databases kept for inspection: ${names.join(', ')}`);
    throw e;
  }
  await withPgClient(`${SERVER}/postgres`, async (c) => {
    for (const name of names) await c.query(`drop database ${name} with (force)`);
  });
  return result;
}

/** sets: data source id -> member IDB URLs; members are named `<source>-m<i>` at sites dc1, dc2, … */
function simConfig(sets: Record<string, string[]>): Config {
  return parseConfig(
    {
      temporal: {},
      reporting: { primary: 'dc1' },
      sites: {
        dc1: { mart: `${SERVER}/unused_mart_1`, reportingPort: 8401 },
        dc2: { mart: `${SERVER}/unused_mart_2`, reportingPort: 8402 },
      },
      sources: Object.fromEntries(
        Object.entries(sets).map(([source, urls]) => [
          source,
          urls.map((url, i) => ({ id: `${source}-m${i + 1}`, site: `dc${(i % 2) + 1}`, url })),
        ]),
      ),
    },
    'sim.test',
    {},
  );
}

interface CallRow {
  call_id: string;
  seq: number;
  source_id: string;
  event: string;
  ts: number;
  media: string;
  direction: string;
  ani: string | null;
  dnis: string | null;
  queue: string | null;
  agent_id: string | null;
  attrs: string;
  dss_id: number | null;
  xid: number;
}

interface AgentRow {
  agent_id: string;
  seq: number;
  source_id: string;
  event: string;
  ts: number;
  reason: string | null;
  dss_id: number | null;
  xid: number;
}

interface SessionRow {
  dss_id: number;
  collector: string;
  source_id: string;
  conn_start: number;
  conn_end: number | null;
  conn_type: number;
}

interface Dump {
  calls: CallRow[];
  agents: AgentRow[];
  sessions: SessionRow[];
}

const epochMs = (col: string): string => `(extract(epoch from ${col}) * 1000)::float8`;

async function dump(url: string): Promise<Dump> {
  return withPgClient(url, async (c) => {
    const calls = await c.query<CallRow>(
      `select call_id::text, seq, source_id, event, ${epochMs('event_ts')} as ts, media, direction, ani, dnis,
              queue, agent_id, attrs::text, dss_id::int, xid::text::bigint::float8 as xid
         from idb.call_event order by call_id, seq`,
    );
    const agents = await c.query<AgentRow>(
      `select agent_id, seq, source_id, event, ${epochMs('event_ts')} as ts, reason, dss_id::int,
              xid::text::bigint::float8 as xid
         from idb.agent_event order by source_id, agent_id, seq`,
    );
    const sessions = await c.query<SessionRow>(
      `select dss_id::int, collector, source_id, ${epochMs('conn_start')} as conn_start,
              ${epochMs('conn_end')} as conn_end, conn_type
         from idb.dss_session order by dss_id`,
    );
    return { calls: calls.rows, agents: agents.rows, sessions: sessions.rows };
  });
}

/** The rows without what is local to one IDB (surrogate id, transaction, session). */
function content(d: Dump): { calls: unknown[]; agents: unknown[] } {
  return {
    calls: d.calls.map(({ dss_id: _d, xid: _x, ...row }) => row),
    agents: d.agents.map(({ dss_id: _d, xid: _x, ...row }) => row),
  };
}

const callKey = (r: { call_id: string; seq: number }): string => `${r.call_id}/${r.seq}`;

function groupBy<T>(rows: T[], key: (r: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return groups;
}

const CALL_EVENTS = new Set([
  'created', 'queued', 'routed', 'established', 'held', 'retrieved', 'transferred', 'released', 'abandoned',
]);

/** The shape of a call and an agent's life, as docs/contracts.md describes it. */
function assertPlausible(d: Dump, media: string): void {
  const calls = groupBy(d.calls, (r) => r.call_id);
  const outcomes = { released: 0, abandoned: 0 };
  for (const [callId, rows] of calls) {
    assert.deepEqual(rows.map((r) => r.seq), rows.map((_, i) => i + 1), `call ${callId}: seq 1..n`);
    assert.equal(rows[0]!.event, 'created', `call ${callId} starts with created`);
    const last = rows[rows.length - 1]!.event as 'released' | 'abandoned';
    assert.ok(last === 'released' || last === 'abandoned', `call ${callId} ends with ${last}`);
    outcomes[last]++;
    for (const [i, r] of rows.entries()) {
      assert.ok(CALL_EVENTS.has(r.event), `call ${callId}: event ${r.event}`);
      assert.equal(r.media, media);
      assert.match(r.call_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      if (i > 0) assert.ok(r.ts >= rows[i - 1]!.ts, `call ${callId}: event times in order`);
      if (r.event === 'established') assert.ok(r.agent_id && r.queue, `call ${callId}: established has queue and agent`);
    }
  }
  assert.ok(outcomes.released > 0 && outcomes.abandoned > 0, `both outcomes occur: ${JSON.stringify(outcomes)}`);

  const leftCalls = new Map<string, number>(); // agent -> releases and transfers it handled
  for (const r of d.calls) {
    if ((r.event === 'released' || r.event === 'transferred') && r.agent_id) {
      leftCalls.set(r.agent_id, (leftCalls.get(r.agent_id) ?? 0) + 1);
    }
  }
  for (const [agentId, rows] of groupBy(d.agents, (r) => r.agent_id)) {
    assert.deepEqual(rows.map((r) => r.seq), rows.map((_, i) => i + 1), `agent ${agentId}: seq 1..n`);
    assert.equal(rows[0]!.event, 'login');
    assert.equal(rows[rows.length - 1]!.event, 'logout');
    const acw = rows.filter((r) => r.event === 'after_call_work').length;
    assert.equal(acw, leftCalls.get(agentId) ?? 0, `agent ${agentId}: one after_call_work per call it finished`);
    rows.forEach((r, i) => {
      if (r.event === 'not_ready') assert.ok(r.reason, 'not_ready carries a reason');
      if (r.event === 'after_call_work') assert.match(rows[i + 1]!.event, /^(ready|not_ready|logout)$/);
    });
  }
}

function member(result: SimResult, memberId: string): SimResult['members'][number] {
  return result.members.find((m) => m.memberId === memberId)!;
}

test('applyIdbSchema installs the IDB schema and is idempotent', async (t) => {
  await withDatabases(t, 1, async ([url]) => {
    await applyIdbSchema(url!);
    await applyIdbSchema(url!);
    const { rows } = await withPgClient(url!, (c) =>
      c.query<{ n: number }>(`select count(*)::int as n from idb.meta`),
    );
    assert.equal(rows[0]!.n, 1);
  });
});

test('every member of an HA set gets the same natural keys and content', async (t) => {
  await withDatabases(t, 4, async (urls) => {
    const config = simConfig({ 'sw-voice-1': [urls[0]!, urls[1]!], 'sw-chat-1': [urls[2]!, urls[3]!] });
    const result = await runSim(
      config,
      { calls: 300, rate: 0.2, seed: 11, startTs: START, agentsPerSource: 6, batchSize: 250 },
      silentLogger,
    );
    assert.equal(result.calls, 300);
    assert.equal(result.mode, 'backfill');
    for (const [source, media, [a, b]] of [
      ['sw-voice-1', 'voice', [urls[0]!, urls[1]!]],
      ['sw-chat-1', 'chat', [urls[2]!, urls[3]!]],
    ] as const) {
      const [da, db] = [await dump(a), await dump(b)];
      assert.deepEqual(content(da), content(db), `${source}: members hold the same rows`);
      assert.ok(da.calls.length > 0 && da.agents.length > 0);
      assertPlausible(da, media);
      const generated = result.sources.find((s) => s.sourceId === source)!;
      for (const [i, d] of [da, db].entries()) {
        const memberId = `${source}-m${i + 1}`;
        assert.deepEqual(d.sessions.map(({ dss_id: _, ...s }) => s), [
          { collector: memberId, source_id: source, conn_start: START.getTime(), conn_end: null, conn_type: 1 },
        ]);
        const dss = d.sessions[0]!.dss_id;
        assert.ok([...d.calls, ...d.agents].every((r) => r.dss_id === dss && r.source_id === source));
        assert.deepEqual(member(result, memberId), {
          memberId,
          sourceId: source,
          site: `dc${i + 1}`,
          callEvents: generated.callEvents,
          agentEvents: generated.agentEvents,
          sessions: 1,
          skippedGap: 0,
          skippedUnreachable: 0,
        });
        assert.equal(d.calls.length, generated.callEvents);
        assert.equal(d.agents.length, generated.agentEvents);
      }
    }
  });
});

test('divergent: one member of the set records a share of events with attached data of its own, the same traffic otherwise', async (t) => {
  await withDatabases(t, 4, async (urls) => {
    const options = { calls: 300, rate: 0.2, seed: 11, startTs: START, agentsPerSource: 6 };
    await runSim(simConfig({ 'sw-voice-1': [urls[0]!, urls[1]!] }), { ...options, divergent: 0.1 }, silentLogger);
    await runSim(simConfig({ 'sw-voice-1': [urls[2]!, urls[3]!] }), options, silentLogger);
    const [a, b, plain] = [await dump(urls[0]!), await dump(urls[1]!), await dump(urls[2]!)];
    const strip = (r: CallRow) => ({ ...r, dss_id: null, xid: 0, attrs: JSON.stringify({ ...JSON.parse(r.attrs), recordedBy: undefined }) });
    assert.deepEqual(a.calls.map(strip), plain.calls.map(strip), 'the same events as without divergence, apart from the variant');
    assert.deepEqual(b.calls.map(callKey), a.calls.map(callKey), 'both members hold every event');
    const variants = [a, b].map((d) => d.calls.filter((r) => 'recordedBy' in JSON.parse(r.attrs)));
    const share = (variants[0]!.length + variants[1]!.length) / a.calls.length;
    assert.ok(share > 0.06 && share < 0.14, `about a tenth of the events recorded differently, got ${share}`);
    assert.ok(variants.every((v) => v.length > 0), 'by either member');
    const mine = new Set(variants[0]!.map(callKey));
    assert.ok(!variants[1]!.some((r) => mine.has(callKey(r))), 'one member per event');
    assert.ok(variants[0]!.every((r) => JSON.parse(r.attrs).recordedBy === 'member 0'));
    await assert.rejects(runSim(simConfig({ 'sw-voice-1': [urls[0]!] }), { ...options, divergent: 2 }, silentLogger), /divergent: expected a share from 0 to 1, got 2/);
  });
});

test('a gap leaves exactly its window missing in that member, with a closed session and a reconnect', async (t) => {
  await withDatabases(t, 2, async ([a, b]) => {
    const config = simConfig({ 'sw-voice-1': [a!, b!] });
    const result = await runSim(
      config,
      {
        calls: 200,
        rate: 0.5,
        seed: 3,
        startTs: START,
        agentsPerSource: 10,
        batchSize: 100,
        gaps: [{ memberId: 'sw-voice-1-m2', afterCalls: 60, calls: 40 }],
      },
      silentLogger,
    );
    const gap = result.gaps[0]!;
    const [start, end] = [gap.start.getTime(), gap.end.getTime()];
    assert.ok(start > START.getTime() && end > start);
    const [da, db] = [await dump(a!), await dump(b!)];
    const inGap = (r: { ts: number }): boolean => r.ts >= start && r.ts < end;

    // The member holds exactly its partner's rows outside the window, with the same content.
    const outside = content({ ...da, calls: da.calls.filter((r) => !inGap(r)), agents: da.agents.filter((r) => !inGap(r)) });
    assert.deepEqual(content(db), outside);
    const missing = da.calls.filter(inGap).length + da.agents.filter(inGap).length;
    assert.ok(missing > 50, `the window holds events (${missing})`);
    assert.equal(member(result, 'sw-voice-1-m2').skippedGap, missing);
    assert.equal(member(result, 'sw-voice-1-m1').skippedGap, 0);

    // Its sessions: the first closed at the gap start, a reconnect opened at the gap end.
    assert.deepEqual(db.sessions.map(({ dss_id: _, collector: __, source_id: ___, ...s }) => s), [
      { conn_start: START.getTime(), conn_end: start, conn_type: 1 },
      { conn_start: end, conn_end: null, conn_type: 2 },
    ]);
    const [first, second] = db.sessions.map((s) => s.dss_id);
    for (const r of [...db.calls, ...db.agents]) assert.equal(r.dss_id, r.ts < start ? first : second);
    assert.equal(da.sessions.length, 1, 'the partner stayed connected');
  });
});

test('a late commit is invisible until its hold ends, then present', async (t) => {
  await withDatabases(t, 2, async ([a, b]) => {
    const config = simConfig({ 'sw-voice-1': [a!, b!] });
    const holdMs = 1500;
    const running = runSim(
      config,
      {
        calls: 200,
        rate: 0.5,
        seed: 5,
        startTs: START,
        agentsPerSource: 10,
        batchSize: 100,
        lateCommits: [{ memberId: 'sw-voice-1-m2', afterCalls: 60, calls: 40, holdMs }],
      },
      silentLogger,
    );
    // Watch the member while the run goes on; the window is known from the result afterwards.
    const snapshots: number[][] = [];
    let finished = false;
    void running.finally(() => (finished = true)).catch(() => {});
    await withPgClient(b!, async (c) => {
      while (!finished) {
        const { rows } = await c
          .query<{ ts: number }>(`select ${epochMs('event_ts')} as ts from idb.call_event`)
          .catch(() => ({ rows: [] as { ts: number }[] }));
        snapshots.push(rows.map((r) => r.ts));
        await sleep(25);
      }
    });
    const result = await running;
    const late = result.lateCommits[0]!;
    const [start, end] = [late.start.getTime(), late.end.getTime()];
    const held = snapshots.filter((s) => s.some((ts) => ts >= end) && !s.some((ts) => ts >= start && ts < end));
    assert.ok(held.length >= 5, `later rows were visible while the window's were not (${held.length} snapshots)`);
    assert.ok(late.committedAt && late.committedAt.getTime() - result.startedAt.getTime() >= holdMs);

    const [da, db] = [await dump(a!), await dump(b!)];
    assert.deepEqual(content(db), content(da), 'after the commit the member holds everything');
    const inWindow = (r: { ts: number }): boolean => r.ts >= start && r.ts < end;
    const lateRows = [...db.calls, ...db.agents].filter(inWindow);
    assert.equal(late.rows, lateRows.length);
    // One old transaction: its xid is below that of rows committed before it.
    assert.equal(new Set(lateRows.map((r) => r.xid)).size, 1);
    const after = [...db.calls, ...db.agents].filter((r) => r.ts >= end);
    assert.ok(after.some((r) => r.xid > lateRows[0]!.xid));
    const partner = member(result, 'sw-voice-1-m1');
    assert.deepEqual(member(result, 'sw-voice-1-m2'), { ...partner, memberId: 'sw-voice-1-m2', site: 'dc2' });
  });
});

test('malformed rows are in every member, as reported', async (t) => {
  await withDatabases(t, 2, async ([a, b]) => {
    const config = simConfig({ 'sw-voice-1': [a!, b!] });
    const result = await runSim(
      config,
      {
        calls: 150,
        rate: 0.5,
        seed: 9,
        startTs: START,
        agentsPerSource: 10,
        malformed: { unknownEvent: 3, outOfOrder: 2, absurdDuration: 2 },
      },
      silentLogger,
    );
    const kinds = result.malformed.map((m) => m.kind).sort();
    assert.deepEqual(kinds, [
      'absurdDuration', 'absurdDuration', 'outOfOrder', 'outOfOrder', 'unknownEvent', 'unknownEvent', 'unknownEvent',
    ]);
    assert.equal(new Set(result.malformed.map((m) => m.callId)).size, 7, 'one malformed row per call');
    const reported = (kind: string): string[] =>
      result.malformed.filter((m) => m.kind === kind).map((m) => `${m.callId}/${m.seq}`).sort();

    for (const url of [a!, b!]) {
      const d = await dump(url);
      const byKey = new Map(d.calls.map((r) => [callKey(r), r]));
      for (const m of result.malformed) {
        const row = byKey.get(`${m.callId}/${m.seq}`)!;
        assert.equal(row.event, m.event);
        assert.equal(row.ts, m.eventTs.getTime());
      }
      // What the database shows as anomalies is exactly what was reported.
      const unknown = d.calls.filter((r) => !CALL_EVENTS.has(r.event));
      assert.deepEqual(unknown.map(callKey).sort(), reported('unknownEvent'));
      assert.ok(unknown.every((r) => r.event === 'teleported'));
      const outOfOrder = d.calls.filter((r) => r.seq > 1 && r.ts < byKey.get(`${r.call_id}/${r.seq - 1}`)!.ts);
      assert.deepEqual(outOfOrder.map(callKey).sort(), reported('outOfOrder'));
      const created = new Map(d.calls.filter((r) => r.seq === 1).map((r) => [r.call_id, r.ts]));
      const absurd = d.calls.filter((r) => r.ts - created.get(r.call_id)! > DAY_MS);
      assert.deepEqual(absurd.map(callKey).sort(), reported('absurdDuration'));
      for (const r of absurd) {
        assert.equal(r.event, 'released');
        assert.equal(r.ts - created.get(r.call_id)!, 40 * DAY_MS);
      }
    }
  });
});

test('the same seed gives the same data, another seed other data', async (t) => {
  await withDatabases(t, 3, async (urls) => {
    const results: SimResult[] = [];
    for (const [i, seed] of [42, 42, 43].entries()) {
      const config = simConfig({ 'sw-voice-1': [urls[i]!] });
      results.push(await runSim(config, { calls: 150, rate: 1, seed, startTs: START, agentsPerSource: 8 }, silentLogger));
    }
    const [d1, d2, d3] = [await dump(urls[0]!), await dump(urls[1]!), await dump(urls[2]!)];
    assert.deepEqual(content(d1), content(d2));
    assert.deepEqual(results[0]!.sources, results[1]!.sources);
    const ids = new Set(d1.calls.map((r) => r.call_id));
    assert.ok(!d3.calls.some((r) => ids.has(r.call_id)), 'another seed, other call ids');
  });
});

test('an unreachable member is skipped and counted; its partner gets everything', async (t) => {
  await withDatabases(t, 1, async ([a]) => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message, meta) => warnings.push(`${message} ${JSON.stringify(meta)}`) };
    const config = simConfig({ 'sw-voice-1': [a!, 'postgres://postgres@127.0.0.1:1/nowhere'] });
    const result = await runSim(config, { calls: 100, rate: 1, seed: 1, startTs: START, agentsPerSource: 8 }, logger);
    const generated = result.sources[0]!;
    const total = generated.callEvents + generated.agentEvents;
    assert.equal(member(result, 'sw-voice-1-m1').callEvents, generated.callEvents);
    const { callEvents, agentEvents, sessions, skippedUnreachable } = member(result, 'sw-voice-1-m2');
    assert.deepEqual(
      { callEvents, agentEvents, sessions, skippedUnreachable },
      { callEvents: 0, agentEvents: 0, sessions: 0, skippedUnreachable: total },
    );
    assert.ok(warnings.some((w) => w.includes('sw-voice-1-m2') && w.includes('unreachable')), warnings.join('\n'));
    const d = await dump(a!);
    assert.equal(d.calls.length + d.agents.length, total);
  });
});

test('real time stamps events with the wall clock and stops cleanly on abort', async (t) => {
  await withDatabases(t, 1, async ([a]) => {
    const config = simConfig({ 'sw-voice-1': [a!] });
    const abort = new AbortController();
    const progress: number[] = [];
    setTimeout(() => abort.abort(), 1200).unref();
    const result = await runSim(
      config,
      { calls: 100_000, rate: 20, seed: 2, agentsPerSource: 30, onProgress: (p) => progress.push(p.events) },
      silentLogger,
      abort.signal,
    );
    assert.equal(result.mode, 'realtime');
    assert.ok(result.aborted);
    assert.ok(result.calls > 5 && result.calls < 100, `calls started in about a second: ${result.calls}`);
    assert.ok(progress.length > 3, 'progress reported as batches go');
    const d = await dump(a!);
    const m = member(result, 'sw-voice-1-m1');
    assert.equal(d.calls.length, m.callEvents);
    assert.equal(d.agents.length, m.agentEvents);
    assert.equal(m.callEvents, result.sources[0]!.callEvents, 'everything generated before the abort was written');
    for (const r of [...d.calls, ...d.agents]) {
      assert.ok(r.ts >= result.startedAt.getTime() && r.ts <= result.finishedAt.getTime(), 'stamped with the wall clock');
    }
    assert.equal(d.sessions.length, 1);
  });
});

test('real time with history writes the first minutes at once, stamped in the past, then goes on in real time', async (t) => {
  await withDatabases(t, 1, async ([a]) => {
    const config = simConfig({ 'sw-voice-1': [a!] });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 2500).unref();
    const result = await runSim(
      config,
      { calls: 100_000, rate: 20, seed: 3, agentsPerSource: 30, historySeconds: 120, onProgress: () => undefined },
      silentLogger,
      abort.signal,
    );
    assert.equal(result.mode, 'realtime');
    assert.ok(result.aborted);
    const started = result.startedAt.getTime();
    assert.equal(result.simStart.getTime(), started - 120_000, 'event time starts 120 s before the wall clock');
    const d = await dump(a!);
    const rows = [...d.calls, ...d.agents];
    // About 20 calls/s over 120 s: some 2,400 calls written at once.
    const pastCalls = new Set(d.calls.filter((r) => r.ts < started).map((r) => r.call_id)).size;
    assert.ok(pastCalls > 120 * 20 * 0.8, `history written: ${pastCalls} calls stamped before the start`);
    assert.ok(rows.some((r) => r.ts < started - 110_000), 'history reaches back to its first seconds');
    const live = rows.filter((r) => r.ts >= started);
    assert.ok(live.length > 0, 'traffic went on after the history');
    assert.ok(live.every((r) => r.ts <= result.finishedAt.getTime()), 'nothing stamped ahead of the wall clock');
    assert.ok(result.calls > 120 * 20 * 0.8 && result.calls < 125 * 20 * 1.2, `calls of about 122 s: ${result.calls}`);
  });
});

test('history in backfill mode is refused, naming the option', () => {
  const config = simConfig({ 'sw-voice-1': [`${SERVER}/unused`] });
  assert.throws(
    () => resolveSimPlan(config, { calls: 10, rate: 1, startTs: START, historySeconds: 60 }),
    (e: Error) => e instanceof SimOptionsError && /historySeconds/.test(e.message),
  );
});
