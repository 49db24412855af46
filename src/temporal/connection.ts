/**
 * Connections to Temporal from the config (address, namespace, optional TLS and API key
 * taken from an environment variable), and the idempotent start of the ETL workflows and
 * retention schedules.
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import {
  Client,
  Connection,
  QueryNotRegisteredError,
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  WorkflowIdConflictPolicy,
  type ScheduleUpdateOptions,
} from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { temporal as proto } from '@temporalio/proto';
import { runLimits, SCHEDULE_INTERVAL, siteClusters, siteIds, temporalAddress, type Config } from '../config';
import type { Logger } from '../logger';
import { CONTROL_QUEUE, DR_WORKFLOW_ID, etlWorkflowId, retentionScheduleId, SEARCH_ATTRIBUTES } from '../workflows/names';
import { drStatusQuery, type DrStatus } from '../workflows/dr-messages';
import { taskTimeoutOption } from '../workflows/runs';

function tlsOptions(config: Config) {
  const tls = config.temporal.tls;
  if (!tls) return undefined;
  const read = (f?: string) => (f ? readFileSync(f) : undefined);
  const cert = read(tls.certFile);
  const key = read(tls.keyFile);
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: read(tls.caFile),
    clientCertPair: cert && key ? { crt: cert, key } : undefined,
  };
}

function apiKey(config: Config): string | undefined {
  const name = config.temporal.apiKeyEnv;
  if (!name) return undefined;
  const key = process.env[name];
  if (!key) throw new Error(`temporal.apiKeyEnv names ${name}, but that environment variable is not set`);
  return key;
}

/** A client of `site`'s own Temporal cluster when it has one (sites.<site>.temporal), else of the top-level one. */
export async function connectClient(config: Config, site?: string): Promise<Client> {
  const address = temporalAddress(config, site);
  const connection = await Connection.connect({
    address,
    tls: tlsOptions(config),
    apiKey: apiKey(config),
  }).catch((e: Error) => {
    throw new Error(`cannot reach the Temporal server at ${address}: ${e.message}`);
  });
  return new Client({ connection, namespace: config.temporal.namespace, identity: clientIdentity() });
}

/**
 * Recorded by Temporal with every signal and update this client sends, and shown in the DR
 * timeline as who sent a command; shaped like the temporal CLI's "temporal-cli:user@host".
 */
export function clientIdentity(): string {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid (a container): $USER it is
  }
  return `twinmart:${user}@${hostname()}`;
}

/**
 * For operator commands: a client of the first site's own cluster that answers, leaving
 * out `avoid`'s (a failed site); the top-level `temporal` when no site has one.
 */
export async function connectSurvivingClient(config: Config, avoid?: string): Promise<{ client: Client; site: string | null }> {
  const candidates = siteClusters(config).filter((c) => c.site !== avoid);
  if (!candidates.length) return { client: await connectClient(config), site: null };
  const errors: string[] = [];
  for (const { site } of candidates) {
    try {
      return { client: await connectClient(config, site), site };
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw new Error(`no Temporal cluster answers: ${errors.join('; ')}`);
}

/**
 * A worker's connection. With `retry`, a server that is down (restarting, or not up yet)
 * is waited for, with a log line per attempt: a worker daemon outlives such outages.
 */
export async function connectWorker(
  config: Config,
  site: string,
  retry?: { logger: Logger; signal?: AbortSignal },
): Promise<NativeConnection> {
  const address = temporalAddress(config, site);
  for (let attempt = 1, wait = 1000; ; attempt++, wait = Math.min(wait * 2, 10_000)) {
    try {
      return await NativeConnection.connect({
        address,
        tls: tlsOptions(config),
        apiKey: apiKey(config),
      });
    } catch (e) {
      const message = `cannot reach the Temporal server at ${address}: ${(e as Error).message}`;
      if (!retry || retry.signal?.aborted) throw new Error(message);
      retry.logger.warn(`${message}; retrying in ${wait / 1000} s`, { attempt });
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Registers the Keyword search attributes the workflows upsert, where they are missing. */
export async function ensureSearchAttributes(client: Client): Promise<void> {
  const namespace = client.options.namespace;
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.values(SEARCH_ATTRIBUTES)
    .map((k) => k.name)
    .filter((n) => !(n in (existing.customAttributes ?? {})));
  if (!missing.length) return;
  await client.connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((n) => [n, proto.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
}

/**
 * Starts the DR workflow and the ETL of every site it does not hold as failed or
 * rebuilding (a failed site's ETL must stay stopped until its reintroduction), unless
 * they already run. Idempotent.
 */
export async function startAll(client: Client, config: Config): Promise<string[]> {
  await client.workflow.start('drWorkflow', {
    workflowId: DR_WORKFLOW_ID,
    taskQueue: CONTROL_QUEUE,
    args: [{}],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    ...taskTimeoutOption(runLimits(config)),
  });
  const dr = await drStatusWhenReady(client);
  const started = siteIds(config).filter((s) => (dr.sites[s] ?? 'active') === 'active');
  for (const site of started) await startEtl(client, config, site);
  for (const site of siteIds(config)) await ensureRetentionSchedule(client, config, site);
  return started;
}

/**
 * Creates the site's retention schedule, or brings an existing one in line with the config
 * (idempotent). Every site has one, failed or not: a run against a site whose worker is
 * gone waits at most its run timeout, and the next run after the site's return purges it.
 * Its state is kept, so a schedule an operator paused stays paused.
 */
export async function ensureRetentionSchedule(client: Client, config: Config, site: string): Promise<void> {
  const { schedule } = config.retention;
  const options: Omit<ScheduleUpdateOptions, 'state'> = {
    spec: SCHEDULE_INTERVAL.test(schedule) ? { intervals: [{ every: schedule as Duration }] } : { cronExpressions: [schedule] },
    action: {
      type: 'startWorkflow',
      workflowType: 'retentionWorkflow',
      workflowId: retentionScheduleId(site),
      // Workflow tasks on the control queue like every workflow's; the purge runs on the site's queue.
      taskQueue: CONTROL_QUEUE,
      args: [{ site }],
      workflowRunTimeout: '1 hour',
      ...taskTimeoutOption(runLimits(config)),
    },
    // A run still purging (a large first purge) is not joined by a second one.
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  };
  try {
    await client.schedule.create({ scheduleId: retentionScheduleId(site), ...options });
  } catch (e) {
    if (!(e instanceof ScheduleAlreadyRunning)) throw e;
    await client.schedule.getHandle(retentionScheduleId(site)).update((prev) => ({ ...prev, ...options }));
  }
}

/** The DR workflow answers `status` once it has described the deployment (one activity). */
async function drStatusWhenReady(client: Client, timeoutMs = 60_000): Promise<DrStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
    } catch (e) {
      if (!(e instanceof QueryNotRegisteredError) || Date.now() > deadline) {
        throw new Error(`the DR workflow does not answer its status query (is a worker running?): ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Starts the site's ETL unless it already runs (idempotent). */
export async function startEtl(client: Client, config: Config, site: string): Promise<void> {
  await client.workflow.start('siteEtlWorkflow', {
    workflowId: etlWorkflowId(site),
    taskQueue: CONTROL_QUEUE,
    args: [{ site }],
    ...taskTimeoutOption(runLimits(config)),
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}
