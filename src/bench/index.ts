/**
 * `npm run bench [-- --quick] [--json] [--no-write] [--only stages]`: the benchmark suite
 * on real worlds (PostgreSQL per site, the Temporal dev server, worker processes).
 * Benchmarks report, they do not assert. Progress goes to stderr; with --json the result
 * is one JSON object on the last line of stdout, otherwise a summary in Markdown.
 * Unless --no-write, the result goes to bench/results/<date>[-quick].json and the run's
 * tables into BENCHMARKS.md.
 *
 * Stages: catchup (with its baselines), idle, freshness, footprint, dr, reports (on the main world),
 * scaling and rebuild (full only, worlds of their own).
 */
import { parseArgs } from 'node:util';
import { DEV_LAYOUT, sitesOf, stopOnSignals } from '../dev/world';
import { startAll } from '../temporal/connection';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import { catchupBandwidth } from './bandwidth';
import {
  keyedRawCopy,
  openPlainMart,
  plainCatchup,
  rawCopy,
  summarize,
  temporalCatchup,
  type TemporalResult,
} from './catchup';
import { drRound } from './dr';
import { footprint } from './footprint';
import { freshness, unmeasured } from './freshness';
import { plainIdle, temporalIdle, waitIdle } from './idle';
import { loadBacklog, type Backlog } from './load';
import { finishMachine, machine, postgresSettings, UNREAD_SETTINGS, versions } from './machine';
import { FULL, QUICK, type Profile } from './profile';
import { renderMarkdown, writeResults } from './report';
import { rebuildPoint, scalingPoint } from './scaling';
import type { StatementProfile } from './statements';
import { reportTimings } from './reports';
import type { BenchResult, CatchupDetail } from './types';
import { closeAllWorlds, openBenchWorld, type BenchWorld } from './world';
import { log, peakRssMb, round, seconds, stage } from './util';

const STAGES = ['catchup', 'idle', 'freshness', 'footprint', 'dr', 'reports', 'scaling', 'rebuild'] as const;
const MAIN_WORLD_STAGES: Stage[] = ['catchup', 'idle', 'freshness', 'footprint', 'dr', 'reports'];
type Stage = (typeof STAGES)[number];

const NOTE =
  'Measured on a shared 2-core machine where other work may run at the same time: figures are noisy ' +
  '(compare the load averages at start and end), and orders of magnitude matter more than digits.';

function shares(p: StatementProfile | null | undefined): { group: string; seconds: number; share: number }[] {
  return (p?.groups ?? []).map((g) => ({ group: g.group, seconds: round(g.ms / 1000, 2), share: g.share }));
}

function emptyResult(profile: Profile, command: string): BenchResult {
  return {
    schema: 1,
    kind: profile.kind,
    command,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    durationSeconds: 0,
    note: NOTE,
    machine: machine(),
    versions: { node: process.version, postgres: null, temporalCli: null, twinmart: { commit: null, dirty: null } },
    postgres: { ...UNREAD_SETTINGS },
    settings: { layout: '', cycleSeconds: 1, chunkRows: 0, cycleChunks: 0, transformBatch: 0, postgres: '', pgStatStatements: false },
    sizes: {
      catchupCallEvents: profile.catchupSizes,
      main: null,
      freshnessRates: profile.freshness.rates,
      freshnessWarmupSeconds: profile.freshness.warmupSeconds,
      freshnessWindowSeconds: profile.freshness.windowSeconds,
      freshnessHistorySeconds: profile.freshness.historySeconds,
      idlePlainCycles: profile.idle.plainCycles,
      idleTemporalWindowSeconds: profile.idle.temporalWindowSeconds,
      scalingSets: profile.scalingSets,
      scalingCallEvents: profile.scalingSets ? profile.scalingCallEvents : null,
      rebuildCalls: profile.rebuildCalls,
      drBehindCalls: profile.drBehindCalls,
    },
    catchup: {
      ...summarize({ callEvents: 0, agentEvents: 0, memberRows: 0 } as Backlog, null, null, null, null),
      bySize: {},
      stages: { noTemporal: null, databaseShares: {}, temporalOutsideActivitiesSeconds: null, waits: {} },
    },
    bandwidth: null,
    freshness: Object.fromEntries(profile.freshness.allRates.map((r) => [String(r), unmeasured(r, 'not measured')])),
    idle: { msPerCycle: null, dbMsPerCycle: null, historyEventsPerCycle: null, historyBytesPerCycle: null, noTemporal: null, temporal: null },
    memory: { peakRssMb: null, workers: {}, afterCatchupMb: {} },
    dr: { failoverRtoSeconds: null, rebuildToParitySeconds: null },
    reports: null,
    temporal: { idle: null, underLoad: {}, footprint: null },
    scaling: null,
    errors: [],
  };
}

