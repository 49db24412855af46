/**
 * Ground truth read straight from the IDBs, and the facts it implies computed here in
 * TypeScript, independently of the mart's SQL, so the tests compare two derivations.
 */
import type { Pool } from 'pg';
import type { Config } from '../../src/config';
import type { Pools } from '../../src/db';
import type { QueueRules } from '../../src/mart/facts';

export interface IdbCallRow {
  call_id: string;
  seq: number;
  event: string;
  event_ts: Date;
  queue: string | null;
  agent_id: string | null;
}

/** Union by natural key of every member's call events; `members` limits which are read. */
export async function unionCallEvents(
  config: Config,
  pools: Pools,
  members = config.members.map((m) => m.id),
): Promise<Map<string, IdbCallRow>> {
  const union = new Map<string, IdbCallRow>();
  for (const m of config.members.filter((x) => members.includes(x.id))) {
    const { rows } = await pools
      .get(m.url)
      .query<IdbCallRow>('select call_id::text, seq, event, event_ts, queue, agent_id from idb.call_event');
    for (const r of rows) if (!union.has(`${r.call_id}/${r.seq}`)) union.set(`${r.call_id}/${r.seq}`, r);
  }
  return union;
}

export async function memberKeys(config: Config, pools: Pools, memberId: string): Promise<Set<string>> {
  const m = config.members.find((x) => x.id === memberId)!;
  const { rows } = await pools.get(m.url).query<{ k: string }>("select call_id::text || '/' || seq as k from idb.call_event");
  return new Set(rows.map((r) => r.k));
}

/** Committed loads of a member never overlap: their row counts add up to the IDB's rows. */
export async function auditedRows(mart: Pool, memberId: string): Promise<number> {
  const { rows } = await mart.query<{ n: string }>('select coalesce(sum(call_rows), 0) as n from ctl_load_audit where member_id = $1', [memberId]);
  return Number(rows[0]!.n);
}

export async function idbRows(config: Config, pools: Pools, memberId: string): Promise<number> {
  const m = config.members.find((x) => x.id === memberId)!;
  const { rows } = await pools.get(m.url).query<{ n: string }>('select count(*) as n from idb.call_event');
  return Number(rows[0]!.n);
}

/** Keys staged in a mart, with how many rows each has (the primary key makes >1 impossible; counted anyway). */
export async function martKeys(mart: Pool): Promise<Map<string, number>> {
  const { rows } = await mart.query<{ k: string; n: string }>(
    "select call_id::text || '/' || seq as k, count(*) as n from stg_call_event group by 1",
  );
  return new Map(rows.map((r) => [r.k, Number(r.n)]));
}

export interface ExpectedFact {
  outcome: string;
  start: number;
  answer: number | null;
  end: number | null;
  wait: number | null;
  talk: number | null;
  events: number;
  queue: string | null;
}

/**
 * The documented rules of interaction_fact, applied to usable events of each call. A call
 * without an end is incomplete once it started maxCallSeconds before the newest event
 * loaded (every row given, usable or not, as the mart's cursors count them), or now.
 */
export function expectedFacts(rows: Iterable<IdbCallRow>, unusable: Set<string>, maxCallSeconds = 86_400): Map<string, ExpectedFact> {
  const byCall = new Map<string, IdbCallRow[]>();
  let newest = -Infinity;
  for (const r of rows) {
    newest = Math.max(newest, r.event_ts.getTime());
    if (unusable.has(`${r.call_id}/${r.seq}`)) continue;
    const list = byCall.get(r.call_id) ?? [];
    list.push(r);
    byCall.set(r.call_id, list);
  }
  const out = new Map<string, ExpectedFact>();
  for (const [callId, evs] of byCall) {
    evs.sort((a, b) => a.seq - b.seq);
    const ts = (e: IdbCallRow) => e.event_ts.getTime();
    const first = (name: string) => evs.filter((e) => e.event === name).map(ts).sort((a, b) => a - b)[0] ?? null;
    const start = Math.min(...evs.map(ts));
    const queued = first('queued');
    const answer = first('established');
    const ends = evs.filter((e) => e.event === 'released' || e.event === 'abandoned').map(ts);
    const end = ends.length ? Math.max(...ends) : null;
    const has = (name: string) => evs.some((e) => e.event === name);
    const outcome = has('abandoned')
      ? 'abandoned'
      : has('released')
        ? answer === null
          ? 'abandoned'
          : has('transferred')
            ? 'transferred'
            : 'answered'
        : start < Math.min(Date.now(), newest) - maxCallSeconds * 1000
          ? 'incomplete'
          : 'in_progress';
    const from = queued ?? start;
    out.set(callId, {
      outcome,
      start,
      answer,
      end,
      wait: answer !== null ? (answer - from) / 1000 : end !== null ? (end - from) / 1000 : null,
      talk: answer !== null && end !== null ? (end - answer) / 1000 : null,
      events: new Set(evs.map((e) => e.seq)).size,
      queue: [...evs].reverse().find((e) => e.queue !== null)?.queue ?? null,
    });
  }
  return out;
}

