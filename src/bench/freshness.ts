/**
 * Freshness under steady traffic: the simulator runs in real time in its own process
 * (`twinmart sim`, as a collector would write) at a target event rate, starting with the
 * profile's history of traffic written at once (agents logged in, calls in progress), so
 * the window sees the sources' steady rate, not their start; after a warm-up a
 * probe writer commits one call event (autocommit, event_ts = now()) into a member IDB
 * every ~100 ms, members taken in turn, and notes when the commit returned; a watcher
 * polls each mart's interaction_fact for the outstanding probe call ids every ~20 ms.
 * Latency = the start of the first poll that saw the call minus the commit time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Member } from '../config';
import { repoRoot } from '../paths';
import { mediaOf } from '../sim/model';
import { etlWorkflowId } from '../workflows/names';
import { startAnchor, type Anchor } from './anchor';
import { cpuWindow, type CpuCost } from './cpu';
import { historyGrowth, historyPoint, type HistoryGrowth } from './footprint';
import { cyclesInRow, waitIdle } from './idle';
import type { Profile } from './profile';
import type { BenchWorld } from './world';
import { distribution, log, round, seconds, sleep, type Distribution } from './util';

export interface SiteFreshness extends Distribution {
  missing: number;
  cycles: number | null;
  history: HistoryGrowth | null;
}

/** PostgreSQL's logical replication of one member, beside twinmart's freshness of the same probes (src/bench/anchor.ts). */
export interface AnchorFreshness extends Distribution {
  member: string;
  /** The site whose mart server subscribes. */
  site: string;
  missing: number;
  /** twinmart's freshness of the same probes in that site's mart. */
  twinmart: Distribution;
  /** twinmart's p99 over logical replication's. */
  ratioP99: number | null;
}

export interface FreshnessLevel extends Distribution {
  measured: boolean;
  targetEventsPerSecond: number;
  /** Distinct events per second the data sources committed during the window (each set counted once). */
  achievedEventsPerSecond: number | null;
  /** Rows per second committed over every member IDB. */
  achievedRowsPerSecond: number | null;
  callsPerSecond: number | null;
  probes: number;
  missing: number;
  /** Distinct events the data sources had committed when the window opened: what each mart held, caught up. */
  eventsBefore: number | null;
  /** Seconds after the warm-up until both ETLs ran steady cycles (the window opens then), and whether they did. */
  settleSeconds: number | null;
  steady: boolean | null;
  windowSeconds: number;
  sites: Record<string, SiteFreshness>;
  /** CPU of each component in the window, per 1,000 events; null when not measured. */
  cpu: CpuCost | null;
  logicalReplication: AnchorFreshness | null;
  note?: string;
}

export function unmeasured(rate: number, note: string): FreshnessLevel {
  return {
    measured: false,
    targetEventsPerSecond: rate,
    achievedEventsPerSecond: null,
    achievedRowsPerSecond: null,
    callsPerSecond: null,
    eventsBefore: null,
    probes: 0,
    missing: 0,
    settleSeconds: null,
    steady: null,
    windowSeconds: 0,
    samples: 0,
    p50Seconds: null,
    p95Seconds: null,
    p99Seconds: null,
    maxSeconds: null,
    meanSeconds: null,
    sites: {},
    cpu: null,
    logicalReplication: null,
    note,
  };
}

/**
 * The simulator's history (300 s at 5,000 events/s: some 1.4M events, among them the
 * login of every agent) reaches the IDBs in the first minute: a backlog the ETLs load
 * while the traffic goes on, before the level is steady traffic. After the warm-up the
 * window opens only once each site's ETL ran STEADY_CYCLES cycles in a row of under
 * STEADY_CYCLE_SECONDS each, or after the profile's steadyMaxSeconds (the level then says
 * it was not steady).
 */
const STEADY_CYCLES = 3;
const STEADY_CYCLE_SECONDS = 2;