/**
 * Raw COPY and keyed raw COPY, the no-Temporal loop (and its idle cost), then the site's
 * ETL on Temporal (and what it read, with `bandwidth`), on one loaded world.
 */
async function catchupSuite(
  w: BenchWorld,
  backlog: Backlog,
  profile: Profile,
  result: BenchResult,
  opts: { idle: boolean; otherSite: boolean; bandwidth: boolean },
): Promise<CatchupDetail> {
  const errors = result.errors;
  const size = String(profile.catchupSizes.find((s) => Math.abs(s - backlog.callEvents) / s < 0.2) ?? backlog.callEvents);
  const raw = await stage(`catchup ${size}: raw COPY`, errors, () => rawCopy(w, 'dc1', backlog));
  const keyedRaw = await stage(`catchup ${size}: keyed raw COPY`, errors, () => keyedRawCopy(w, 'dc1', backlog));
  const pm = await openPlainMart(w, 'dc1');
  let plain = null;
  try {
    plain = await stage(`catchup ${size}: no Temporal`, errors, () => plainCatchup(w, pm, backlog));
    if (opts.idle && plain) {
      const idle = await stage('idle: no Temporal', errors, () => plainIdle(w, pm, profile.idle.plainCycles));
      result.idle.noTemporal = idle;
      result.idle.msPerCycle = idle?.msPerCycle ?? null;
      result.idle.dbMsPerCycle = idle?.dbMsPerCycle ?? null;
    }
  } finally {
    await pm.pools.end();
  }
  // The other extraction side by side: the same loop and backlog into a mart of its own.
  const other = w.config.etl.extraction === 'full' ? 'lean' : 'full';
  let plainOther = null;
  if (opts.bandwidth) {
    const po = await openPlainMart(w, 'dc1', `bench_plain_${other}_mart`);
    try {
      const config = { ...w.config, etl: { ...w.config.etl, extraction: other } } as const;
      plainOther = await stage(`catchup ${size}: no Temporal, ${other} extraction`, errors, () => plainCatchup(w, po, backlog, config));
    } finally {
      await po.pools.end();
    }
  }
  const temporal = await stage(`catchup ${size}: Temporal dc1`, errors, () => temporalCatchup(w, 'dc1', backlog, profile.catchupTimeoutSeconds));
  if (opts.bandwidth && temporal) {
    const byExtraction = other === 'lean' ? { full: plain, lean: plainOther } : { full: plainOther, lean: plain };
    result.bandwidth = await stage(`catchup ${size}: bandwidth of dc1`, errors, () => catchupBandwidth(w, 'dc1', backlog, keyedRaw, byExtraction));
  }
  let otherSite: TemporalResult | null = null;
  if (opts.otherSite) {
    otherSite = await stage(`catchup ${size}: Temporal dc2 (with the DR workflow)`, errors, () =>
      temporalCatchup(w, 'dc2', backlog, profile.catchupTimeoutSeconds, () => startAll(w.client, w.config)),
    );
  }
  const detail: CatchupDetail = {
    ...summarize(backlog, raw, keyedRaw, plain, temporal),
    backlog,
    raw,
    keyedRaw,
    noTemporal: plain,
    temporal,
    otherSite,
  };
  result.catchup.bySize[size] = detail;
  return detail;
}

function headline(result: BenchResult, d: CatchupDetail): void {
  const { bySize } = result.catchup;
  result.catchup = {
    ...summarize(d.backlog, d.raw, d.keyedRaw, d.noTemporal, d.temporal),
    bySize,
    stages: {
      noTemporal: d.noTemporal
        ? {
            extractSeconds: d.noTemporal.extractSeconds,
            transformSeconds: d.noTemporal.transformSeconds,
            extractShare: round(d.noTemporal.extractSeconds / (d.noTemporal.extractSeconds + d.noTemporal.transformSeconds), 3),
          }
        : null,
      databaseShares: {
        rawCopy: shares(d.raw?.statements),
        keyedRawCopy: shares(d.keyedRaw?.statements),
        noTemporal: shares(d.noTemporal?.statements),
        temporal: shares(d.temporal?.statements),
      },
      temporalOutsideActivitiesSeconds: d.temporal?.timings ? seconds(d.temporal.timings.outsideActivitiesMs) : null,
      waits: { rawCopy: d.raw?.waits ?? null, keyedRawCopy: d.keyedRaw?.waits ?? null, noTemporal: d.noTemporal?.waits ?? null, temporal: d.temporal?.waits ?? null },
    },
  };
}

