/**
 * `npm run chaos -- --minutes M --seed S [--temporal dev|per-site] [--keep] [--kinds a,b]
 * [--per-kind N] [--gap S]` (docs/chaos.md): the two-site world under steady traffic while the seed's schedule
 * injects real faults, several at once where possible; each fault is printed as it
 * fires with how long the system took to recover; then the traffic stops, every live
 * site drains, and the check compares what the collectors recorded with every mart.
 * The last line is one JSON summary; the exit code is 1 on any violation.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../logger';
import { runSim } from '../sim';
import { membersBehind } from '../etl/backlog';
import { loadBacklog } from '../mart/control';
import { compareMarts } from '../parity';
import { startAll } from '../temporal/connection';
import { historyText } from '../temporal/history-text';
import { drStatusQuery } from '../workflows/dr-messages';
import { DR_PROBES_WORKFLOW_ID, DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import { waitFor } from '../wait';
import type { Layout, TemporalMode } from '../dev/world';
import { openBenchWorld, type BenchWorld } from '../bench/world';
import { checkGaps, checkMarts, checkVersions, historyLeaks, memberEvents, memberSessions, violationCount, type Recorded, type Session } from './check';
import { ownInstance, runFault, takeBackups, type ChaosContext } from './faults';
import { FAULT_KINDS, faultSpan, formatSchedule, planFaults, planTraffic, type Fault, type FaultKind } from './schedule';

/**
 * Two sets split across the sites, each member on a PostgreSQL of its own (so one can
 * fail alone), and a set wholly at dc1 on dc1's instance (lost with dc1, and stopped
 * with dc1's mart).
 */
export const CHAOS_LAYOUT: Layout = {
  'sw-voice-1': [
    { site: 'dc1', db: 'idb_voice_1', instance: 'v1-dc1' },
    { site: 'dc2', db: 'idb_voice_1', instance: 'v1-dc2' },
  ],
  'sw-voice-2': [
    { site: 'dc2', db: 'idb_voice_2', instance: 'v2-dc2' },
    { site: 'dc1', db: 'idb_voice_2', instance: 'v2-dc1' },
  ],
  'sw-chat-1': [
    { site: 'dc1', db: 'idb_chat_1a' },
    { site: 'dc1', db: 'idb_chat_1b' },
  ],
};

export interface ChaosOptions {
  minutes: number;
  seed: number;
  temporal: TemporalMode;
  keep: boolean;
  kinds?: FaultKind[];
  /** Calls per second of steady traffic (default 4). */
  rate?: number;
  /** Run until each kind has fired this many times (`minutes` then only bounds nothing; see planFaults). */
  perKind?: number;
  /** Mean seconds between fault starts (default 6). */
  meanGapSeconds?: number;
}

export interface ChaosSummary {
  seed: number;
  minutes: number;
  faultsByKind: Record<string, number>;
  eventsWritten: number;
  eventsLost: number;
  /** Events whose only copy was in a member wiped before any ETL read it (the most of any mart). */
  eventsGoneWithMember: number;
  eventsDuplicated: number;
  phantoms: number;
  chunksTwice: number;
  wrongFacts: number;
  malformedKept: number;
  /** Events whose kept version is one member's own (members disagreed on its content). */
  divergentEvents: number;
  /** Events two live marts keep in different versions. */
  versionsDiffer: number;
  /** Windows in the first live mart's ctl_data_gap. */
  dataGaps: number;
  /** Windows where ctl_data_gap disagrees with the collectors' sessions (listed in violations). */
  dataGapViolations: number;
  parity: boolean;
  drPhase: string;
  recoverySeconds: Record<string, { p50: number; max: number }>;
  violations: string[];
}

/** Seconds of traffic written at once before the run, so it starts in steady state. */
const HISTORY_SECONDS = 30;
/** Share of events one member records with other attached data. */
const DIVERGENT = 0.02;

const quantile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

/**
 * A probe call in every member that answers; resolves with the seconds until every live
 * mart has them all. A probe in a member that an overlapping fault wipes before it was
 * read is gone with it and no longer awaited; when all are, a new round is written.
 */
