/**
 * The chaos run's check at the end, with its own SQL (docs/chaos.md): what the collectors
 * recorded, read from the IDBs (and from the members the run wiped or rolled back, as
 * they were just before), against what every live mart holds.
 */
import type { Pool } from 'pg';
import type { Queryable } from '../db';

/** Natural keys of call events, `call_id/seq`, with the call they belong to. */
export type Recorded = Map<string, string>;

/** Every call event a member holds now. */
export async function memberEvents(db: Queryable): Promise<Recorded> {
  const { rows } = await db.query<{ call_id: string; seq: number }>('select call_id::text, seq from idb.call_event');
  return new Map(rows.map((r) => [`${r.call_id}/${r.seq}`, r.call_id]));
}

/** A collector's session as its IDB records it, in epoch ms; `end` null while it is open. */
export interface Session {
  member: string;
  sourceId: string;
  start: number;
  end: number | null;
}

/** Every session a member records now. */
export async function memberSessions(db: Queryable, member: string): Promise<Session[]> {
  const { rows } = await db.query<{ source_id: string; s: string; e: string | null }>(
    `select source_id, (extract(epoch from conn_start) * 1000)::text as s, (extract(epoch from conn_end) * 1000)::text as e from idb.dss_session`,
  );
  return rows.map((r) => ({ member, sourceId: r.source_id, start: Number(r.s), end: r.e === null ? null : Number(r.e) }));
}

export interface Violations {
  /** Recorded events a live mart does not hold, per site. */
  lost: Record<string, number>;
  /**
   * Events whose only copy was in a member the run wiped or restored before any ETL read
   * it: gone with that member's disk, which no reader can prevent; counted, not a violation.
   */
  goneWithMember: Record<string, number>;
  /** Natural keys a mart holds more than once (its primary key forbids it; counted anyway). */
  duplicated: Record<string, number>;
  /** Events a mart holds that no collector recorded. */
  phantoms: Record<string, number>;
  /** Chunks of one member and snapshot range committed twice. */
  chunksTwice: Record<string, number>;
  /** Calls whose fact is missing or counts other events than the calls' distinct events. */
  wrongFacts: Record<string, number>;
  /** A few examples of each, for the report. */
  examples: string[];
}

/**
 * Compares each live mart with what was recorded. `surviving`: every event a member
 * holds now, which every live mart must hold. `wiped`: what the members the run wiped
 * or restored held just before; a mart may hold those (it read them in time) and must
 * not hold anything outside both.
 */
export async function checkMarts(marts: Record<string, Pool>, surviving: Recorded, wiped: Recorded): Promise<Violations> {
  const v: Violations = { lost: {}, goneWithMember: {}, duplicated: {}, phantoms: {}, chunksTwice: {}, wrongFacts: {}, examples: [] };
  const example = (s: string) => v.examples.length < 20 && v.examples.push(s);
  const atRisk = [...wiped].filter(([k]) => !surviving.has(k));
  for (const [site, mart] of Object.entries(marts)) {
    const { rows } = await mart.query<{ k: string; n: string }>("select call_id::text || '/' || seq as k, count(*) as n from stg_call_event group by 1");
    const staged = new Map(rows.map((r) => [r.k, Number(r.n)]));
    const lost = [...surviving.keys()].filter((k) => !staged.has(k));
    const phantoms = [...staged.keys()].filter((k) => !surviving.has(k) && !wiped.has(k));
    v.lost[site] = lost.length;
    v.goneWithMember[site] = atRisk.filter(([k]) => !staged.has(k)).length;
    v.phantoms[site] = phantoms.length;
    v.duplicated[site] = [...staged.values()].filter((n) => n > 1).length;
    lost.slice(0, 3).forEach((k) => example(`${site} lacks ${k}`));
    phantoms.slice(0, 3).forEach((k) => example(`${site} holds ${k}, which no collector recorded`));
    // Within one reading of a member: after a reset (a restore reuses xids, so the re-read
    // may cut the same snapshot ranges again) the member is read anew, which is no double commit.
    const twice = await mart.query<{ member_id: string; n: string }>(
      `with a as (
         select member_id, incarnation, snapshot_from::text as f, snapshot_to::text as t, call_rows + agent_rows + session_rows as rows,
                count(reset_reason) over (partition by member_id order by audit_id) as reading
           from ctl_load_audit)
       select member_id, count(*)::text as n from (
         select member_id from a where rows > 0 group by member_id, incarnation, reading, f, t having count(*) > 1) d
        group by 1`,
    );
    v.chunksTwice[site] = twice.rows.reduce((s, r) => s + Number(r.n), 0);
    for (const r of twice.rows) example(`${site}: ${r.n} chunks of ${r.member_id} committed twice`);
    // A call's fact counts its surviving events and those of its wiped ones this mart read in time.
    const perCall = new Map<string, number>();
    for (const callId of surviving.values()) perCall.set(callId, (perCall.get(callId) ?? 0) + 1);
    for (const [k, callId] of atRisk) if (staged.has(k)) perCall.set(callId, (perCall.get(callId) ?? 0) + 1);
    const facts = await mart.query<{ call_id: string; event_count: number }>('select call_id::text, event_count from interaction_fact');
    const counted = new Map(facts.rows.map((r) => [r.call_id, r.event_count]));
    const wrong = [...perCall].filter(([callId, n]) => counted.get(callId) !== n);
    v.wrongFacts[site] = wrong.length;
    wrong.slice(0, 3).forEach(([callId, n]) => example(`${site}: call ${callId} has ${counted.get(callId) ?? 'no'} fact events, ${n} recorded`));
  }
  return v;
}

