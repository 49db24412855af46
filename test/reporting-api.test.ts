/**
 * The reporting service's HTTP contract on real PostgreSQL: a throwaway mart (linguistic
 * collation, a session time zone 5:45 off UTC, so neither may leak into answers) filled
 * with facts, agent spans, queue intervals and staged events written directly in SQL.
 * Every figure the service answers is compared with one computed here in TypeScript from
 * the rows this file inserted. Also: the standby refusal and the switch to active, bad
 * parameters, unknown paths and static files, and a mart that is not there. The database
 * is dropped only when every test passed (else its name is printed).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, type Pool } from 'pg';
import { parseConfig, type Config } from '../src/config';
import { Pools, withPgClient } from '../src/db';
import type { Logger } from '../src/logger';
import { setReportingRole } from '../src/mart/control';
import { migrateMart } from '../src/mart/migrate';
import { repoRoot } from '../src/paths';
import { agentSummary } from '../src/reporting/queries';
import { createReportingServer, martSession, type ReportingServer } from '../src/reporting/server';
import { assertClose } from './helpers/close';

const SERVER = 'postgres://postgres@127.0.0.1:5432';
const DB = `twinmart_reporting_${process.pid}_${randomUUID().slice(0, 8)}`;
const MART_URL = `${SERVER}/${DB}`;
const SITE = 'dc1';
const SERVICE_LEVEL_SECONDS = 20;

const ts = (text: string): Date => new Date(text);
const at = (hhmmss: string, day = '2024-03-01'): Date => ts(`${day}T${hhmmss}Z`);

/** The report range most checks use: intervals 10:00, 10:15, 10:30 (10:45 starts at `to`). */
const RANGE = { from: at('10:00:00'), to: at('10:45:00') };
const rangeQuery = (r = RANGE) => `from=${r.from.toISOString()}&to=${r.to.toISOString()}`;

// ---------- the rows this file inserts ----------

interface QueueInterval {
  queue: string;
  start: Date;
  offered: number;
  answered: number;
  abandoned: number;
  inSl: number;
  /** Milliseconds, so that sums here are exact. */
  waitMs: number;
  talkMs: number;
}

const qi = (queue: string, hhmm: string, offered: number, answered: number, abandoned: number, inSl: number, waitMs: number, talkMs: number): QueueInterval => ({
  queue, start: at(`${hhmm}:00`), offered, answered, abandoned, inSl, waitMs, talkMs,
});

/** "Sales" sorts before "billing" bytewise, after it linguistically: the contract's order is the bytewise one. */
const QUEUE_INTERVALS: QueueInterval[] = [
  qi('billing', '09:45', 5, 4, 1, 3, 40_000, 600_000), // before the range
  qi('billing', '10:00', 10, 8, 2, 6, 95_500, 1_234_567),
  qi('sales', '10:00', 7, 7, 0, 7, 21_000, 900_001),
  qi('support', '10:00', 0, 0, 0, 0, 0, 0), // nothing offered: no service level, no averages
  qi('sales', '10:15', 3, 0, 3, 0, 45_250, 0), // nothing answered: no averages
  qi('support', '10:15', 12, 11, 1, 9, 130_125, 2_000_002),
  qi('billing', '10:30', 4, 3, 1, 1, 60_001, 333_333),
  qi('Sales', '10:30', 6, 5, 1, 4, 77_777, 555_555),
  qi('support', '10:45', 9, 9, 0, 9, 9_000, 90_000), // starts at `to`: outside
];

interface Fact {
  callId: string;
  sourceId: string;
  media: string;
  direction: string;
  queue: string | null;
  agentId: string | null;
  start: Date;
  answer: Date | null;
  end: Date | null;
  outcome: string;
  wait: number | null;
  talk: number | null;
  eventCount: number;
}