async function recovery(ctx: ChaosContext, timeoutMs = 240_000): Promise<number> {
  const { w } = ctx;
  const t0 = Date.now();
  let probes: { id: string; member: string; wipes: number }[] = [];
  const live = async () => {
    // Asked under a deadline and again on failure: right after a Temporal restart the first calls may not be answered.
    const dr = await waitFor('the DR status', () => w.client.withDeadline(Date.now() + 10_000, () => w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery)), timeoutMs, 500);
    return Object.keys(w.config.sites).filter((s) => dr.sites[s] === 'active');
  };
  await waitFor('every live mart to hold the probes', async () => {
    probes = probes.filter((p) => (ctx.wipes.get(p.member) ?? 0) === p.wipes);
    if (!probes.length) {
      for (const m of w.config.members) {
        const id = randomUUID();
        const wipes = ctx.wipes.get(m.id) ?? 0;
        await w
          .idb(m)
          .query(`insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction) values ($1, 1, $2, 'created', now(), $3, 'inbound')`, [
            id,
            m.sourceId,
            m.sourceId.includes('chat') ? 'chat' : 'voice',
          ])
          .then(() => probes.push({ id, member: m.id, wipes }), () => undefined);
      }
      if (!probes.length) return false;
    }
    const ids = probes.map((p) => p.id);
    for (const site of await live()) {
      const { rows } = await w.mart(site).query('select count(distinct call_id)::int as n from interaction_fact where call_id = any($1::uuid[])', [ids]);
      if (rows[0].n < ids.length) return false;
    }
    return true;
  }, timeoutMs, 200);
  return (Date.now() - t0) / 1000;
}

/** Every live site has read every member to its end and transformed it all. */
async function drained(w: BenchWorld, site: string): Promise<boolean> {
  for (const { rows } of await membersBehind(w.config, w.pools, site)) if (rows !== 0) return false;
  const b = await loadBacklog(w.mart(site));
  return b.dirty === 0 && b.pendingChunks === 0;
}

