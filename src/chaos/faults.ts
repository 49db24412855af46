/**
 * The chaos run's faults, each a real action on a real process or database
 * (docs/chaos.md). A fault returns once it is over (what it stopped runs again); the run
 * then measures how long the system took to recover from it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client as PgClient } from 'pg';
import type { Client, Connection } from '@temporalio/client';
import type { ConfigInput, Member } from '../config';
import { repoRoot } from '../paths';
import { silentLogger } from '../logger';
import { baseBackup, removeInstance, restoreInstance, startInstance, stopInstance, type PgInstance } from '../dev/postgres';
import { failSite, layoutEntry, memberInstance, restoreSite, saveWorld, startInstanceDatabases, startSiteCluster, startTemporal, startWorker, stopTemporal, stopWorker, worldConfig, type WorldState } from '../dev/world';
import { stopCluster } from '../dev/temporal-cluster';
import { siteClusters, temporalAddress } from '../config';
import { connectSurvivingClient } from '../temporal/connection';
import { failNamespaceAway, handOverNamespace, rejoinSiteCluster } from '../temporal/namespace';
import { drStatusQuery, drUpdates, type DrStatus } from '../workflows/dr-messages';
import { excludeSiteUpdate } from '../workflows/etl-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import { waitFor } from '../wait';
import type { Fault, FaultKind } from './schedule';
import { memberEvents, memberSessions, type Recorded, type Session } from './check';
import { freeLowPort } from '../dev/ports';
import type { BenchWorld } from '../bench/world';

export interface ChaosContext {
  w: BenchWorld;
  /** What the collectors recorded in members the run wiped or restored, read just before. */
  wiped: Recorded;
  /** Their sessions as they were; one still open ends when its member stopped. */
  wipedSessions: Session[];
  /** How many times each member was wiped or restored so far: a probe written before a wipe may be gone with it. */
  wipes: Map<string, number>;
  /** Rows the run wrote malformed on purpose: every live mart must discard them. */
  malformed: Set<string>;
  /** Base backups of the members with an instance of their own, taken at the start. */
  backups: Record<string, string>;
  /** Per-site Temporal: one cluster down at a time, so a survivor always holds the namespace. */
  clusterFaults?: Promise<void>;
}

/**
 * Per-site Temporal, as `twinmart dr fail` does before its command: the run's client
 * moved to a cluster other than `site`'s, and the namespace made active there if it was
 * at `site`'s. Returns whether the namespace moved. Dev mode: nothing to do.
 */
async function namespaceAwayFrom(w: { client: Client; config: BenchWorld['config'] }, site: string): Promise<boolean> {
  if (!siteClusters(w.config).length) return false;
  const address = () => (w.client.connection as Connection).options.address;
  if (address() === temporalAddress(w.config, site)) {
    const old = w.client;
    w.client = (await connectSurvivingClient(w.config, site)).client;
    // Calls in flight on the old connection (another fault's probes) retry on it for a while: closed once they are over.
    setTimeout(() => void old.connection.close().catch(() => undefined), 120_000).unref();
  }
  const via = siteClusters(w.config).find((c) => c.address === address())!.site;
  return (await failNamespaceAway(w.client, w.config, site, via)) !== null;
}

/** The members a member fault can hit: those with a PostgreSQL instance of their own. */
export function ownInstance(state: WorldState, member: Member): string | null {
  return layoutEntry(state, member.id).instance ?? null;
}

const collector = (m: Member) => m.collectorUrl ?? m.url;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * What a member holds into the witness (`wiped`, `wipedSessions`), before it loses it.
 * Its server is stopped first (if still up) and read on a port nobody else knows, so no
 * row commits between the reading and the loss.
 */
async function keep(ctx: ChaosContext, m: Member, stoppedAt?: number): Promise<void> {
  const inst = instanceOf(ctx.w.state, m);
  await stopMember(inst);
  const end = stoppedAt ?? Date.now();
  ctx.wipes.set(m.id, (ctx.wipes.get(m.id) ?? 0) + 1);
  const port = await freeLowPort();
  await startInstance(inst, { port });
  const url = new URL(collector(m));
  url.port = String(port);
  const c = new PgClient({ connectionString: url.toString() });
  try {
    await c.connect();
    for (const [k, call] of await memberEvents(c)) ctx.wiped.set(k, call);
    for (const s of await memberSessions(c, m.id)) ctx.wipedSessions.push({ ...s, end: s.end ?? end });
  } finally {
    await c.end().catch(() => undefined);
    await stopInstance(inst, 'immediate');
  }
}