const callId = (n: number): string => `c0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function fact(n: number, f: Partial<Fact> & { start: Date }): Fact {
  return {
    callId: callId(n), sourceId: 'sw-voice-1', media: 'voice', direction: 'inbound', queue: 'sales', agentId: null,
    answer: null, end: null, outcome: 'in_progress', wait: null, talk: null, eventCount: 1, ...f,
  };
}

/** Calls answered by agents around the range (agent-summary). */
const AGENT_CALLS: Fact[] = [
  fact(101, { agentId: 'a1', start: at('09:59:00'), answer: at('09:59:59'), end: at('10:05:00'), outcome: 'answered', wait: 59, talk: 301 }),
  fact(102, { agentId: 'a1', start: at('09:59:30'), answer: at('10:00:00'), end: at('10:01:40.5'), outcome: 'answered', wait: 30, talk: 100.5 }),
  fact(103, { agentId: 'a1', start: at('10:19:00'), answer: at('10:20:00'), end: at('10:20:30.25'), outcome: 'transferred', wait: 60, talk: 30.25 }),
  fact(104, { agentId: 'a1', start: at('10:44:00'), answer: at('10:44:59.999'), end: at('10:45:12.124'), outcome: 'answered', wait: 59.999, talk: 12.125 }),
  fact(105, { agentId: 'a1', start: at('10:44:30'), answer: at('10:45:00'), end: at('10:46:00'), outcome: 'answered', wait: 30, talk: 60 }), // answered at `to`
  fact(106, { agentId: 'a2', start: at('10:09:00'), answer: at('10:10:00'), end: at('10:11:00'), outcome: 'answered', wait: 60, talk: 60 }),
  fact(107, { agentId: 'a2', start: at('10:29:00'), answer: at('10:30:00'), outcome: 'in_progress', wait: 60 }), // still talking
  fact(108, { agentId: 'a4', start: at('10:04:00'), answer: at('10:05:00'), outcome: 'in_progress', wait: 60 }),
  fact(109, { start: at('10:01:00'), end: at('10:03:00'), outcome: 'abandoned', wait: 120 }), // nobody answered
  fact(110, { agentId: 'a3', start: at('10:06:00'), end: at('10:07:00'), outcome: 'abandoned', wait: 60 }), // routed, never answered
];

interface Span {
  agentId: string;
  seq: number;
  state: string;
  start: Date;
  end: Date | null;
}

const span = (agentId: string, seq: number, state: string, start: Date, end: Date | null): Span => ({ agentId, seq, state, start, end });
const NOW = Date.now();
const ago = (minutes: number): Date => new Date(Math.floor(NOW / 1000) * 1000 - minutes * 60_000);

const SPANS: Span[] = [
  span('a1', 1, 'logged_in', at('09:00:00'), null), // open: ends at `to` for a past range
  span('a1', 2, 'ready', at('09:50:00'), at('10:05:00')), // crosses `from`
  span('a1', 3, 'not_ready', at('10:05:00'), at('10:20:00')),
  span('a1', 4, 'after_call_work', at('10:20:00'), at('10:50:00')), // crosses `to`
  span('a1', 5, 'ready', at('10:50:00'), at('11:00:00')), // after
  span('a2', 1, 'ready', at('08:00:00'), at('09:00:00')), // before
  span('a2', 2, 'logged_in', at('10:09:00'), at('10:40:00')),
  span('a2', 3, 'ready', at('10:10:00'), at('10:30:00')),
  span('a2', 4, 'not_ready', at('10:35:00'), at('10:25:00')), // ends before it starts (events out of order): no time
  span('a3', 1, 'not_ready', at('10:30:00'), null),
  span('a5', 1, 'ready', at('10:45:00'), at('11:00:00')), // starts at `to`: no time in range
  span('a6', 1, 'ready', at('09:30:00'), at('10:00:00')), // ends at `from`: no time in range
  // Around the real clock: an open span ends now when the range reaches past now.
  span('a7', 1, 'not_ready', ago(150), ago(90)),
  span('a7', 2, 'ready', ago(60), null),
];

interface StagedEvent {
  callId: string;
  seq: number;
  event: string;
  ts: Date;
  ani: string | null;
  queue: string | null;
  agentId: string | null;
  discardReason: string | null;
}

const ev = (n: number, seq: number, event: string, time: Date, extra: Partial<StagedEvent> = {}): StagedEvent => ({
  callId: callId(n), seq, event, ts: time, ani: null, queue: null, agentId: null, discardReason: null, ...extra,
});

const ANI = '+15551230001';
const BULK_ANI = '+15557770000';

/** Calls looked up by interactions, with their staged events. */
const LOOKUP_CALLS: Fact[] = [
  fact(1, { start: at('10:02:00'), answer: at('10:02:30'), end: at('10:04:30.125'), agentId: 'a1', outcome: 'answered', wait: 30, talk: 120.125, eventCount: 4 }),
  fact(2, { start: at('10:20:00'), end: at('10:21:00'), outcome: 'abandoned', wait: 60, eventCount: 3 }),
  fact(3, { start: at('10:25:00'), media: 'voice', direction: 'inbound', queue: 'support', outcome: 'in_progress', eventCount: 1 }),
  fact(4, { start: at('09:00:00', '2024-02-01'), end: at('09:01:00', '2024-02-01'), outcome: 'abandoned', wait: 60, eventCount: 2 }),
  fact(5, { start: at('10:30:00'), queue: 'billing', eventCount: 1 }),
  fact(6, { start: at('10:31:00'), direction: 'outbound', queue: null, eventCount: 2 }), // no staged events
  fact(7, { start: at('10:32:00'), eventCount: 2 }),
  ...Array.from({ length: 105 }, (_, i) =>
    fact(1000 + i, { start: new Date(at('00:00:00', '2024-03-02').getTime() + i * 60_000), queue: 'bulk', eventCount: 1 })),
];

const EVENTS: StagedEvent[] = [
  ev(1, 1, 'created', at('10:02:00'), { ani: ANI }),
  ev(1, 2, 'queued', at('10:02:00'), { ani: ANI, queue: 'sales' }),
  ev(1, 3, 'established', at('10:02:30'), { ani: ANI, queue: 'sales', agentId: 'a1' }),
  ev(1, 4, 'released', at('10:04:30.125'), { ani: ANI, queue: 'sales', agentId: 'a1' }),
  ev(1, 5, 'held', at('12:00:00', '2024-03-03'), { ani: ANI, discardReason: 'absurd duration' }),
  ev(2, 1, 'created', at('10:20:00'), { ani: ANI }),
  ev(2, 2, 'queued', at('10:20:01'), { ani: ANI, queue: 'sales' }),
  ev(2, 3, 'abandoned', at('10:21:00'), { ani: ANI, queue: 'sales' }),
  ev(3, 1, 'created', at('10:25:00'), { ani: '+15559990000', queue: 'support' }),
  ev(4, 1, 'created', at('09:00:00', '2024-02-01'), { ani: ANI }),
  ev(4, 2, 'abandoned', at('09:01:00', '2024-02-01'), { ani: ANI }),
  // Its first event carries ANI but was discarded: the call's ani is that of its first usable event.
  ev(5, 1, 'created', at('10:29:00'), { ani: ANI, discardReason: 'out of order' }),
  ev(5, 2, 'created', at('10:30:00'), { ani: '+15550000005', queue: 'billing' }),
  // A later event names ANI too, but the call's ani is its first one: an ANI lookup does not list it.
  ev(7, 1, 'created', at('10:32:00'), { ani: '+15550000007' }),
  ev(7, 2, 'transferred', at('10:33:00'), { ani: ANI }),
  ...Array.from({ length: 105 }, (_, i) => ev(1000 + i, 1, 'created', new Date(at('00:00:00', '2024-03-02').getTime() + i * 60_000), { ani: BULK_ANI })),
];

const ALL_FACTS = [...AGENT_CALLS, ...LOOKUP_CALLS];

// ---------- what the service must answer, computed here ----------

const bytewise = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const inRange = (t: Date, r: { from: Date; to: Date }): boolean => t.getTime() >= r.from.getTime() && t.getTime() < r.to.getTime();

function queueFigures(c: { offered: number; answered: number; abandoned: number; inSl: number; waitMs: number; talkMs: number }) {
  return {
    offered: c.offered,
    answered: c.answered,
    abandoned: c.abandoned,
    abandonedShort: 0,
    answeredInSl: c.inSl,
    // The default formula: answered in SL over answered and abandoned (no short abandons here).
    serviceLevelPct: c.answered + c.abandoned > 0 ? (c.inSl / (c.answered + c.abandoned)) * 100 : null,
    asaSeconds: c.answered > 0 ? c.waitMs / 1000 / c.answered : null,
    ahtSeconds: c.answered > 0 ? c.talkMs / 1000 / c.answered : null,
    abandonRatePct: c.offered > 0 ? (c.abandoned / c.offered) * 100 : null,
  };
}

function expectedQueueSummary(range: { from: Date; to: Date }, queues: string[] | null) {
  const chosen = QUEUE_INTERVALS.filter((q) => inRange(q.start, range) && (!queues || queues.includes(q.queue))).sort(
    (a, b) => a.start.getTime() - b.start.getTime() || bytewise(a.queue, b.queue),
  );
  const sum = (k: 'offered' | 'answered' | 'abandoned' | 'inSl' | 'waitMs' | 'talkMs') => chosen.reduce((s, q) => s + q[k], 0);
  return {
    site: SITE,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    granularity: '15min',
    tz: 'UTC',
    serviceLevelSeconds: SERVICE_LEVEL_SECONDS,
    queueServiceLevelSeconds: {},
    shortAbandonSeconds: 5,
    serviceLevelFormula: 'answered-over-handled',
    rows: chosen.map((q) => ({ queue: q.queue, intervalStart: q.start.toISOString(), ...queueFigures(q) })),
    totals: queueFigures({
      offered: sum('offered'), answered: sum('answered'), abandoned: sum('abandoned'),
      inSl: sum('inSl'), waitMs: sum('waitMs'), talkMs: sum('talkMs'),
    }),
    truncated: false,
  };
}

const QUARTER = 15 * 60_000;
type AgentTotals = { callsHandled: number; talk: number; states: Record<string, number>; reasons: Record<string, number> };
const noAgentTime = (): AgentTotals => ({ callsHandled: 0, talk: 0, states: { logged_in: 0, ready: 0, not_ready: 0, after_call_work: 0 }, reasons: {} });

/** The figures of agent-summary from the sums of one row (or of all, for the totals). */
function agentFigures(a: AgentTotals) {
  const handle = a.talk + a.states.after_call_work!;
  const available = a.states.ready! + a.states.after_call_work!;
  return {
    callsHandled: a.callsHandled,
    talkSeconds: a.talk,
    handleSeconds: handle,
    ahtSeconds: a.callsHandled > 0 ? handle / a.callsHandled : null,
    occupancyPct: available > 0 ? (100 * handle) / available : null,
    stateSeconds: a.states,
    notReadyByReason: a.reasons,
  };
}

/**
 * Per agent and 15-minute interval (UTC, the default): calls by the interval of their
 * answer, state time clipped to each interval and the range. `now` is where an open span
 * ends when the range reaches past it.
 */
function expectedAgentSummary(range: { from: Date; to: Date }, agents: string[] | null, now: number) {
  const rows = new Map<string, AgentTotals>();
  const totals = noAgentTime();
  const row = (agentId: string, bucket: number) => {
    const key = `${agentId}|${new Date(bucket).toISOString()}`;
    if (!rows.has(key)) rows.set(key, noAgentTime());
    return rows.get(key)!;
  };
  const chosen = (agentId: string) => !agents || agents.includes(agentId);
  for (const f of ALL_FACTS) {
    if (f.agentId === null || f.answer === null || !inRange(f.answer, range) || !chosen(f.agentId)) continue;
    for (const r of [row(f.agentId, Math.floor(f.answer.getTime() / QUARTER) * QUARTER), totals]) {
      r.callsHandled += 1;
      r.talk += f.talk ?? 0;
    }
  }
  for (const s of SPANS) {
    if (!chosen(s.agentId)) continue;
    for (let b = Math.floor(range.from.getTime() / QUARTER) * QUARTER; b < range.to.getTime(); b += QUARTER) {
      const start = Math.max(s.start.getTime(), range.from.getTime(), b);
      const end = Math.min(s.end?.getTime() ?? now, range.to.getTime(), b + QUARTER);
      if (end <= start) continue;
      for (const r of [row(s.agentId, b), totals]) {
        r.states[s.state]! += (end - start) / 1000;
        if (s.state === 'not_ready') r.reasons['(none)'] = (r.reasons['(none)'] ?? 0) + (end - start) / 1000;
      }
    }
  }
  return {
    site: SITE,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    granularity: '15min',
    tz: 'UTC',
    rows: [...rows.entries()]
      .sort(([a], [b]) => bytewise(a, b))
      .map(([key, r]) => ({ agentId: key.split('|')[0]!, intervalStart: key.split('|')[1]!, ...agentFigures(r) })),
    totals: agentFigures(totals),
    truncated: false,
  };
}

/** An agent's rows of an agent-summary answer, summed (the figures that add up). */
function agentSums(body: { rows: { agentId: string; callsHandled: number; stateSeconds: Record<string, number> }[] }, agentId: string) {
  const mine = body.rows.filter((r) => r.agentId === agentId);
  const states = Object.fromEntries(['logged_in', 'ready', 'not_ready', 'after_call_work'].map((k) => [k, mine.reduce((t, r) => t + r.stateSeconds[k]!, 0)]));
  return { callsHandled: mine.reduce((t, r) => t + r.callsHandled, 0), stateSeconds: states };
}

const agentIds = (rows: { agentId: string }[]): string[] => [...new Set(rows.map((r) => r.agentId))];

function expectedInteraction(f: Fact) {
  const usable = EVENTS.filter((e) => e.callId === f.callId && e.discardReason === null).sort((a, b) => a.seq - b.seq);
  return {
    callId: f.callId, sourceId: f.sourceId, media: f.media, direction: f.direction, queue: f.queue, agentId: f.agentId,
    startTs: f.start.toISOString(), answerTs: f.answer?.toISOString() ?? null, endTs: f.end?.toISOString() ?? null,
    outcome: f.outcome, waitSeconds: f.wait, talkSeconds: f.talk, eventCount: f.eventCount, dims: {},
    ani: usable.find((e) => e.ani !== null)?.ani ?? null,
    events: usable.map((e) => ({ seq: e.seq, event: e.event, ts: e.ts.toISOString(), queue: e.queue, agentId: e.agentId })),
  };
}

function expectedByAni(ani: string, range: { from: Date; to: Date } | null) {
  const rows = ALL_FACTS.map(expectedInteraction)
    .filter((r) => r.ani === ani && (!range || inRange(ts(r.startTs), range)))
    .sort((a, b) => ts(b.startTs).getTime() - ts(a.startTs).getTime() || bytewise(b.callId, a.callId));
  return { site: SITE, rows: rows.slice(0, 100), truncated: rows.length > 100 };
}

// ---------- the world of this file ----------

const admin = <T>(fn: (c: Client) => Promise<T>): Promise<T> => withPgClient(`${SERVER}/postgres`, fn);

function siteConfig(martUrl: string): Config {
  return parseConfig({
    temporal: {},
    etl: { serviceLevelSeconds: SERVICE_LEVEL_SECONDS },
    reporting: { primary: 'dc1' },
    sites: {
      dc1: { mart: martUrl, reportingPort: 8401 },
      dc2: { mart: `${SERVER}/${DB}_dc2_unused`, reportingPort: 8402 },
    },
    sources: {
      'sw-voice-1': [
        { id: 'idb-voice-1-dc1', site: 'dc1', url: `${SERVER}/unused_idb_1` },
        { id: 'idb-voice-1-dc2', site: 'dc2', url: `${SERVER}/unused_idb_2` },
      ],
    },
  });
}

/** A logger that keeps what it was told, to check what an operator would see. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  return { lines, debug() {}, info: keep('info'), warn: keep('warn'), error: keep('error') };
}

async function insertWorld(db: Pool): Promise<void> {
  await db.query(
    `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, answered_in_sl, total_wait_s, total_talk_s)
     select * from unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::int[], $7::numeric[], $8::numeric[])`,
    [
      QUEUE_INTERVALS.map((q) => q.queue), QUEUE_INTERVALS.map((q) => q.start), QUEUE_INTERVALS.map((q) => q.offered),
      QUEUE_INTERVALS.map((q) => q.answered), QUEUE_INTERVALS.map((q) => q.abandoned), QUEUE_INTERVALS.map((q) => q.inSl),
      QUEUE_INTERVALS.map((q) => (q.waitMs / 1000).toFixed(3)), QUEUE_INTERVALS.map((q) => (q.talkMs / 1000).toFixed(3)),
    ],
  );
  await db.query(
    `insert into interaction_fact (call_id, source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts,
                                   outcome, wait_s, talk_s, event_count)
     select (f->>'callId')::uuid, f->>'sourceId', f->>'media', f->>'direction', f->>'queue', f->>'agentId',
            (f->>'start')::timestamptz, (f->>'answer')::timestamptz, (f->>'end')::timestamptz,
            f->>'outcome', (f->>'wait')::numeric, (f->>'talk')::numeric, (f->>'eventCount')::integer
       from jsonb_array_elements($1::jsonb) as f`,
    [JSON.stringify(ALL_FACTS)],
  );
  await db.query(
    `insert into agent_state_fact (source_id, agent_id, seq, state, start_ts, end_ts)
     select 'sw-voice-1', s->>'agentId', (s->>'seq')::integer, s->>'state', (s->>'start')::timestamptz, (s->>'end')::timestamptz
       from jsonb_array_elements($1::jsonb) as s`,
    [JSON.stringify(SPANS)],
  );
  await db.query(
    `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, ani, dnis, queue, agent_id,
                                 attrs, member_id, quality, discard_reason)
     select (e->>'callId')::uuid, (e->>'seq')::integer, 'sw-voice-1', e->>'event', (e->>'ts')::timestamptz, 'voice', 'inbound',
            e->>'ani', '+18005550100', e->>'queue', e->>'agentId', '{}', 'idb-voice-1-dc1', 1, e->>'discardReason'
       from jsonb_array_elements($1::jsonb) as e`,
    [JSON.stringify(EVENTS)],
  );
  // The target of the SQL-ish parameters below: it must survive them.
  await db.query('create table x (id integer)');
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

/** A request with exactly this target (fetch would normalise `..` away before sending). */
function get(port: number, target: string, options: { method?: string; host?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = null;
          if (text && res.headers['content-type']?.startsWith('application/json')) body = JSON.parse(text);
          resolve({ status: res.statusCode!, headers: res.headers, text, body });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

let mart: Pool;
const pools = new Pools();
const serverPools = new Pools();
const logger = recordingLogger();
let server: ReportingServer;
let port: number;
let planned = 0;
let passed = 0;

/** A test that counts towards "every test passed", which decides whether the database is dropped. */
function check(name: string, fn: () => Promise<void>): void {
  planned += 1;
  test(name, async () => {
    await fn();
    passed += 1;
  });
}

before(async () => {
  await admin(async (c) => {
    const icu = (await c.query(`select 1 from pg_collation where collprovider = 'i' limit 1`)).rowCount;
    await c.query(
      icu
        ? `create database ${DB} template template0 locale_provider icu icu_locale 'und' encoding 'UTF8'`
        : `create database ${DB}`,
    );
    await c.query(`alter database ${DB} set timezone = 'Asia/Kathmandu'`);
  });
  mart = pools.get(MART_URL);
  await migrateMart(mart);
  await insertWorld(mart);
  server = createReportingServer({ config: siteConfig(MART_URL), site: SITE, pools: serverPools, logger });
  port = await server.listen(0);
});

after(async () => {
  await server?.close();
  await serverPools.end();
  await pools.end();
  if (passed === planned) {
    await admin((c) => c.query(`drop database if exists ${DB} with (force)`));
  } else {
    process.stderr.write(`reporting-api: database ${DB} kept for inspection (${SERVER}/${DB})\n`);
  }
});

// ---------- (2) roles ----------

check('a mart without a reporting role is a standby pointing at the configured primary', async () => {
  const r = await get(port, `/api/queue-summary?${rangeQuery()}`);
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { error: 'standby', site: SITE, activeSite: 'dc1' });
  const health = await get(port, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.body.role, 'standby');
  assert.equal(health.body.activeSite, 'dc1');
});

check('a standby refuses every report with 503 and the active site, and serves health, ops and the dashboard', async () => {
  await setReportingRole(mart, 'standby', 'dc2');
  for (const target of [
    `/api/queue-summary?${rangeQuery()}`,
    `/api/agent-summary?${rangeQuery()}`,
    `/api/dimensions?${rangeQuery()}`,
    `/api/interactions?callId=${callId(1)}`,
  ]) {
    const r = await get(port, target);
    assert.equal(r.status, 503, target);
    assert.deepEqual(r.body, { error: 'standby', site: SITE, activeSite: 'dc2' }, target);
  }

  const health = await get(port, '/health');
  assert.equal(health.status, 200);
  const { at: healthAt, ...rest } = health.body;
  assert.deepEqual(rest, { site: SITE, role: 'standby', activeSite: 'dc2', activeReportingUrl: 'http://127.0.0.1:8402', mart: 'ok' });
  assert.ok(Math.abs(Date.parse(healthAt) - Date.now()) < 60_000, `health.at ${healthAt} is now`);
  assert.match(healthAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const ready = await get(port, '/ready');
  assert.equal(ready.status, 503, 'a load balancer sends nobody to a standby');
  assert.deepEqual(ready.body, { site: SITE, role: 'standby', activeSite: 'dc2', mart: 'ok' });

  const ops = await get(port, '/api/ops');
  assert.equal(ops.status, 200);
  assert.deepEqual(ops.body, { dr: null, etl: { dc1: null, dc2: null }, error: 'no temporal client', lag: { site: SITE, members: {} } });

  assert.equal((await get(port, '/')).status, 200);
  assert.equal((await get(port, '/static/chart.umd.js')).status, 200);
});

check('switching ctl_reporting to active makes the same server serve at once', async () => {
  await setReportingRole(mart, 'active', SITE);
  const r = await get(port, `/api/queue-summary?${rangeQuery()}`);
  assert.equal(r.status, 200, r.text);
  const health = await get(port, '/health');
  assert.equal(health.body.role, 'active');
  assert.equal(health.body.activeSite, SITE);
  assert.ok(logger.lines.includes('info reporting: active'), `role change logged: ${logger.lines.join(' | ')}`);
  const ready = await get(port, '/ready');
  assert.equal(ready.status, 200, 'the active site is where a load balancer sends users');
  assert.deepEqual(ready.body, { site: SITE, role: 'active', activeSite: SITE, mart: 'ok' });
});

// ---------- (1) every figure ----------

check('queue-summary: every row and total equals the figures computed from the inserted intervals', async () => {
  const r = await get(port, `/api/queue-summary?${rangeQuery()}`);
  assert.equal(r.status, 200, r.text);
  const expected = expectedQueueSummary(RANGE, null);
  assert.equal(expected.rows.length, 7, 'the premise: seven intervals start in the range');
  assert.deepEqual(
    expected.rows.slice(-2).map((q) => q.queue),
    ['Sales', 'billing'],
    'the premise: bytewise order differs from the linguistic one',
  );
  assertClose(r.body, expected);
  // The edge cases of the ratios are really there.
  assert.equal(r.body.rows.find((q: { queue: string; offered: number }) => q.queue === 'support' && q.offered === 0).serviceLevelPct, null);
  assert.equal(r.body.rows.find((q: { queue: string; answered: number }) => q.queue === 'sales' && q.answered === 0).asaSeconds, null);
});

check('queue-summary with repeated queue filters sums only those queues', async () => {
  const r = await get(port, `/api/queue-summary?${rangeQuery()}&queue=billing&queue=Sales`);
  assert.equal(r.status, 200, r.text);
  const expected = expectedQueueSummary(RANGE, ['billing', 'Sales']);
  assert.equal(expected.rows.length, 3);
  assertClose(r.body, expected);

  const wider = { from: at('09:45:00'), to: at('11:00:00') };
  assertClose((await get(port, `/api/queue-summary?${rangeQuery(wider)}&queue=support`)).body, expectedQueueSummary(wider, ['support']));
});

check('queue-summary of a range without intervals has empty rows and zero totals without ratios', async () => {
  const empty = { from: at('00:00:00', '2023-01-01'), to: at('00:00:00', '2023-01-02') };
  const r = await get(port, `/api/queue-summary?${rangeQuery(empty)}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.rows, []);
  assert.deepEqual(r.body.totals, {
    offered: 0, answered: 0, abandoned: 0, abandonedShort: 0, answeredInSl: 0, serviceLevelPct: null, asaSeconds: null,
    ahtSeconds: null, abandonRatePct: null,
  });
  assertClose(r.body, expectedQueueSummary(empty, null));
});