/**
 * Where members recorded one event differently, every live mart must keep the same
 * version (the best-quality rule does not depend on the loading site). Events a wiped
 * member held are left out: its better version may have gone before one mart read it.
 * Returns the events kept differently and how many events have a version of one member
 * in the first mart (so a run shows it had divergence to test).
 */
export async function checkVersions(marts: Record<string, Pool>, exclude: Recorded): Promise<{ differ: number; variants: number; examples: string[] }> {
  const kept: [string, Map<string, string>][] = [];
  let variants = 0;
  for (const [site, mart] of Object.entries(marts)) {
    const { rows } = await mart.query<{ k: string; h: string; v: boolean }>(
      `select call_id::text || '/' || seq as k, md5(row(event, event_ts, ani, dnis, queue, agent_id, attrs)::text) as h, attrs ? 'recordedBy' as v
         from stg_call_event`,
    );
    if (!kept.length) variants = rows.filter((r) => r.v).length;
    kept.push([site, new Map(rows.map((r) => [r.k, r.h]))]);
  }
  const examples: string[] = [];
  let differ = 0;
  const [first, ...others] = kept;
  for (const [site, versions] of others) {
    for (const [k, h] of first![1]) {
      const other = versions.get(k);
      if (other === undefined || other === h || exclude.has(k)) continue;
      differ++;
      if (examples.length < 3) examples.push(`${first![0]} and ${site} keep different versions of ${k}`);
    }
  }
  return { differ, variants, examples };
}

/** Session times are copied, not measured: a millisecond covers rounding in `extract(epoch …)`. */
const SLACK_MS = 1;

/** Windows of [from, until) that no session covers. */
function uncovered(sessions: Session[], from: number, until: number): [number, number][] {
  const out: [number, number][] = [];
  let coveredUntil = from;
  for (const s of [...sessions].sort((a, b) => a.start - b.start)) {
    if (s.start >= until) break;
    if (s.start > coveredUntil + SLACK_MS) out.push([coveredUntil, s.start]);
    coveredUntil = Math.max(coveredUntil, s.end ?? Infinity);
  }
  if (coveredUntil < until - SLACK_MS) out.push([coveredUntil, until]);
  return out.filter(([a, b]) => b - a > SLACK_MS);
}

const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : 'open');

/**
 * `ctl_data_gap` against the collectors' own sessions, per live mart and source:
 * - no gap overlaps a session that a member records now (open sessions last forever);
 * - every window from a source's first session to `until` (when traffic stopped) that
 *   no session covers, counting those of the wiped members as they were (an open one
 *   ends when its member stopped), lies within a gap. A mart may see more gap than that
 *   (it never read a wiped member's last sessions), never less.
 * Returns one line per violation.
 */
export async function checkGaps(marts: Record<string, Pool>, surviving: Session[], wiped: Session[], until: number): Promise<string[]> {
  const out: string[] = [];
  const sources = [...new Set([...surviving, ...wiped].map((s) => s.sourceId))].sort();
  for (const [site, mart] of Object.entries(marts)) {
    const { rows } = await mart.query<{ source_id: string; s: string; e: string | null }>(
      `select source_id, (extract(epoch from gap_start) * 1000)::text as s, (extract(epoch from gap_end) * 1000)::text as e from ctl_data_gap`,
    );
    const gaps = rows.map((r) => ({ sourceId: r.source_id, start: Number(r.s), end: r.e === null ? Infinity : Number(r.e) }));
    for (const source of sources) {
      const mine = gaps.filter((g) => g.sourceId === source);
      for (const g of mine) {
        for (const s of surviving.filter((x) => x.sourceId === source)) {
          const overlap = Math.min(g.end, s.end ?? Infinity) - Math.max(g.start, s.start);
          if (overlap > SLACK_MS) out.push(`${site}: gap ${iso(g.start)}..${iso(g.end)} of ${source} while ${s.member} had a session (${iso(s.start)}..${iso(s.end ?? Infinity)})`);
        }
      }
      const all = [...surviving, ...wiped].filter((x) => x.sourceId === source);
      const first = Math.min(...all.map((s) => s.start));
      for (const [a, b] of uncovered(all, first, until)) {
        if (!mine.some((g) => g.start <= a + SLACK_MS && g.end >= b - SLACK_MS)) out.push(`${site}: no gap recorded for ${source} over ${iso(a)}..${iso(b)}, when no member had a session`);
      }
    }
  }
  return out;
}

export function violationCount(v: Violations): number {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return sum(v.lost) + sum(v.duplicated) + sum(v.phantoms) + sum(v.chunksTwice) + sum(v.wrongFacts);
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * What a workflow's history must never carry (ids and counts only): a database URL, a
 * password of the config's, the id of a call the collectors recorded (a row's key).
 * Pure: `text` is every string of the histories (src/temporal/history-text.ts).
 */
export function historyLeaks(workflowId: string, text: string, callIds: Set<string>, passwords: string[]): string[] {
  const out: string[] = [];
  const url = /postgres(?:ql)?:\/\//i.exec(text);
  if (url) out.push(`${workflowId}: a database URL in its history`);
  for (const pw of passwords) if (text.includes(pw)) out.push(`${workflowId}: a password in its history`);
  const calls = new Set([...text.matchAll(UUID)].map((m) => m[0]).filter((id) => callIds.has(id)));
  if (calls.size) out.push(`${workflowId}: ${calls.size} recorded call ids in its history, e.g. ${[...calls][0]}`);
  return out;
}