/** False when the instance is not running (an overlapping fault stopped or removed it): nothing to pause. */
function pausePostgres(inst: PgInstance, signal: 'STOP' | 'CONT'): boolean {
  const pidFile = join(inst.dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return false;
  const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]!.trim());
  let children = '';
  try {
    children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' });
  } catch {
    // no backends
  }
  const pids = [postmaster, ...children.split('\n').map((s) => Number(s.trim())).filter(Boolean)];
  // One by one: a backend that ended since pgrep listed it must not leave the others
  // stopped with no one to resume them (seed 42, per-site: one `kill` of the whole list
  // failed on a gone pid, and the frozen server then refused every stop after it).
  for (const pid of pids) {
    try {
      process.kill(pid, `SIG${signal}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
  return true;
}

/**
 * A member's server stopped `immediate`, resumed first if an overlapping `member-pause`
 * froze it: a stopped process never sees the stop, and pg_ctl gave up on it.
 */
async function stopMember(inst: PgInstance): Promise<void> {
  pausePostgres(inst, 'CONT');
  await stopInstance(inst, 'immediate');
}

/** A collector's own transaction: a few one-event calls, held open, then committed or rolled back. */
async function heldTransaction(m: Member, holdSeconds: number, commit: boolean): Promise<void> {
  const c = new PgClient({ connectionString: collector(m) });
  await c.connect();
  c.on('error', () => undefined); // a fault elsewhere may stop its server meanwhile
  try {
    await c.query('begin');
    for (let i = 0; i < 5; i++) {
      await c.query(
        `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
         values ($1, 1, $2, 'created', now(), $3, 'inbound')`,
        [randomUUID(), m.sourceId, m.sourceId.includes('chat') ? 'chat' : 'voice'],
      );
    }
    await sleep(holdSeconds * 1000);
    await c.query(commit ? 'commit' : 'rollback');
  } catch {
    // its server was stopped under it: the transaction never committed
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function drStatus(client: Client): Promise<DrStatus> {
  return client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
}

export interface RoundTripOptions {
  /** Seconds the site stays down after its failover is done. */
  holdSeconds: number;
  /** The site comes back with empty databases (a replacement) instead of intact. */
  wipe: boolean;
  reason: string;
  /** Runs while the site is still down, just before it comes back. */
  beforeReturn?: () => Promise<void>;
}

/**
 * A site's loss and return with the operator's commands (what `twinmart dr …` sends):
 * the site stopped for real, declared failed, reporting confirmed at the survivor, the
 * site back, reintroduced, reporting failed back to the primary. The chaos run's
 * `site-loss` and the recorded histories (test/histories) both run it.
 */
export async function siteRoundTrip(w: { client: Client; state: WorldState; config: BenchWorld['config'] }, site: string, opts: RoundTripOptions): Promise<void> {
  const perSite = siteClusters(w.config).length > 0;
  // Read at each call: with a cluster per site the client moves to a survivor's.
  const dr = () => w.client.workflow.getHandle(DR_WORKFLOW_ID);
  const command = (name: keyof typeof drUpdates, payload: unknown) =>
    waitFor(`${name} accepted`, async () => Boolean(await dr().executeUpdate(drUpdates[name], { args: [payload] })), 60_000, 1000);
  const until = (what: string, ok: (s: DrStatus) => boolean, ms = 240_000) =>
    waitFor(what, async () => {
      const s = await drStatus(w.client);
      return ok(s) && s;
    }, ms, 250);
  await failSite(w.state, site);
  await namespaceAwayFrom(w, site);
  await command('declareSiteFailure', { site, reason: opts.reason });
  const s = await until('reporting or degraded', (x) => x.phase === 'degraded' || x.reporting.awaitingConfirmation !== null);
  if (s.reporting.awaitingConfirmation) await command('confirmReporting', { site: s.reporting.awaitingConfirmation });
  await until(`the failover of ${site} done`, (x) => x.phase === 'degraded');
  await sleep(opts.holdSeconds * 1000);
  await opts.beforeReturn?.();
  await restoreSite(w.state, site, silentLogger, opts.wipe);
  saveWorld(w.state);
  // What `twinmart dr rebuilt` does first (restoreSite did it for a replacement's empty cluster).
  if (perSite && !opts.wipe) await rejoinSiteCluster(w.config, site);
  await command('siteRebuilt', { site });
  await until(`${site} reintroduced`, (x) => x.phase === 'normal' && x.sites[site] === 'active');
  const now = await drStatus(w.client);
  if (now.reporting.active !== now.reporting.primary) {
    await command('failbackReporting', { site: now.reporting.primary });
    await until('failback awaiting confirmation', (x) => x.reporting.awaitingConfirmation === now.reporting.primary);
    await command('confirmReporting', { site: now.reporting.primary });
    await until('reporting back at the primary', (x) => x.reporting.active === x.reporting.primary && !x.reporting.awaitingConfirmation);
  }
  // And the namespace back where reports are served (`twinmart dr handover`).
  if (perSite) await handOverNamespace(w.config, now.reporting.primary);
}

/** A site lost and back; before a wiped site returns, what its members held is kept as the run's witness. */
function siteLoss(ctx: ChaosContext, f: Fault): Promise<void> {
  const members = ctx.w.config.members.filter((m) => m.site === f.site);
  const lostAt = Date.now();
  return siteRoundTrip(ctx.w, f.site, {
    holdSeconds: f.holdSeconds,
    wipe: Boolean(f.wipe),
    reason: 'chaos',
    beforeReturn: f.wipe
      ? async () => {
          for (const m of members) await keep(ctx, m, lostAt);
        }
      : undefined,
  });
}

function instanceOf(state: WorldState, m: Member): PgInstance {
  return state.pg[memberInstance(state, m.id)]!;
}

/** Bad values an operator might type, each with the key its error must name. */
const BAD_VALUES: { key: (site: string) => string; apply: (c: ConfigInput, site: string) => void }[] = [
  { key: () => 'etl.chunkRows', apply: (c) => (c.etl = { ...c.etl, chunkRows: 0 }) },
  { key: (site) => `sites.${site}.mart`, apply: (c, site) => (c.sites[site]!.mart = 'mysql://etl@127.0.0.1/mart') },
  { key: () => 'reporting.primary', apply: (c) => (c.reporting.primary = 'dc9') },
  { key: () => 'etl.cycleSeconds', apply: (c) => (c.etl = { ...c.etl, cycleSeconds: 'fast' as never }) },
];

/**
 * A worker restarted on a config with a bad value, as an operator's reload goes wrong:
 * it must refuse to start with an error naming the key (while the site's ETL waits),
 * and the site's worker on the good file takes over again.
 */
async function badConfigRestart(ctx: ChaosContext, f: Fault): Promise<void> {
  const { state } = ctx.w;
  const bad = BAD_VALUES[Math.round(f.holdSeconds * 10) % BAD_VALUES.length]!;
  const input = JSON.parse(JSON.stringify(worldConfig(state))) as ConfigInput;
  bad.apply(input, f.site);
  const file = join(state.root, `bad-${f.site}-${randomUUID()}.yaml`);
  writeFileSync(file, stringify(input));
  await stopWorker(state, f.site);
  try {
    const run = promisify(execFile)(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), 'worker', '--site', f.site, '--config', file], {
      timeout: 30_000,
      killSignal: 'SIGKILL',
    });
    const e = await run.then(
      () => ({ code: 0, stderr: '', killed: false }),
      (x: { code?: number; stderr?: string; killed?: boolean }) => ({ code: x.code ?? null, stderr: x.stderr ?? '', killed: Boolean(x.killed) }),
    );
    if (e.killed) throw new Error(`a worker started on a config with a bad ${bad.key(f.site)} and ran for 30 s`);
    if (e.code !== 2 || !e.stderr.includes(bad.key(f.site))) {
      throw new Error(`a worker on a bad ${bad.key(f.site)} exited ${e.code} without naming the key: ${e.stderr.trim().slice(0, 300)}`);
    }
  } finally {
    // An overlapping fault may have started the site's worker meanwhile.
    const pid = state.workers[f.site];
    if (!pid || !alive(pid)) startWorker(state, f.site);
  }
}

/** Malformed rows into a member, malformed signals and updates to both workflows, a worker reloaded on a bad config. */
async function hostile(ctx: ChaosContext, f: Fault): Promise<void> {
  const { w } = ctx;
  const m = w.config.members.find((x) => x.id === f.member) ?? w.config.members.find((x) => x.site === f.site)!;
  const callId = randomUUID();
  await w.pools.get(collector(m)).query(
    `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
     values ($1, 1, $2, 'teleported', now(), 'voice', 'inbound')`,
    [callId, m.sourceId],
  ).then(() => ctx.malformed.add(`${callId}/1`), () => undefined);
  const drHandle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
  const etl = w.client.workflow.getHandle(etlWorkflowId(f.site));
  const garbage: unknown[] = [{ sight: 'dc1' }, { site: 42 }, 'x'.repeat(2000), null, [1, 2]];
  for (const g of garbage) {
    await drHandle.signal(drUpdates.declareSiteFailure.name, g).catch(() => undefined);
    await etl.signal('excludeSite', g).catch(() => undefined);
    // An update with a bad payload is refused with a reason, never applied.
    await etl.executeUpdate(excludeSiteUpdate, { args: [g as never] }).then(
      () => {
        throw new Error(`the ETL of ${f.site} accepted excludeSite ${JSON.stringify(g)}`);
      },
      () => undefined,
    );
  }
  await badConfigRestart(ctx, f);
}

export async function runFault(ctx: ChaosContext, f: Fault): Promise<void> {
  const { w } = ctx;
  const hold = () => sleep(f.holdSeconds * 1000);
  // A site runs one worker after any fault: an overlapping one may have started or handed
  // over a worker meanwhile, and a second start would leave one that no one stops.
  const ensureWorker = (site: string) => {
    const pid = w.state.workers[site];
    if (!pid || !alive(pid)) startWorker(w.state, site);
  };
  const member = f.member ? w.config.members.find((m) => m.id === f.member)! : null;
  const run: Record<FaultKind, () => Promise<void>> = {
    'worker-kill': async () => {
      await stopWorker(w.state, f.site, 'kill');
      await hold();
      ensureWorker(f.site);
    },
    'workers-kill': async () => {
      for (const s of Object.keys(w.config.sites)) await stopWorker(w.state, s, 'kill');
      await hold();
      for (const s of Object.keys(w.config.sites)) ensureWorker(s);
    },
    'temporal-restart': async () => {
      if (!w.state.temporal.clusters) {
        await stopTemporal(w.state, 'kill');
        await hold();
        await startTemporal(w.state, w.binary, silentLogger);
        return;
      }
      // A site's cluster killed, the namespace failed over to the other's if it was active there, and back.
      const before = ctx.clusterFaults ?? Promise.resolve();
      let done!: () => void;
      ctx.clusterFaults = new Promise<void>((r) => (done = r));
      await before;
      try {
        await stopCluster(w.state.temporal.clusters[f.site]!, 'kill');
        const moved = await namespaceAwayFrom(w, f.site);
        await hold();
        // Its databases live in the site's PostgreSQL, which an overlapping mart-stop may
        // hold down: the cluster starts once that is back (seed 42, per-site, left it dead).
        await waitFor(`the Temporal cluster of ${f.site} started`, async () => {
          await startSiteCluster(w.state, f.site, silentLogger);
          return true;
        }, 180_000, 2000);
        if (moved) await handOverNamespace(w.config, f.site);
      } finally {
        done();
      }
    },
    'member-stop': async () => {
      const inst = instanceOf(w.state, member!);
      await stopMember(inst);
      await hold();
      await startInstance(inst);
    },
    'member-pause': async () => {
      // A member already down stays down for the hold: to its readers that is the same loss of packets.
      const inst = instanceOf(w.state, member!);
      const paused = pausePostgres(inst, 'STOP');
      try {
        await hold();
      } finally {
        if (paused) pausePostgres(inst, 'CONT');
      }
    },
    'member-replace': async () => {
      const name = ownInstance(w.state, member!)!;
      await keep(ctx, member!);
      await removeInstance(w.state.pg[name]!);
      await hold();
      await startInstanceDatabases(w.state, name, silentLogger);
    },
    'member-restore': async () => {
      const name = ownInstance(w.state, member!)!;
      await keep(ctx, member!);
      await restoreInstance(w.state.pg[name]!, ctx.backups[name]!);
      await hold();
    },
    'long-transaction': () => heldTransaction(member!, f.holdSeconds, true),
    rollback: () => heldTransaction(member!, f.holdSeconds, false),
    'site-loss': () => siteLoss(ctx, f),
    'twin-workers': async () => {
      // The extra worker is the fault's own; the site's registered one may be killed and
      // restarted meanwhile by an overlapping fault, so it is read again at the end.
      const registered = w.state.workers[f.site] ?? null;
      const extra = startWorker(w.state, f.site);
      w.state.workers[f.site] = registered;
      await hold();
      // Which one dies is the fault's, so the seed decides it.
      if (Math.round(f.holdSeconds * 10) % 2 === 0) killQuietly(extra);
      else {
        await stopWorker(w.state, f.site, 'kill');
        w.state.workers[f.site] = extra;
        ensureWorker(f.site);
      }
    },
    'mart-stop': async () => {
      await stopInstance(w.state.pg[f.site]!, 'immediate');
      await hold();
      await startInstance(w.state.pg[f.site]!);
    },
    hostile: () => hostile(ctx, f),
  };
  await run[f.kind]();
  saveWorld(w.state);
}

/** Base backups of every member instance, for later restores (taken while traffic runs). */
export async function takeBackups(state: WorldState, dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const ms of Object.values(state.layout)) {
    for (const m of ms) {
      if (!m.instance || out[m.instance]) continue;
      out[m.instance] = join(dir, m.instance);
      await baseBackup(state.pg[m.instance]!, out[m.instance]!);
    }
  }
  return out;
}