export interface MartFact {
  call_id: string;
  outcome: string;
  start_ts: Date;
  answer_ts: Date | null;
  end_ts: Date | null;
  wait_s: string | null;
  talk_s: string | null;
  event_count: number;
  queue: string | null;
}

export async function martFacts(mart: Pool): Promise<Map<string, MartFact>> {
  const { rows } = await mart.query<MartFact>(
    'select call_id::text, outcome, start_ts, answer_ts, end_ts, wait_s, talk_s, event_count, queue from interaction_fact',
  );
  return new Map(rows.map((r) => [r.call_id, r]));
}

/** Differences between expected and loaded facts, as readable lines (empty when equal). */
export function diffFacts(expected: Map<string, ExpectedFact>, actual: Map<string, MartFact>, limit = 10): string[] {
  const out: string[] = [];
  const ms = (d: Date | null) => (d === null ? null : d.getTime());
  const num = (v: string | null) => (v === null ? null : Number(v));
  const close = (a: number | null, b: number | null) => (a === null ? b === null : b !== null && Math.abs(a - b) < 0.002);
  for (const [id, e] of expected) {
    const a = actual.get(id);
    if (!a) out.push(`${id}: missing in mart`);
    else if (
      a.outcome !== e.outcome ||
      ms(a.start_ts) !== e.start ||
      ms(a.answer_ts) !== e.answer ||
      ms(a.end_ts) !== e.end ||
      !close(num(a.wait_s), e.wait) ||
      !close(num(a.talk_s), e.talk) ||
      a.event_count !== e.events ||
      a.queue !== e.queue
    ) {
      out.push(`${id}: expected ${JSON.stringify(e)} got ${JSON.stringify(a)}`);
    }
    if (out.length >= limit) return out;
  }
  for (const id of actual.keys()) if (!expected.has(id) && out.length < limit) out.push(`${id}: in mart but not expected`);
  return out;
}

const KNOWN = new Set(['created', 'queued', 'routed', 'established', 'held', 'retrieved', 'transferred', 'released', 'abandoned']);

/**
 * Rows the mart must not use, by the documented rules: unknown event names and times
 * more than a day ahead (refused at load); an event earlier than one with a lower seq;
 * an event more than maxCallSeconds after the call's first event.
 */
export function unusableRows(rows: Iterable<IdbCallRow>, maxCallSeconds = 86_400): Map<string, string> {
  const byCall = new Map<string, IdbCallRow[]>();
  const out = new Map<string, string>();
  for (const r of rows) {
    if (!KNOWN.has(r.event)) {
      out.set(`${r.call_id}/${r.seq}`, 'unknown event');
      continue;
    }
    if (r.event_ts.getTime() > Date.now() + 86_400_000) {
      out.set(`${r.call_id}/${r.seq}`, 'in the future');
      continue;
    }
    byCall.set(r.call_id, [...(byCall.get(r.call_id) ?? []), r]);
  }
  for (const evs of byCall.values()) {
    evs.sort((a, b) => a.seq - b.seq);
    const first = Math.min(...evs.map((e) => e.event_ts.getTime()));
    let prevMax = -Infinity;
    for (const e of evs) {
      const t = e.event_ts.getTime();
      if (t < prevMax) out.set(`${e.call_id}/${e.seq}`, 'out of order');
      else if (t > first + maxCallSeconds * 1000) out.set(`${e.call_id}/${e.seq}`, 'absurd duration');
      prevMax = Math.max(prevMax, t);
    }
  }
  return out;
}

