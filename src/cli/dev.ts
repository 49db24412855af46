/**
 * `twinmart dev up|down`, `twinmart site stop|start` and `twinmart demo`: the local
 * two-site world of src/dev/world.ts driven from the command line.
 */
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../config';
import { Pools } from '../db';
import { createLogger, type Logger } from '../logger';
import { collectStatus } from '../etl/site-status';
import { runSim } from '../sim';
import { findTemporalCli, isAlive } from '../dev/temporal';
import {
  configFile,
  failSite,
  loadWorld,
  planWorld,
  restoreSite,
  saveWorld,
  sitesOf,
  startSiteDatabases,
  startTemporal,
  startReporting,
  startWorker,
  stopWorld,
  GLOBAL_NAMESPACE,
  type TemporalMode,
  type WorldState,
} from '../dev/world';
import { clusterAddress, clusterUiUrl, findTemporalServer } from '../dev/temporal-cluster';
import { connectClient, connectSurvivingClient, ensureSearchAttributes, startAll } from '../temporal/connection';
import { drStatusQuery, type DrStatus } from '../workflows/dr-messages';
import { drCommand } from './dr';
import { REPORT_DIMENSIONS } from '../sim/model';
import { DR_WORKFLOW_ID } from '../workflows/names';
import { parse, UsageError } from './args';
import { DEV_ROOT } from './config-path';


async function up(logger: Logger, temporal: TemporalMode = 'dev'): Promise<{ state: WorldState; config: Config; uiUrl: string | null }> {
  const onBuildProgress = (line: string) => process.stderr.write(`  ${line}\n`);
  const binary = await findTemporalCli({ logger, build: true, onBuildProgress });
  const root = resolve(DEV_ROOT);
  const state = existsSync(`${root}/world.json`) ? loadWorld(root) : await planWorld(root, { preferredPorts: true, temporal, etl: { dimensions: REPORT_DIMENSIONS } });
  if (state.temporal.clusters) await findTemporalServer({ logger, build: true, onBuildProgress });
  else if (temporal === 'per-site') throw new UsageError('the dev world in .twinmart runs the dev server: `twinmart dev down --wipe` first to plan a per-site one');
  for (const site of sitesOf(state.layout)) await startSiteDatabases(state, site, logger);
  let config = saveWorld(state);
  if (!isAlive(state.temporal.pid)) await startTemporal(state, binary, logger);
  config = saveWorld(state);
  for (const site of sitesOf(state.layout)) {
    if (!isAlive(state.workers[site])) startWorker(state, site);
    if (!isAlive(state.reporting[site]?.pid)) startReporting(state, site);
  }
  saveWorld(state);
  const client = await connectClient(config);
  await ensureSearchAttributes(client);
  await startAll(client, config);
  await client.connection.close();
  const uiUrl = state.temporal.uiPort ? `http://127.0.0.1:${state.temporal.uiPort}` : null;
  return { state, config, uiUrl };
}

function temporalMode(value: string | undefined): TemporalMode {
  const mode = value ?? 'dev';
  if (mode !== 'dev' && mode !== 'per-site') throw new UsageError(`--temporal must be dev or per-site, got "${mode}"`);
  return mode;
}

function announce(state: WorldState, uiUrl: string | null): void {
  const clusters = Object.values(state.temporal.clusters ?? {});
  const lines = [
    `twinmart dev world is up (${sitesOf(state.layout).join(', ')})`,
    ...(clusters.length
      ? clusters.map((c) => `  Temporal cluster ${c.name}: Web UI ${clusterUiUrl(c) ?? '(none)'}   frontend ${clusterAddress(c)} ` +
          `(namespace ${GLOBAL_NAMESPACE}${c.name === state.primary ? ', active here' : ''})`)
      : [`  Temporal Web UI: ${uiUrl ?? '(headless)'}   frontend 127.0.0.1:${state.temporal.port}`]),
    ...sitesOf(state.layout).map(
      (s) =>
        `  ${s}: PostgreSQL on 127.0.0.1:${state.pg[s]!.port}, worker pid ${state.workers[s]}, ` +
        `reporting http://127.0.0.1:${state.reporting[s]!.port}/ (${s === state.primary ? 'active' : 'standby'} at start)` +
        (state.metrics?.[s] ? `, metrics http://127.0.0.1:${state.metrics[s]}/metrics` : ''),
    ),
    `  config: ${configFile(state)}   logs: ${state.root}/logs`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export async function devCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { detach: { type: 'boolean' }, wipe: { type: 'boolean' }, temporal: { type: 'string' } });
  const logger = createLogger('dev');
  if (positionals[0] === 'up') {
    const { state, config, uiUrl } = await up(logger, temporalMode(values.temporal));
    announce(state, uiUrl);
    if (values.detach) return 0;
    await watchUntilInterrupted(config, null);
    await stopWorld(loadWorld(state.root), false);
    return 0;
  }
  if (positionals[0] === 'down') {
    const root = resolve(DEV_ROOT);
    await stopWorld(loadWorld(root), values.wipe ?? false);
    process.stdout.write(`dev world stopped${values.wipe ? ' and wiped' : ' (data kept; --wipe removes it)'}\n`);
    return 0;
  }
  throw new UsageError('dev needs up or down');
}