check('agent-summary: calls, talk time and state time clipped to the range equal the inserted rows', async () => {
  const r = await get(port, `/api/agent-summary?${rangeQuery()}`);
  assert.equal(r.status, 200, r.text);
  const expected = expectedAgentSummary(RANGE, null, Date.now());
  assert.deepEqual(
    agentIds(expected.rows),
    ['a1', 'a2', 'a3', 'a4'],
    'the premise: a5 and a6 only touch the range, a7 is elsewhere in time',
  );
  assertClose(r.body, expected);
  // Spot checks of the rules, against numbers worked out by hand.
  const a1 = agentSums(r.body, 'a1');
  assert.equal(a1.callsHandled, 4); // 10:00:00 (c102, at `from`), 10:02:30 (lookup call 1), 10:20, 10:44:59.999; not 09:59:59 nor 10:45
  assert.equal(a1.stateSeconds.logged_in, 45 * 60); // open since 09:00: ends at `to`
  assert.equal(a1.stateSeconds.after_call_work, 25 * 60); // 10:20-10:50 clipped at 10:45
  assert.equal(r.body.rows.filter((a: { agentId: string }) => a.agentId === 'a1').length, 3, 'a1 in each of the three intervals');
  assert.deepEqual(r.body.rows.filter((a: { agentId: string }) => a.agentId === 'a4'), [{
    agentId: 'a4', intervalStart: at('10:00:00').toISOString(), callsHandled: 1, talkSeconds: 0, handleSeconds: 0, ahtSeconds: 0,
    occupancyPct: null, stateSeconds: { logged_in: 0, ready: 0, not_ready: 0, after_call_work: 0 }, notReadyByReason: {},
  }]);
});