async function mainWorld(profile: Profile, result: BenchResult, only: Set<Stage>): Promise<void> {
  const errors = result.errors;
  const size = profile.catchupSizes.at(-1)!;
  const w = await openBenchWorld('main', { layout: DEV_LAYOUT, reporting: true, temporal: profile.temporal, etl: { extraction: profile.extraction } });
  try {
    result.versions = await versions(w.binary, w.config.sites.dc1!.mart);
    result.postgres = await postgresSettings(Object.fromEntries(Object.keys(w.state.pg).map((name) => [name, w.admin(name)])));
    const pg = result.postgres;
    result.settings = {
      layout:
        'dev layout: 2 sites, 3 HA sets (sw-voice-1 split across sites, sw-voice-2 both at dc1, sw-chat-1 both at dc2), 6 member IDBs' +
        (profile.temporal === 'per-site' ? '; a Temporal cluster per site, one replicated namespace' : '; one Temporal dev server'),
      cycleSeconds: w.config.etl.cycleSeconds,
      chunkRows: w.config.etl.chunkRows,
      cycleChunks: w.config.etl.cycleChunks,
      transformBatch: w.config.etl.transformBatch,
      postgres:
        'one instance per site on this machine, holding its mart and its IDBs; as the servers report them: ' +
        `shared_buffers=${pg.sharedBuffers}, random_page_cost=${pg.randomPageCost}, fsync=${pg.fsync}, ` +
        `full_page_writes=${pg.fullPageWrites}, synchronous_commit=${pg.synchronousCommit}`,
      pgStatStatements: w.statements,
    };
    const backlog = await stage(`load ${size}`, errors, () =>
      loadBacklog(w, size, { callsPerSecond: profile.backfillCallsPerSecond, batch: profile.backfillBatch, seed: 42 }),
    );
    if (!backlog) return;
    result.sizes.main = backlog;
    const sites = sitesOf(w.state.layout);

    if (only.has('catchup')) {
      const d = await catchupSuite(w, backlog, profile, result, { idle: only.has('idle'), otherSite: true, bandwidth: true });
      headline(result, d);
    } else {
      // The later stages need loaded, running ETLs.
      await stage('start ETLs', errors, async () => {
        await startAll(w.client, w.config);
        for (const s of sites) await waitIdle(w, s, profile.catchupTimeoutSeconds * 1000);
      });
    }
    await startAll(w.client, w.config);
    for (const s of sites) result.memory.afterCatchupMb[s] = peakRssMb(w.state.workers[s]);

    if (only.has('idle')) {
      const t = await stage('idle: Temporal', errors, () => temporalIdle(w, 'dc1', profile.idle.temporalWindowSeconds));
      if (t) {
        result.idle.temporal = t;
        result.idle.historyEventsPerCycle = t.eventsPerCycle;
        result.idle.historyBytesPerCycle = t.bytesPerCycle;
        result.temporal.idle = {
          cycles: t.cycles,
          events: t.events,
          bytes: t.bytes,
          eventsPerCycle: t.eventsPerCycle,
          bytesPerCycle: t.bytesPerCycle,
          secondsPerCycle: t.secondsPerCycle,
          continuedAsNew: t.continuedAsNew,
        };
      }
    }
    if (only.has('freshness')) {
      const f = await stage('freshness', errors, () => freshness(w, profile.freshness, profile.kind));
      if (f) {
        result.freshness = f;
        for (const [rate, level] of Object.entries(f)) {
          if (level.measured) result.temporal.underLoad[rate] = Object.fromEntries(Object.entries(level.sites).map(([s, x]) => [s, x.history]));
        }
      }
    }
    if (only.has('footprint')) {
      result.temporal.footprint = await stage('footprint', errors, () =>
        footprint(w.client, sites.map(etlWorkflowId), only.has('catchup') ? DR_WORKFLOW_ID : null),
      );
    }
    for (const s of sites) result.memory.workers[s] = peakRssMb(w.state.workers[s]);
    const peaks = Object.values(result.memory.workers).filter((v): v is number => v !== null);
    result.memory.peakRssMb = peaks.length ? Math.max(...peaks) : null;

    if (only.has('dr')) {
      const dr = await stage('dr', errors, () => drRound(w, profile.drTimeoutSeconds, profile.drBehindCalls));
      if (dr) result.dr = { ...dr };
    }
    if (only.has('reports')) result.reports = await stage('reports', errors, () => reportTimings(w, profile.reports));
  } finally {
    await w.close();
  }
}