export async function siteCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { wipe: { type: 'boolean' } });
  const [action, site] = positionals;
  if ((action !== 'stop' && action !== 'start') || !site) throw new UsageError('site needs stop|start <site>');
  const state = loadWorld(resolve(DEV_ROOT));
  if (!state.pg[site]) throw new UsageError(`unknown site "${site}" (dev sites: ${sitesOf(state.layout).join(', ')})`);
  if (action === 'stop') {
    await failSite(state, site);
    process.stdout.write(`site ${site} stopped: workers killed, PostgreSQL stopped (immediate)\n`);
  } else {
    await restoreSite(state, site, createLogger('dev'), values.wipe ?? false);
    process.stdout.write(`site ${site} started${values.wipe ? ' as a replacement with empty databases' : ''}\n`);
    if (values.wipe && state.temporal.clusters) {
      process.stdout.write(`note: the Temporal cluster of ${site} started empty; rejoining it to the namespace is not automated yet (docs/architecture.md, "Temporal per site")\n`);
    }
  }
  saveWorld(state);
  return 0;
}

/** Per-site progress lines every second until Ctrl-C (or `seconds` elapse, or `stop` aborts). */
async function watchUntilInterrupted(
  config: Config,
  seconds: number | null,
  extra?: () => string,
  stop = new AbortController(),
): Promise<void> {
  const client = await connectClient(config);
  const pools = new Pools();
  const onSig = () => stop.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const deadline = seconds === null ? Infinity : Date.now() + seconds * 1000;
  try {
    while (!stop.signal.aborted && Date.now() < deadline) {
      const view = await collectStatus(config, client, pools);
      const parts = view.map((s) => {
        const loaded = s.members.reduce((n, m) => n + m.eventsLoaded, 0);
        const lag = s.members.reduce((n, m) => n + (m.behind ?? 0), 0);
        const down = s.members.filter((m) => m.state === 'unreachable' || m.state === 'error').length;
        return `${s.site}: cycle ${s.cycle ?? '-'} events ${loaded} lag ${lag}${down ? ` (${down} member(s) down)` : ''}`;
      });
      process.stdout.write(`${new Date().toISOString().slice(11, 19)}  ${parts.join('  |  ')}${extra ? '  ' + extra() : ''}\n`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    await pools.end();
    await client.connection.close();
  }
}

/** Waits `ms`, less if `signal` aborts; the timer takes its abort listener along, so polling does not pile them up. */
const pause = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, undefined, { signal }).catch(() => undefined);

/**
 * The demo's DR round trip of dc1, run with the operator's own commands (`twinmart dr …`,
 * which in per-site mode also move the namespace), its progress read from a Temporal
 * cluster that outlives dc1.
 */
async function drRoundTrip(state: WorldState, config: Config, signal: AbortSignal): Promise<void> {
  const say = (line: string) => process.stdout.write(`[dr] ${line}\n`);
  const { client } = await connectSurvivingClient(config, 'dc1');
  const dr = client.workflow.getHandle(DR_WORKFLOW_ID);
  // A query or update no worker answers (the survivor's worker gone too) gives up when the
  // demo ends, instead of holding it open for good. Each call gets a signal of its own: the
  // client leaves its listener on the signal it is given, and polling would pile them up.
  const abortable = <T>(call: () => Promise<T>): Promise<T> => {
    const own = new AbortController();
    const stop = () => own.abort();
    signal.addEventListener('abort', stop, { once: true });
    return client.withAbortSignal(own.signal, call).finally(() => signal.removeEventListener('abort', stop));
  };
  const until = async (what: string, ok: (s: DrStatus) => boolean): Promise<DrStatus> => {
    for (;;) {
      if (signal.aborted) throw new Error(`demo stopped while waiting for ${what}`);
      // Unanswered while the namespace is still active at the lost cluster: asked again.
      const s = await abortable(() => dr.query(drStatusQuery)).catch(() => null);
      if (s && ok(s)) return s;
      await pause(500, signal);
    }
  };
  const operator = async (...args: string[]) => {
    say(`operator: twinmart dr ${args.join(' ')}`);
    if ((await drCommand([...args, '--config', configFile(state)])) !== 0) throw new Error(`twinmart dr ${args.join(' ')} was refused`);
  };
  try {
    await pause(20_000, signal);
    say('stopping site dc1 for real: its worker is killed and its PostgreSQL stops' + (state.temporal.clusters ? ', and its Temporal cluster' : ''));
    await failSite(state, 'dc1');
    saveWorld(state);
    await operator('fail', 'dc1', '--reason', 'demo');
    await until('reporting at dc2', (s) => s.reporting.awaitingConfirmation === 'dc2');
    say('reporting is now served from dc2');
    await operator('confirm-reporting', 'dc2');
    const degraded = await until('degraded', (s) => s.phase === 'degraded');
    say(`phase degraded; RTO ${degraded.lastFailover?.rtoSeconds?.toFixed(1)} s; potential data loss in: ${degraded.dataLoss?.potentialLoss.join(', ') || 'none'}`);
    await pause(15_000, signal);
    say('dc1 comes back as a replacement with empty databases');
    await restoreSite(state, 'dc1', createLogger('demo', 'warn'), true);
    saveWorld(state);
    await operator('rebuilt', 'dc1');
    await until('normal', (s) => s.phase === 'normal');
    say('dc1 reintroduced: seeded from dc2, caught up, parity passed; phase normal');
    if (state.temporal.clusters) await operator('handover', 'dc1');
    await operator('failback', 'dc1');
    await until('failback awaiting confirmation', (s) => s.reporting.awaitingConfirmation === 'dc1');
    await operator('confirm-reporting', 'dc1');
    await until('reporting back at dc1', (s) => s.reporting.active === 'dc1' && !s.reporting.awaitingConfirmation);
    say('round trip complete: reporting back at dc1, both sites active');
  } catch (e) {
    say(signal.aborted ? `the demo ended before the round trip finished (${(e as Error).message})` : `round trip stopped: ${(e as Error).message}`);
  } finally {
    await client.connection.close();
  }
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { seconds: { type: 'string' }, rate: { type: 'string' }, 'no-dr': { type: 'boolean' }, temporal: { type: 'string' } });
  const mode = temporalMode(values.temporal);
  const seconds = values.seconds === undefined ? null : Number(values.seconds);
  if (seconds !== null && !(seconds > 0)) throw new UsageError(`--seconds needs a positive number, got ${values.seconds}`);
  const rate = values.rate === undefined ? 5 : Number(values.rate);
  if (!(rate > 0)) throw new UsageError(`--rate needs a positive number, got ${values.rate}`);
  const logger = createLogger('demo');
  const { state, uiUrl } = await up(logger, mode);
  announce(state, uiUrl);
  process.stdout.write(
    `simulating ${rate} calls/s into every HA set${values['no-dr'] ? '' : '; a DR round trip of dc1 starts in 20 s'}; Ctrl-C stops the demo and the world\n`,
  );
  const config = loadConfig(configFile(state));
  const simStop = new AbortController();
  let simulated = 0;
  // The simulator plans its arrivals up front; in real time a day of them outlasts any demo.
  const sim = runSim(
    config,
    { calls: Math.ceil(rate * 86_400), rate, onProgress: (p: { calls: number }) => void (simulated = p.calls) },
    createLogger('sim', 'warn'),
    simStop.signal,
  );
  const roundTrip = values['no-dr'] ? Promise.resolve() : drRoundTrip(state, config, simStop.signal);
  try {
    await watchUntilInterrupted(config, seconds, () => `| calls simulated ${simulated}`, simStop);
  } finally {
    simStop.abort();
    await Promise.all([sim.catch(() => undefined), roundTrip]);
    process.stdout.write('stopping the dev world (data kept in .twinmart; `twinmart dev down --wipe` removes it)\n');
    await stopWorld(loadWorld(state.root), false);
  }
  return 0;
}