check('agent-summary with repeated agent filters reports only those agents', async () => {
  const r = await get(port, `/api/agent-summary?${rangeQuery()}&agent=a3&agent=a1&agent=nobody`);
  assert.equal(r.status, 200, r.text);
  const expected = expectedAgentSummary(RANGE, ['a3', 'a1', 'nobody'], Date.now());
  assert.deepEqual(agentIds(expected.rows), ['a1', 'a3']);
  assertClose(r.body, expected);
});

check('agent-summary finds the spans of a range through the span index, not by reading every span', async () => {
  const client = await mart.connect();
  try {
    await client.query('begin');
    await client.query('set local enable_seqscan = off'); // the table is small enough for a scan to look cheaper
    const { rows } = await agentSummary(client, RANGE, null, { granularity: "15min", tz: "UTC" });
    assert.deepEqual(agentIds(rows), agentIds(expectedAgentSummary(RANGE, null, Date.now()).rows));
    const { rows: [scans] } = await client.query<{ span: string; start: string }>(
      `select pg_stat_get_xact_numscans('agent_state_fact_span'::regclass) as span,
              pg_stat_get_xact_numscans('agent_state_fact_start'::regclass) as start`,
    );
    assert.deepEqual(scans, { span: '1', start: '0' }, 'one scan of the span index');
  } finally {
    await client.query('rollback');
    client.release();
  }
});

