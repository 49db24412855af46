/**
 * The chaos run's check at the end, with its own SQL (docs/chaos.md): what the collectors
 * recorded, read from the IDBs (and from the members the run wiped or rolled back, as
 * they were just before), against what every live mart holds.
 */
import type { Pool } from 'pg';
import type { Pools } from '../db';

/** Natural keys of call events, `call_id/seq`, with the call they belong to. */
export type Recorded = Map<string, string>;

/** Every call event a member holds now. */
export async function memberEvents(pools: Pools, url: string): Promise<Recorded> {
  const { rows } = await pools.get(url).query<{ call_id: string; seq: number }>('select call_id::text, seq from idb.call_event');
  return new Map(rows.map((r) => [`${r.call_id}/${r.seq}`, r.call_id]));
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

export function violationCount(v: Violations): number {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return sum(v.lost) + sum(v.duplicated) + sum(v.phantoms) + sum(v.chunksTwice) + sum(v.wrongFacts);
}