/** Full run: the smaller backlogs in a world of their own (catch-up only). */
async function smallerBacklogs(profile: Profile, result: BenchResult): Promise<void> {
  for (const size of profile.catchupSizes.slice(0, -1)) {
    const w = await openBenchWorld(`catchup-${size}`, { layout: DEV_LAYOUT, workers: ['dc1'], temporal: profile.temporal });
    try {
      const backlog = await stage(`load ${size}`, result.errors, () =>
        loadBacklog(w, size, { callsPerSecond: profile.backfillCallsPerSecond, batch: profile.backfillBatch, seed: 41 }),
      );
      if (backlog) await catchupSuite(w, backlog, profile, result, { idle: false, otherSite: false, bandwidth: false });
    } finally {
      await w.close();
    }
  }
}

async function scaling(profile: Profile, result: BenchResult, only: Set<Stage>): Promise<void> {
  const sets = [];
  for (const n of only.has('scaling') ? (profile.scalingSets ?? []) : []) {
    const p = await stage(`scaling ${n} sets`, result.errors, () => scalingPoint(n, profile));
    if (p) sets.push(p);
  }
  const rebuild = [];
  for (const calls of only.has('rebuild') ? (profile.rebuildCalls ?? []) : []) {
    const p = await stage(`rebuild with ${calls} calls`, result.errors, () => rebuildPoint(calls, profile));
    if (p) rebuild.push(p);
  }
  result.scaling = {
    backlog: [
      ...Object.values(result.catchup.bySize).map((d) => ({
        callEvents: d.callEvents,
        memberRows: d.memberRows,
        eventsPerSecond: d.eventsPerSecond,
      })),
      ...rebuild.map((p) => ({ callEvents: p.callEvents, memberRows: p.memberRows, eventsPerSecond: p.catchup.dc1?.eventsPerSecond ?? null })),
    ],
    sets,
    rebuild,
    note: null,
  };
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      only: { type: 'string' },
      temporal: { type: 'string', default: 'dev' },
      extraction: { type: 'string', default: 'full' },
    },
    strict: true,
  });
  if (values.temporal !== 'dev' && values.temporal !== 'per-site') throw new Error(`--temporal must be dev or per-site, got "${values.temporal}"`);
  if (values.extraction !== 'full' && values.extraction !== 'lean') throw new Error(`--extraction must be full or lean, got "${values.extraction}"`);
  const profile: Profile = { ...(values.quick ? QUICK : FULL), temporal: values.temporal, extraction: values.extraction };
  const only = new Set<Stage>(
    values.only ? (values.only.split(',').map((s) => s.trim()) as Stage[]) : [...STAGES],
  );
  for (const s of only) if (!STAGES.includes(s)) throw new Error(`--only: unknown stage "${s}" (stages: ${STAGES.join(', ')})`);
  const command = ['npm run bench --', ...argv].join(' ').replace(/ --$/, '');
  const result = emptyResult(profile, command);
  const t0 = Date.now();
  log.info(`benchmark (${profile.kind}) starting`, { stages: [...only] });

  stopOnSignals((signal) => {
    log.warn(`${signal}: stopping the worlds`);
    return closeAllWorlds();
  });
  try {
    if (profile.kind === 'full' && only.has('catchup')) await smallerBacklogs(profile, result);
    if (MAIN_WORLD_STAGES.some((s) => only.has(s))) await mainWorld(profile, result, only);
    if (profile.kind === 'full' && (only.has('scaling') || only.has('rebuild'))) await scaling(profile, result, only);
  } catch (e) {
    result.errors.push({ stage: 'run', message: (e as Error).message });
    log.error(`benchmark failed: ${(e as Error).stack}`);
  } finally {
    await closeAllWorlds();
  }
  result.finishedAt = new Date().toISOString();
  result.durationSeconds = seconds(Date.now() - t0);
  finishMachine(result.machine);
  if (!values['no-write']) {
    const written = writeResults(result);
    log.info(`results written: ${written.join(', ')}`);
  }
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(renderMarkdown(result) + '\n');
  log.info(`benchmark (${profile.kind}) finished in ${result.durationSeconds} s with ${result.errors.length} error(s)`);
  // Figures are reported, never asserted; a stage that could not run fails the command, so CI notices a rotting harness.
  return result.errors.length ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`bench: ${e.message}\n`);
      process.exit(2);
    },
  );
}