check('agent-summary: a span still open ends now when the range reaches past now', async () => {
  const range = { from: ago(120), to: ago(-60) };
  const before = Date.now();
  const r = await get(port, `/api/agent-summary?${rangeQuery(range)}&agent=a7`);
  const afterAnswer = Date.now();
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(agentIds(r.body.rows), ['a7']);
  const a7 = agentSums(r.body, 'a7');
  assert.equal(a7.stateSeconds.not_ready, 30 * 60, 'closed span: from-clipped to 30 minutes');
  const low = expectedAgentSummary(range, ['a7'], before).totals.stateSeconds.ready!;
  const high = expectedAgentSummary(range, ['a7'], afterAnswer).totals.stateSeconds.ready!;
  assert.ok(a7.stateSeconds.ready >= low - 1 && a7.stateSeconds.ready <= high + 1, `open span ${a7.stateSeconds.ready} s in [${low}, ${high}]`);
});

check('interactions by callId: the fact, its ani and its usable events in seq order', async () => {
  const r = await get(port, `/api/interactions?callId=${callId(1)}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { site: SITE, rows: [expectedInteraction(LOOKUP_CALLS[0]!)], truncated: false });
  assert.equal(r.body.rows[0].events.length, 4, 'the discarded event is left out');

  const upper = await get(port, `/api/interactions?callId=${callId(1).toUpperCase()}`);
  assert.deepEqual(upper.body, r.body);
  const discardedAni = await get(port, `/api/interactions?callId=${callId(5)}`);
  assert.deepEqual(discardedAni.body, { site: SITE, rows: [expectedInteraction(LOOKUP_CALLS[4]!)], truncated: false });
  assert.equal(discardedAni.body.rows[0].ani, '+15550000005', 'the ani of the first usable event, not of the discarded one');
  const noEvents = await get(port, `/api/interactions?callId=${callId(6)}`);
  assert.deepEqual(noEvents.body, { site: SITE, rows: [expectedInteraction(LOOKUP_CALLS[5]!)], truncated: false });
  assert.equal(noEvents.body.rows[0].ani, null);
  assert.deepEqual((await get(port, `/api/interactions?callId=${callId(999_999)}`)).body, { site: SITE, rows: [], truncated: false });
});

check('interactions by ani: newest first, limited to the range, at most 100', async () => {
  const all = await get(port, `/api/interactions?ani=${encodeURIComponent(ANI)}`);
  assert.equal(all.status, 200, all.text);
  const expected = expectedByAni(ANI, null);
  assert.deepEqual(expected.rows.map((c) => c.callId), [callId(2), callId(1), callId(4)], 'the premise: call 5 had ANI only on a discarded event, call 7 not first');
  assert.deepEqual(all.body, expected);

  const ranged = await get(port, `/api/interactions?ani=${encodeURIComponent(ANI)}&${rangeQuery()}`);
  assert.deepEqual(ranged.body, expectedByAni(ANI, RANGE));
  assert.equal(ranged.body.rows.length, 2);

  const bulk = await get(port, `/api/interactions?ani=${encodeURIComponent(BULK_ANI)}`);
  assert.equal(bulk.body.rows.length, 100);
  assert.deepEqual(bulk.body, expectedByAni(BULK_ANI, null));
  assert.equal(bulk.body.rows[0].callId, callId(1104), 'the newest of 105 calls first');
  assert.equal(bulk.body.truncated, true, 'more calls than listed');

  assert.deepEqual((await get(port, '/api/interactions?ani=%2B15550000005')).body, expectedByAni('+15550000005', null));
  assert.equal(expectedByAni('+15550000005', null).rows.length, 1);
  assert.deepEqual((await get(port, '/api/interactions?ani=%2B15550000000')).body, { site: SITE, rows: [], truncated: false });
});

// ---------- (3) bad parameters ----------

check('bad parameters get 400 naming the parameter, the problem and the value', async () => {
  const cases: [string, RegExp][] = [
    ['/api/queue-summary', /^from: missing, expected an ISO-8601/],
    [`/api/queue-summary?from=${RANGE.from.toISOString()}`, /^to: missing/],
    ['/api/queue-summary?from=yesterday&to=2024-03-02', /^from: expected an ISO-8601 .*, got "yesterday"$/],
    ['/api/queue-summary?from=2024-02-30T00:00:00Z&to=2024-03-02', /^from: .*got "2024-02-30T00:00:00Z"$/],
    ['/api/queue-summary?from=2024-03-01T10:00&to=2024-03-02', /^from: .*got "2024-03-01T10:00"$/],
    ['/api/agent-summary?from=2024-03-01T10:00:00Z&to=2024-03-01T10:00:00Z', /^to: must be later than from \(2024-03-01T10:00:00.000Z\), got "2024-03-01T10:00:00Z"$/],
    ['/api/queue-summary?from=2024-03-02&to=2024-03-01', /^to: must be later than from/],
    ['/api/queue-summary?from=2024-01-01&to=2024-02-10', /^to: range longer than 31 days .*, got "2024-02-10"$/],
    ['/api/agent-summary?from=2024-01-01T00:00:00Z&to=2024-02-10T00:00:00Z', /^to: range longer than 31 days/],
    ['/api/queue-summary?from=2024-03-01&from=2024-03-02&to=2024-03-03', /^from: given more than once/],
    [`/api/queue-summary?${rangeQuery()}&queue=`, /^queue: empty/],
    [`/api/queue-summary?${rangeQuery()}&foo=1`, /^foo: unknown parameter, expected one of from, to, granularity, tz, format, queue, got "1"$/],
    [`/api/agent-summary?${rangeQuery()}&queue=sales`, /^queue: unknown parameter, expected one of from, to, granularity, tz, format, agent/],
    ['/api/interactions', /^callId: missing, expected callId=UUID, ani=NUMBER or queue=NAME with from and to$/],
    ['/api/interactions?callId=not-a-uuid', /^callId: expected a UUID .*, got "not-a-uuid"$/],
    [`/api/interactions?callId=${callId(1)}&ani=%2B15551230001`, /^ani: not with callId/],
    [`/api/interactions?callId=${callId(1)}&${rangeQuery()}`, /^from: only with ani/],
    ['/api/interactions?ani=%2B15551230001&from=2024-03-01', /^to: missing: from and to go together$/],
    ['/api/interactions?ani=%2B15551230001&from=2024-01-01&to=2024-03-01', /^to: range longer than 31 days/],
    ['/api/interactions?ani=+15551230001', /^ani: expected a caller number.*, got " 15551230001"$/],
    ['/api/interactions?ani=abc', /^ani: expected a caller number/],
    [`/api/interactions?ani=${encodeURIComponent("'; drop table x; --")}`, /^ani: .*got "'; drop table x; --"$/],
    [`/api/interactions?callId=${encodeURIComponent("'; drop table interaction_fact; --")}`, /^callId: expected a UUID/],
    [`/api/queue-summary?from=${encodeURIComponent("2024-03-01'; drop table x; --")}&to=2024-03-02`, /^from: expected an ISO-8601/],
    [`/api/queue-summary?${rangeQuery()}&${encodeURIComponent("x'; drop table x; --")}=1`, /^x'; drop table x; --: unknown parameter/],
  ];
  for (const [target, message] of cases) {
    const r = await get(port, target);
    assert.equal(r.status, 400, `${target}: ${r.text}`);
    assert.deepEqual(Object.keys(r.body), ['error'], target);
    assert.match(r.body.error, message, target);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
  }
});

check('SQL-ish names are only values: no rows, nothing dropped', async () => {
  const sqlish = encodeURIComponent("'; drop table x; --");
  const queues = await get(port, `/api/queue-summary?${rangeQuery()}&queue=${sqlish}`);
  assert.equal(queues.status, 200, queues.text);
  assert.deepEqual(queues.body.rows, []);
  assert.equal(queues.body.totals.offered, 0);
  const agents = await get(port, `/api/agent-summary?${rangeQuery()}&agent=${encodeURIComponent("a1' or '1'='1")}&agent=${sqlish}`);
  assert.equal(agents.status, 200, agents.text);
  assert.deepEqual(agents.body.rows, []);
  const { rows } = await mart.query<{ t: string | null; facts: number }>(
    `select to_regclass('x')::text as t, (select count(*)::integer from interaction_fact) as facts`,
  );
  assert.deepEqual(rows[0], { t: 'x', facts: ALL_FACTS.length });
});

check("the service's mart sessions are read-only", async () => {
  // serverPools holds the very pool the service uses (the same URL and session options).
  await assert.rejects(serverPools.get(MART_URL, martSession(SITE)).query('create table y (id integer)'), { code: '25006' });
});

// ---------- (4) paths, static files, headers ----------

check('unknown paths get 404 JSON, other methods 405, and answers carry the security headers', async () => {
  for (const target of ['/nope', '/api', '/api/queue-summary/', '/api/unknown?from=1', '/health/x', '/static/']) {
    const r = await get(port, target);
    assert.equal(r.status, 404, target);
    assert.deepEqual(r.body, { error: 'not found' }, target);
  }
  const post = await get(port, '/health', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');

  const head = await get(port, '/health', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.text, '');

  const api = await get(port, `/api/queue-summary?${rangeQuery()}`);
  assert.equal(api.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(api.headers['cache-control'], 'no-store');
  assert.equal(api.headers['x-content-type-options'], 'nosniff');
  assert.match(String(api.headers['content-security-policy']), /frame-ancestors 'none'/);
});

check('the dashboard and chart.js are served; traversal and hidden files are not', async () => {
  const index = await get(port, '/');
  assert.equal(index.status, 200);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.text, readFileSync(join(repoRoot, 'web', 'index.html'), 'utf8'));

  const chart = await get(port, '/static/chart.umd.js');
  assert.equal(chart.status, 200);
  assert.equal(chart.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(chart.headers['x-content-type-options'], 'nosniff');
  assert.match(chart.text.slice(0, 300), /Chart\.js v4/);

  // The dashboard's browser modules, from web/lib and web/views.
  for (const module of ['/static/app.js', '/static/lib/url-state.js', '/static/views/queues.js']) {
    const r = await get(port, module);
    assert.equal(r.status, 200, module);
    assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8', module);
  }

  const packageJson = readFileSync(join(repoRoot, 'package.json'), 'utf8');
  for (const target of [
    '/static/../package.json',
    '/static/..%2fpackage.json',
    '/static/%2e%2e%2fpackage.json',
    '/static/..%5cpackage.json',
    '/static/..',
    '/static/.',
    '/static/.gitignore',
    '/static/sub/index.html',
    '/static/INDEX.HTML',
    '/static/index.html%00.js',
    '/static//etc/passwd',
    '/static/views/../package.json',
    '/static/views/.hidden.js',
    '/static/lib/sub/dom.js',
    '/static/other/app.js',
    '/../package.json',
  ]) {
    const r = await get(port, target);
    assert.equal(r.status, 404, target);
    assert.ok(!r.text.includes('"name": "twinmart"') && r.text !== packageJson, `${target} leaked a file`);
  }
});

check('a loopback service refuses requests addressed to another host name (DNS rebinding)', async () => {
  const r = await get(port, '/health', { host: 'attacker.example:80' });
  assert.equal(r.status, 403);
  assert.match(r.body.error, /^host "attacker.example:80" not allowed/);
  assert.equal((await get(port, '/health', { host: `localhost:${port}` })).status, 200);
});

// ---------- (5) a mart that is not there ----------

check('a mart that does not exist: reports 503 mart unreachable; health, ops and parameter checks still answer', async () => {
  const otherPools = new Pools();
  const otherLogger = recordingLogger();
  let factoryCalls = 0;
  const other = createReportingServer({
    config: siteConfig(`${SERVER}/${DB}_missing`),
    site: SITE,
    pools: otherPools,
    logger: otherLogger,
    temporal: async () => {
      factoryCalls += 1;
      throw new Error('cannot reach the Temporal server at 127.0.0.1:1: connection refused');
    },
  });
  const otherPort = await other.listen(0);
  try {
    for (const target of [
      `/api/queue-summary?${rangeQuery()}`,
      `/api/agent-summary?${rangeQuery()}`,
      `/api/dimensions?${rangeQuery()}`,
      `/api/interactions?callId=${callId(1)}`,
    ]) {
      const r = await get(otherPort, target);
      assert.equal(r.status, 503, target);
      assert.deepEqual(r.body, { error: 'mart unreachable' }, target);
    }
    const health = await get(otherPort, '/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.mart, 'unreachable');
    assert.equal(health.body.role, 'standby');
    assert.equal(health.body.activeSite, 'dc1');

    assert.equal((await get(otherPort, '/api/queue-summary?from=x')).status, 400, 'a bad request is bad whatever the mart');

    for (let i = 1; i <= 2; i++) {
      const ops = await get(otherPort, '/api/ops');
      assert.equal(ops.status, 200);
      assert.deepEqual(ops.body, {
        dr: null,
        etl: { dc1: null, dc2: null },
        error: 'temporal unreachable: cannot reach the Temporal server at 127.0.0.1:1: connection refused',
        lag: { site: SITE, members: null },
      });
      assert.equal(factoryCalls, i, 'a failed client is asked for again, not kept');
    }
    assert.equal(otherLogger.lines.filter((l) => l === 'warn reporting: mart unreachable').length, 1, otherLogger.lines.join(' | '));
  } finally {
    await other.close();
    await otherPools.end();
  }
});

check('a mart that goes away and comes back: 503 meanwhile, health keeps the last known role, then serves again', async () => {
  const away = `${DB}_away`;
  const disconnect = `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`;
  await admin(async (c) => {
    await c.query(disconnect, [DB]);
    await c.query(`alter database ${DB} rename to ${away}`);
  });
  try {
    const r = await get(port, `/api/agent-summary?${rangeQuery()}`);
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, { error: 'mart unreachable' });
    const health = await get(port, '/health');
    assert.equal(health.status, 200);
    assert.deepEqual({ ...health.body, at: undefined }, { site: SITE, role: 'active', activeSite: SITE, activeReportingUrl: 'http://127.0.0.1:8401', mart: 'unreachable', at: undefined });
    const ready = await get(port, '/ready');
    assert.equal(ready.status, 503, 'an active site whose mart does not answer cannot take users');
    assert.deepEqual(ready.body, { site: SITE, role: 'active', activeSite: SITE, mart: 'unreachable' });
  } finally {
    await admin(async (c) => {
      await c.query(disconnect, [away]);
      await c.query(`alter database ${away} rename to ${DB}`);
    });
  }
  const back = await get(port, `/api/agent-summary?${rangeQuery()}`);
  assert.equal(back.status, 200, back.text);
  assertClose(back.body, expectedAgentSummary(RANGE, null, Date.now()));
  assert.equal((await get(port, '/health')).body.mart, 'ok');
  assert.ok(logger.lines.includes('info reporting: mart reachable again'), logger.lines.join(' | '));
});