export async function runChaos(opts: ChaosOptions, print: (line: string) => void): Promise<ChaosSummary> {
  const w = await openBenchWorld(`chaos-${opts.seed}`, { layout: CHAOS_LAYOUT, reporting: true, temporal: opts.temporal, statements: false });
  try {
    await startAll(w.client, w.config);
    const memberFaultable = w.config.members.filter((m) => ownInstance(w.state, m)).map((m) => ({ id: m.id, site: m.site }));
    const faults = planFaults({
      seed: opts.seed,
      seconds: opts.minutes * 60,
      sites: Object.keys(w.config.sites),
      members: memberFaultable,
      kinds: opts.kinds,
      perKind: opts.perKind,
      meanGapSeconds: opts.meanGapSeconds,
    });
    // With perKind the schedule sets the length: traffic runs until its last fault settled.
    const seconds = opts.perKind === undefined ? opts.minutes * 60 : Math.max(...faults.map((f) => f.at + faultSpan(f)));
    print(`chaos seed ${opts.seed}, ${(seconds / 60).toFixed(1)} min, ${faults.length} faults (world at ${w.state.root}):\n${formatSchedule(faults)}`);
    const backupDir = join(w.state.root, 'backups');
    mkdirSync(backupDir, { recursive: true });
    const traffic = new AbortController();
    const rate = opts.rate ?? 4;
    const troubles = planTraffic({ seed: opts.seed, seconds, rate, members: w.config.members.map((m) => m.id), offsetCalls: HISTORY_SECONDS * rate });
    print(`traffic: ${rate} calls/s, ${troubles.gaps.length} collector gaps, ${troubles.lateCommits.length} late commits, ${DIVERGENT * 100}% of events recorded differently by one member`);
    const sim = runSim(
      w.config,
      { calls: 10_000_000, rate, seed: opts.seed, historySeconds: HISTORY_SECONDS, divergent: DIVERGENT, ...troubles },
      silentLogger,
      traffic.signal,
    );
    const ctx: ChaosContext = { w, wiped: new Map(), wipedSessions: [], wipes: new Map(), malformed: new Set(), backups: await takeBackups(w.state, backupDir) };
    const recoveries: Record<string, number[]> = {};
    const failures: string[] = [];
    const t0 = Date.now();
    const running = new Set<Promise<void>>();
    let exclusive: Promise<void> | null = null;
    const fire = async (f: Fault): Promise<void> => {
      const started = Date.now();
      try {
        // A fault that never returns is a finding, not a reason for the run to hang.
        const limit = (faultSpan(f) + 300) * 1000;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          runFault(ctx, f),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`did not return within ${limit / 1000} s`)), limit))),
        ]).finally(() => clearTimeout(timer));
        const r = await recovery(ctx);
        (recoveries[f.kind] ??= []).push(r);
        print(`${((started - t0) / 1000).toFixed(1).padStart(7)} s  ${f.kind.padEnd(16)} ${f.member ?? f.site}: over after ${((Date.now() - started) / 1000 - r).toFixed(1)} s, recovered in ${r.toFixed(1)} s`);
      } catch (e) {
        failures.push(`${f.kind} ${f.member ?? f.site} at ${f.at} s: ${(e as Error).message}`);
        print(`${((started - t0) / 1000).toFixed(1).padStart(7)} s  ${f.kind.padEnd(16)} ${f.member ?? f.site}: FAILED: ${(e as Error).message}`);
      }
    };
    for (const f of faults) {
      const wait = t0 + f.at * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      // A site's loss waits for whatever runs; anything else waits while one is under way.
      if (f.kind === 'site-loss') await Promise.all(running);
      if (exclusive) await exclusive;
      const p = fire(f).finally(() => running.delete(p));
      running.add(p);
      if (f.kind === 'site-loss') exclusive = p.finally(() => (exclusive = null));
    }
    await Promise.all(running);
    const trafficStopped = Date.now();
    traffic.abort();
    await sim.catch(() => undefined);
    const sites = Object.keys(w.config.sites);
    for (const site of sites) await waitFor(`${site} drained`, () => drained(w, site), 300_000, 500).catch((e: Error) => failures.push(e.message));

    // What the collectors recorded: every member now, and the members wiped on the way as they were.
    const surviving: Recorded = new Map();
    const sessions: Session[] = [];
    for (const m of w.config.members) {
      const idb = w.pools.get(m.collectorUrl ?? m.url);
      for (const [k, c] of await memberEvents(idb)) surviving.set(k, c);
      sessions.push(...(await memberSessions(idb, m.id)));
    }
    const wiped: Recorded = new Map(ctx.wiped);
    for (const k of ctx.malformed) {
      surviving.delete(k);
      wiped.delete(k);
    }
    const marts = Object.fromEntries(sites.map((s) => [s, w.mart(s)]));
    const v = await checkMarts(marts, surviving, wiped);
    const gapViolations = await checkGaps(marts, sessions, ctx.wipedSessions, trafficStopped);
    const versions = await checkVersions(marts, ctx.wiped);
    const { rows: gapRows } = await w.mart(sites[0]!).query<{ n: number }>('select count(*)::int as n from ctl_data_gap');
    let malformedKept = 0;
    for (const site of sites) {
      const { rows } = await w.mart(site).query("select count(*)::int as n from ctl_discard where table_name = 'call_event' and natural_key = any($1)", [[...ctx.malformed]]);
      malformedKept += ctx.malformed.size - rows[0].n;
    }
    const parity = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date() });
    const dr = await w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
    const callIds = new Set([...surviving.values(), ...wiped.values()]);
    const passwords = [...w.config.members.map((m) => m.url), ...sites.map((s) => w.config.sites[s]!.mart)].map((u) => decodeURIComponent(new URL(u).password)).filter(Boolean);
    const leaks: string[] = [];
    for (const id of [...sites.map(etlWorkflowId), DR_WORKFLOW_ID, DR_PROBES_WORKFLOW_ID]) {
      leaks.push(...historyLeaks(id, (await historyText(w.client, id)).text, callIds, passwords));
    }
    const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    const summary: ChaosSummary = {
      seed: opts.seed,
      minutes: Math.round(seconds / 6) / 10,
      faultsByKind: Object.fromEntries(FAULT_KINDS.map((k) => [k, faults.filter((f) => f.kind === k).length]).filter(([, n]) => n)),
      eventsWritten: new Set([...surviving.keys(), ...wiped.keys()]).size,
      eventsLost: sum(v.lost),
      eventsGoneWithMember: Math.max(0, ...Object.values(v.goneWithMember)),
      eventsDuplicated: sum(v.duplicated),
      phantoms: sum(v.phantoms),
      chunksTwice: sum(v.chunksTwice),
      wrongFacts: sum(v.wrongFacts),
      malformedKept,
      divergentEvents: versions.variants,
      versionsDiffer: versions.differ,
      dataGaps: gapRows[0]!.n,
      dataGapViolations: gapViolations.length,
      parity: parity.match,
      drPhase: dr.phase,
      recoverySeconds: Object.fromEntries(Object.entries(recoveries).map(([k, xs]) => [k, { p50: Number(quantile(xs, 0.5).toFixed(2)), max: Number(Math.max(...xs).toFixed(2)) }])),
      violations: [
        ...failures,
        ...v.examples,
        ...gapViolations.slice(0, 10),
        ...versions.examples,
        ...(malformedKept ? [`${malformedKept} malformed rows not discarded`] : []),
        ...leaks,
        ...(parity.match ? [] : [`parity: ${parity.mismatches.length} mismatching intervals`]),
        ...(dr.phase === 'normal' && sites.every((s) => dr.sites[s] === 'active') ? [] : [`the DR workflow ended in phase ${dr.phase}`]),
      ],
    };
    if (violationCount(v) && !summary.violations.length) summary.violations.push('see the counts');
    if (opts.keep) print(`world kept: config ${w.configFile}`);
    return summary;
  } finally {
    if (!opts.keep) await w.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '3' },
      seed: { type: 'string' },
      temporal: { type: 'string', default: 'dev' },
      keep: { type: 'boolean', default: false },
      kinds: { type: 'string' },
      rate: { type: 'string' },
      'per-kind': { type: 'string' },
      gap: { type: 'string' },
    },
    strict: true,
  });
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error(`--minutes needs a positive number, got ${values.minutes}`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed needs a non-negative integer, got ${values.seed}`);
  if (values.temporal !== 'dev' && values.temporal !== 'per-site') throw new Error(`--temporal must be dev or per-site, got "${values.temporal}"`);
  const kinds = values.kinds?.split(',').map((k) => k.trim()) as FaultKind[] | undefined;
  for (const k of kinds ?? []) if (!FAULT_KINDS.includes(k)) throw new Error(`--kinds: unknown fault kind "${k}" (kinds: ${FAULT_KINDS.join(', ')})`);
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  const perKind = values['per-kind'] === undefined ? undefined : Number(values['per-kind']);
  if (perKind !== undefined && !(Number.isInteger(perKind) && perKind > 0)) throw new Error(`--per-kind needs a positive integer, got ${values['per-kind']}`);
  const meanGapSeconds = values.gap === undefined ? undefined : Number(values.gap);
  if (meanGapSeconds !== undefined && !(meanGapSeconds >= 0.5)) throw new Error(`--gap needs a number of seconds of at least 0.5, got ${values.gap}`);
  const summary = await runChaos({ minutes, seed, temporal: values.temporal, keep: values.keep, kinds, rate, perKind, meanGapSeconds }, (l) =>
    process.stdout.write(l + '\n'),
  );
  process.stdout.write(JSON.stringify(summary) + '\n');
  const bad = summary.eventsLost + summary.eventsDuplicated + summary.phantoms + summary.chunksTwice + summary.wrongFacts + summary.versionsDiffer + summary.violations.length;
  return bad ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`chaos: ${e.message}\n`);
      process.exit(2);
    },
  );
}
