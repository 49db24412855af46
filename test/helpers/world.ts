/**
 * A real world per test file: PostgreSQL instances per site (and per member where the
 * layout says so), a Temporal dev server, one worker process per site, ETL workflows
 * started. The data directory and logs are removed only when every step passed, so a
 * failure leaves its evidence (path printed).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { Pool } from 'pg';
import { martOwnerUrl, type Config } from '../../src/config';
import { Pools } from '../../src/db';
import { silentLogger } from '../../src/logger';
import { findTemporalCli } from '../../src/dev/temporal';
import { instanceUrl } from '../../src/dev/postgres';
import {
  configFile,
  planWorld,
  saveWorld,
  sitesOf,
  startSiteDatabases,
  startTemporal,
  startReporting,
  startWorker,
  stopOnSignals,
  stopWorld,
  type Layout,
  type TemporalMode,
  type WorldState,
} from '../../src/dev/world';
import { connectClient, startAll } from '../../src/temporal/connection';
import { membersBehind } from '../../src/etl/backlog';
import { loadBacklog } from '../../src/mart/control';
import { repoRoot } from '../../src/paths';
import { etlWorkflowId, retentionScheduleId } from '../../src/workflows/names';

export interface TestWorld {
  state: WorldState;
  config: Config;
  client: Client;
  pools: Pools;
  binary: string;
  /** Pool on a database of a named instance (a site name for its mart and IDBs). */
  db(instance: string, database: string): Pool;
  /** The site's mart as its owner, so a test may also change what the ETL may not. */
  mart(site: string): Pool;
  /** Stops everything; removes the data directory unless a step failed. Register it with the suite's after(). */
  close(): Promise<void>;
}

/**
 * Worlds still open, for an interrupted run (Ctrl-C) to stop their servers. Their data
 * is kept, and the pools are left alone: a test may hold a client that is never released.
 */
const openWorlds = new Set<WorldState>();
stopOnSignals((signal) => {
  const roots = [...openWorlds].map((s) => s.root).join(', ');
  process.stderr.write(`${signal}: stopping the test worlds (data kept at ${roots || 'none'})\n`);
  return Promise.allSettled([...openWorlds].map((s) => stopWorld(s, false)));
});

let anyFailed = false;
/** Wraps a test body so a failure keeps the world's data directory and logs. */
export function step<C>(fn: (t: C) => Promise<void>): (t: C) => Promise<void> {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      anyFailed = true;
      throw e;
    }
  };
}

export async function openWorld(
  name: string,
  options: {
    layout: Layout;
    etl?: WorldState['etl'];
    dr?: WorldState['dr'];
    retention?: WorldState['retention'];
    runHistoryEvents?: number;
    temporalDynamicConfig?: Record<string, unknown>;
    temporal?: TemporalMode;
  },
): Promise<TestWorld> {
  const root = mkdtempSync(join(tmpdir(), `twinmart-${name}-`));
  chmodSync(root, 0o755); // PostgreSQL runs as user postgres and must reach its data dir

  const state = await planWorld(root, {
    layout: options.layout,
    etl: { cycleSeconds: 0.5, heartbeatSeconds: 3, connectTimeoutSeconds: 1, ...options.etl },
    dr: { probeSeconds: 2, confirmationTimeoutSeconds: 30, paritySettleSeconds: 0, ...options.dr },
    retention: options.retention,
    runHistoryEvents: options.runHistoryEvents,
    temporalDynamicConfig: options.temporalDynamicConfig,
    temporal: options.temporal,
  });
  const pools = new Pools();
  let client: Client | undefined;
  const close = async () => {
    openWorlds.delete(state);
    await client?.connection.close();
    await pools.end();
    await stopWorld(state, false).catch(() => undefined);
    if (!anyFailed && !process.env.TWINMART_KEEP_TEST_DATA) rmSync(root, { recursive: true, force: true });
    else process.stderr.write(`test world ${name} kept at ${root} (logs in ${root}/logs)\n`);
  };
  openWorlds.add(state);
  let binary: string;
  let config: Config;
  try {
    for (const site of sitesOf(state.layout)) await startSiteDatabases(state, site, silentLogger);
    binary = process.env.TWINMART_TEMPORAL_CLI ?? (await findTemporalCli({ logger: silentLogger, build: false }));
    await startTemporal(state, binary, silentLogger);
    config = saveWorld(state);
    for (const site of sitesOf(state.layout)) {
      startWorker(state, site);
      startReporting(state, site);
    }
    client = await connectClient(config);
    await startAll(client, config);
    // Tests trigger retention themselves: a scheduled run would purge their backdated data at any moment.
    for (const site of sitesOf(state.layout)) await client.schedule.getHandle(retentionScheduleId(site)).pause('test world');
  } catch (e) {
    anyFailed = true;
    await close();
    throw e;
  }
  return {
    close,
    state,
    config,
    client,
    pools,
    binary,
    db: (instance, database) => pools.get(instanceUrl(state.pg[instance]!, database)),
    mart: (site) => pools.get(martOwnerUrl(config, site)),
  };
}

export { waitFor } from '../../src/wait';

const execFileAsync = promisify(execFile);

/** The twinmart CLI on the world's config, as an operator runs it; resolves with its stdout, rejects on a non-zero exit. */
export async function twinmartCli(w: TestWorld, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), ...args, '--config', configFile(w.state)]);
  return stdout;
}

/**
 * A site's mart has done all there is to do: every member extracted up to now, no chunk
 * half committed, the transform's queues (calls and agents) empty. Throws what is still
 * outstanding, so `waitFor` shows it on a timeout.
 */
export async function settled(w: TestWorld, site: string): Promise<true> {
  const outstanding: string[] = [];
  for (const { member, cursor, rows } of await membersBehind(w.config, w.pools, site)) {
    if (rows !== 0) outstanding.push(`${member.id}: ${cursor ? `${rows ?? 'unreachable'} rows behind` : 'never extracted'}`);
  }
  const { dirty, pendingChunks } = await loadBacklog(w.mart(site));
  if (dirty) outstanding.push(`${dirty} calls or agents to transform`);
  if (pendingChunks) outstanding.push(`${pendingChunks} chunked loads half committed`);
  if (outstanding.length) throw new Error(`${site}: ${outstanding.join('; ')}`);
  return true;
}

/** Every run of a site's ETL workflow, oldest first, not only the one after the latest continue-as-new. */
export async function etlHistories(w: TestWorld, site: string): Promise<temporal.api.history.v1.IHistory[]> {
  const out: { start: number; history: temporal.api.history.v1.IHistory }[] = [];
  for await (const run of w.client.workflow.list({ query: `WorkflowId = "${etlWorkflowId(site)}"` })) {
    out.push({ start: run.startTime.getTime(), history: await w.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory() });
  }
  return out.sort((a, b) => a.start - b.start).map((r) => r.history);
}

/** The workflow task timeout a run (by default the current one) was started with, in seconds. */
export async function taskTimeoutSeconds(w: TestWorld, workflowId: string, runId?: string): Promise<number> {
  const { raw } = await w.client.workflow.getHandle(workflowId, runId).describe();
  return Number(raw.executionConfig?.defaultWorkflowTaskTimeout?.seconds ?? NaN);
}