async function waitSteady(w: BenchWorld, sites: string[], maxSeconds: number): Promise<{ seconds: number; steady: boolean }> {
  const t0 = Date.now();
  const short = (c: { startedAt: string; finishedAt: string }) =>
    Date.parse(c.finishedAt) - Date.parse(c.startedAt) < STEADY_CYCLE_SECONDS * 1000;
  const runs = sites.map((site) => cyclesInRow(w, site, short));
  while (Date.now() - t0 < maxSeconds * 1000) {
    const inRow = await Promise.all(runs.map((run) => run()));
    if (inRow.every((n) => n >= STEADY_CYCLES)) return { seconds: seconds(Date.now() - t0), steady: true };
    await sleep(200);
  }
  return { seconds: seconds(Date.now() - t0), steady: false };
}

/** `twinmart sim` in real time as a child process; stop() ends it with SIGINT as an operator would. */
function startTraffic(
  w: BenchWorld,
  traffic: { callsPerSecond: number; calls: number; historySeconds: number; seed: number },
): { stop(): Promise<void>; exited: () => boolean; pid: number | null } {
  const args = ['--calls', traffic.calls, '--rate', traffic.callsPerSecond, '--history-seconds', traffic.historySeconds, '--seed', traffic.seed];
  const child: ChildProcess = spawn(
    process.execPath,
    [join(repoRoot, 'bin', 'twinmart.js'), 'sim', ...args.map(String), '--config', w.configFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let done = false;
  const exited = new Promise<void>((ok) =>
    child.once('exit', (code) => {
      done = true;
      if (code) log.warn(`background sim exited with ${code}: ${stderr.split('\n').slice(-5).join(' | ')}`);
      ok();
    }),
  );
  return {
    exited: () => done,
    pid: child.pid ?? null,
    async stop() {
      if (done) return;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Highest row id per member (call + agent tables): rows committed so far, cheap (primary key). */
async function rowsPerMember(w: BenchWorld): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(
    w.config.members.map(async (m) => {
      const { rows } = await w.idb(m).query<{ n: string }>(
        `select ((select coalesce(max(id), 0) from idb.call_event) + (select coalesce(max(id), 0) from idb.agent_event))::text as n`,
      );
      out.set(m.id, Number(rows[0]!.n));
    }),
  );
  return out;
}

interface Probe {
  member: Member;
  committedAt: number;
  /** When each watcher (a site, or ANCHOR) first saw it. */
  seen: Map<string, number>;
}

const ANCHOR = 'logical-replication';

function anchorFreshness(anchor: Anchor, probes: Map<string, Probe>, lags: number[], missing: number): AnchorFreshness {
  const own = [...probes.values()].filter((p) => p.member.id === anchor.member.id && p.seen.has(anchor.site));
  const twinmart = distribution(own.map((p) => p.seen.get(anchor.site)! - p.committedAt));
  const pushed = distribution(lags);
  return {
    member: anchor.member.id,
    site: anchor.site,
    missing,
    ...pushed,
    twinmart,
    ratioP99: twinmart.p99Seconds !== null && pushed.p99Seconds ? round(twinmart.p99Seconds / pushed.p99Seconds, 1) : null,
  };
}

export async function freshnessLevel(
  w: BenchWorld,
  rate: number,
  profile: Profile['freshness'],
  correction: number,
  seed: number,
  anchor: Anchor | null,
): Promise<FreshnessLevel> {
  const sites = Object.keys(w.config.sites);
  const callsPerSecond = round((rate / profile.eventsPerCall) * correction, 2);
  const totalSeconds =
    profile.historySeconds + profile.warmupSeconds + profile.steadyMaxSeconds + profile.windowSeconds + profile.drainSeconds + 60;
  log.info(
    `freshness at ${rate} events/s: background ${callsPerSecond} calls/s after ${profile.historySeconds} s of history, ` +
      `warm-up ${profile.warmupSeconds} s, window ${profile.windowSeconds} s`,
  );
  const traffic = startTraffic(w, {
    callsPerSecond,
    calls: Math.ceil(callsPerSecond * totalSeconds),
    historySeconds: profile.historySeconds,
    seed,
  });
  const probes = new Map<string, Probe>();
  // What each watcher polls: every site's mart for every probe, the anchor's subscriber for its member's.
  const targets = [
    ...sites.map((site) => ({
      key: site,
      wants: () => true,
      holds: async (ids: string[]) =>
        (await w.mart(site).query<{ call_id: string }>('select call_id::text from interaction_fact where call_id = any($1::uuid[])', [ids])).rows.map((r) => r.call_id),
    })),
    ...(anchor ? [{ key: ANCHOR, wants: (p: Probe) => p.member.id === anchor.member.id, holds: (ids: string[]) => anchor.holds(ids) }] : []),
  ];
  const latencies: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.key, []]));
  const probeRows = new Map<string, number>();
  let writing = true;
  let watching = true;
  try {
    await sleep(profile.warmupSeconds * 1000);
    if (traffic.exited()) throw new Error('the background simulator stopped during the warm-up');
    const settle = await waitSteady(w, sites, profile.steadyMaxSeconds);
    if (!settle.steady) log.warn(`  the ETLs did not run steady cycles within ${profile.steadyMaxSeconds} s after the warm-up; measuring anyway`);
    else log.info(`  steady ${settle.seconds} s after the warm-up`);
    const rows0 = await rowsPerMember(w);
    const cpu = await cpuWindow(w);
    const h0 = await Promise.all(sites.map((s) => historyPoint(w.client, etlWorkflowId(s))));
    const t0 = Date.now();

    const inFlight = new Set<Promise<void>>();
    const writer = (async () => {
      let i = 0;
      for (let next = Date.now(); writing; next += profile.probeEveryMs) {
        const member = w.config.members[i++ % w.config.members.length]!;
        const callId = randomUUID();
        const p = w
          .idb(member)
          .query(
            `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
             values ($1, 1, $2, 'created', now(), $3, 'inbound')`,
            [callId, member.sourceId, mediaOf(member.sourceId)],
          )
          .then(
            () => {
              probes.set(callId, { member, committedAt: Date.now(), seen: new Map() });
              probeRows.set(member.id, (probeRows.get(member.id) ?? 0) + 1);
            },
            (e: Error) => log.warn('probe insert failed', { member: member.id, error: e.message }),
          );
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        await sleep(Math.max(0, next + profile.probeEveryMs - Date.now()));
      }
      await Promise.all(inFlight);
    })();

    const watchers = targets.map(async (target) => {
      while (watching) {
        const open = [...probes.entries()].filter(([, p]) => target.wants(p) && !p.seen.has(target.key)).map(([id]) => id);
        if (!open.length) {
          await sleep(profile.pollEveryMs);
          continue;
        }
        const asked = Date.now();
        for (const id of await target.holds(open)) {
          const p = probes.get(id)!;
          p.seen.set(target.key, asked);
          latencies[target.key]!.push(asked - p.committedAt);
        }
        await sleep(Math.max(0, profile.pollEveryMs - (Date.now() - asked)));
      }
    });

    await sleep(profile.windowSeconds * 1000);
    writing = false;
    await writer;
    const t1 = Date.now();
    const rows1 = await rowsPerMember(w);
    const cpuEnd = cpu.stop(traffic.pid);
    const h1 = await Promise.all(sites.map((s) => historyPoint(w.client, etlWorkflowId(s))));
    // The traffic goes on while the last probes drain, so they see the same load.
    const drainUntil = Date.now() + profile.drainSeconds * 1000;
    while (Date.now() < drainUntil && [...probes.values()].some((p) => targets.some((t) => t.wants(p) && !p.seen.has(t.key)))) await sleep(100);
    watching = false;
    await Promise.all(watchers);

    const windowS = (t1 - t0) / 1000;
    const firstOfSet = new Map<string, Member>();
    for (const m of w.config.members) if (!firstOfSet.has(m.sourceId)) firstOfSet.set(m.sourceId, m);
    const eventsBefore = [...firstOfSet.values()].reduce((a, m) => a + (rows0.get(m.id) ?? 0), 0);
    const delta = (m: Member) => (rows1.get(m.id) ?? 0) - (rows0.get(m.id) ?? 0) - (probeRows.get(m.id) ?? 0);
    const distinct = [...firstOfSet.values()].reduce((a, m) => a + delta(m), 0);
    const allRows = w.config.members.reduce((a, m) => a + delta(m), 0);
    const missing = (key: string) => [...probes.values()].filter((p) => targets.find((t) => t.key === key)!.wants(p) && !p.seen.has(key)).length;
    const bySite: Record<string, SiteFreshness> = {};
    for (const [i, site] of sites.entries()) {
      let history: HistoryGrowth | null = null;
      try {
        history = await historyGrowth(w.client, etlWorkflowId(site), h0[i]!, h1[i]!);
      } catch {
        history = null;
      }
      bySite[site] = { ...distribution(latencies[site]!), missing: missing(site), cycles: history?.cycles ?? null, history };
    }
    const level: FreshnessLevel = {
      measured: true,
      targetEventsPerSecond: rate,
      achievedEventsPerSecond: Math.round(distinct / windowS),
      achievedRowsPerSecond: Math.round(allRows / windowS),
      callsPerSecond,
      eventsBefore,
      probes: probes.size,
      missing: sites.reduce((a, s) => a + missing(s), 0),
      settleSeconds: settle.seconds,
      steady: settle.steady,
      windowSeconds: round(windowS, 1),
      ...distribution(sites.flatMap((site) => latencies[site]!)),
      sites: bySite,
      cpu: (await cpuEnd)(distinct),
      logicalReplication: anchor ? anchorFreshness(anchor, probes, latencies[ANCHOR]!, missing(ANCHOR)) : null,
    };
    log.info(
      `  achieved ${level.achievedEventsPerSecond} events/s; ${level.probes} probes; p50 ${level.p50Seconds} s, ` +
        `p99 ${level.p99Seconds} s, max ${level.maxSeconds} s; missing ${level.missing}` +
        (level.logicalReplication ? `; logical replication p50 ${level.logicalReplication.p50Seconds} s, p99 ${level.logicalReplication.p99Seconds} s` : ''),
    );
    return level;
  } finally {
    writing = false;
    watching = false;
    await traffic.stop();
  }
}

/**
 * How far the achieved rate may be from the target before the level runs again, corrected.
 * At 5,000 events/s the two cores run near their limit: 14 % over the target (a first
 * attempt's 5,683 events/s) decided whether the ETLs kept up at all.
 */
const RATE_TOLERANCE = 0.05;
/**
 * Every rate of the profile, each after the ETLs went idle again; rates beyond the profile
 * are reported unmeasured. A level that misses by more than RATE_TOLERANCE runs again with
 * the correction it measured, up to the profile's attempts. Each level starts from the plain
 * guess: a correction carried over from a lower level, whose window opened earlier in the
 * ramp, raised the 5,000 events/s level's calls per second by 8 %, past what the ETLs
 * keep up with, and cost it a second attempt on marts 1.4M events larger.
 */
export async function freshness(w: BenchWorld, profile: Profile['freshness'], kind: string): Promise<Record<string, FreshnessLevel>> {
  const out: Record<string, FreshnessLevel> = {};
  const anchor = await startAnchor(w).catch((e: Error) => {
    log.warn(`the logical replication anchor did not start; freshness is measured without it: ${e.message}`);
    return null;
  });
  try {
    await levels();
  } finally {
    await anchor?.stop();
  }
  for (const rate of profile.allRates) out[String(rate)] ??= unmeasured(rate, `not measured in a ${kind} run`);
  return out;

  async function levels(): Promise<void> {
    for (const [i, rate] of profile.rates.entries()) {
      let correction = 1;
      for (let attempt = 0; attempt < profile.attempts; attempt++) {
        for (const site of Object.keys(w.config.sites)) await waitIdle(w, site, 300_000, 1);
        const level = await freshnessLevel(w, rate, profile, correction, 1000 + i * 10 + attempt, anchor);
        out[String(rate)] = level;
        if (!level.achievedEventsPerSecond) break;
        correction = Math.min(3, Math.max(0.3, correction * (rate / level.achievedEventsPerSecond)));
        if (Math.abs(level.achievedEventsPerSecond / rate - 1) <= RATE_TOLERANCE) break;
        log.info(
          attempt < profile.attempts - 1
            ? `  ${rate} events/s missed by more than ${RATE_TOLERANCE * 100} %: once more with correction ${round(correction, 2)}`
            : `  ${rate} events/s missed by more than ${RATE_TOLERANCE * 100} % ${profile.attempts} times; the last attempt stands`,
        );
      }
    }
  }
}