/**
 * Rows where ag_queue_15min differs from the aggregate of interaction_fact recomputed here
 * (per queue and 15-minute interval of the call's start), on either side; empty when equal.
 */
export async function queueAggregateDiff(mart: Pool, rules: QueueRules): Promise<string[]> {
  const { rows } = await mart.query<{ side: string; row: string }>(
    `with f as (
       select queue, start_ts, outcome, wait_s, talk_s,
              answer_ts is not null and outcome not in ('in_progress', 'incomplete') as answered,
              coalesce(($2::jsonb ->> queue)::numeric, $1) as threshold
         from interaction_fact where queue is not null),
     expected as (
       select queue, date_bin('15 minutes', start_ts, timestamptz '2000-01-01 00:00:00+00') as interval_start,
              count(*)::integer as offered,
              (count(*) filter (where answered))::integer as answered,
              (count(*) filter (where outcome = 'abandoned'))::integer as abandoned,
              (count(*) filter (where outcome = 'abandoned' and wait_s < $3))::integer as abandoned_short,
              (count(*) filter (where answered and wait_s <= threshold))::integer as answered_in_sl,
              (count(*) filter (where outcome = 'abandoned' and wait_s >= $3 and wait_s <= threshold))::integer
                as abandoned_in_sl,
              coalesce(sum(wait_s) filter (where answered), 0) as total_wait_s,
              coalesce(sum(talk_s), 0) as total_talk_s
         from f group by 1, 2),
     actual as (
       select queue, interval_start, offered, answered, abandoned, abandoned_short, answered_in_sl, abandoned_in_sl,
              total_wait_s, total_talk_s
         from ag_queue_15min)
     select 'expected only' as side, e::text as row from (select * from expected except select * from actual) e
     union all
     select 'stored only', a::text from (select * from actual except select * from expected) a
     limit 10`,
    [rules.serviceLevelSeconds, JSON.stringify(rules.queueServiceLevelSeconds), rules.shortAbandonSeconds],
  );
  return rows.map((r) => `${r.side}: ${r.row}`);
}

/**
 * The version of each call event a mart must keep, by the best-quality rule computed
 * here from the IDBs: the member's list position, plus 1000 when none of that member's
 * sessions covers the event; lowest wins. Keyed `call_id/seq`: the member and a hash of
 * what is staged (hashed the same way by stagedVersions).
 */
export async function keptVersions(config: Config, pools: Pools): Promise<Map<string, { member: string; hash: string }>> {
  const best = new Map<string, { member: string; hash: string; quality: number }>();
  for (const m of config.members) {
    const { rows } = await pools.get(m.url).query<{ k: string; h: string; covered: boolean }>(
      `select call_id::text || '/' || seq as k, ${VERSION_HASH} as h,
              exists (select 1 from idb.dss_session s where s.source_id = e.source_id and s.conn_start <= e.event_ts
                         and (s.conn_end is null or s.conn_end >= e.event_ts)) as covered
         from idb.call_event e`,
    );
    for (const r of rows) {
      const quality = m.index + (r.covered ? 0 : 1000);
      const was = best.get(r.k);
      if (!was || quality < was.quality) best.set(r.k, { member: m.id, hash: r.h, quality });
    }
  }
  return new Map([...best].map(([k, v]) => [k, { member: v.member, hash: v.hash }]));
}

/** What a mart staged of each call event: the member it kept and a hash of the row (as keptVersions hashes it). */
export async function stagedVersions(mart: Pool): Promise<Map<string, { member: string; hash: string }>> {
  const { rows } = await mart.query<{ k: string; member: string; h: string }>(
    `select call_id::text || '/' || seq as k, member_id as member, ${VERSION_HASH} as h from stg_call_event e`,
  );
  return new Map(rows.map((r) => [r.k, { member: r.member, hash: r.h }]));
}

const VERSION_HASH = `md5(row(e.source_id, e.event, extract(epoch from e.event_ts), e.media, e.direction, e.ani, e.dnis,
  e.queue, e.agent_id, e.attrs)::text)`;
