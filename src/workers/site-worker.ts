/**
 * `twinmart worker --site X`: one Worker on the control queue (workflow tasks, polled at
 * every site so workflows outlive a site) and one on the site's queue (its activities).
 * Shutdown drains: running activities get the grace time to finish or roll back.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client } from '@temporalio/client';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { assertSite, type Config } from '../config';
import { Pools } from '../db';
import type { Logger } from '../logger';
import { createEtlActivities } from '../activities/etl';
import { createControlActivities, createDrActivities } from '../activities/dr';
import { createDrillActivities } from '../activities/drill';
import { createRetentionActivities } from '../activities/retention';
import { connectWorker } from '../temporal/connection';
import { CONTROL_QUEUE, etlWorkflowId, siteQueue } from '../workflows/names';
import { etlStatusQuery } from '../workflows/etl-messages';
import { createWorkerMetrics } from '../metrics/worker';
import { serveMetrics, type MetricsServer } from '../metrics/http';
import { activityAware, installRuntime } from './runtime';

export const workflowsPath = require.resolve('../workflows');
export const workflowBundlePath = resolve(__dirname, '..', '..', 'workflow-bundle.js');

export interface SiteWorkers {
  /** Resolves when both workers have stopped. */
  run: Promise<void>;
  shutdown(): void;
}

/** `metricsHost`: where /metrics listens (on sites.<site>.metricsPort), 127.0.0.1 unless given. */
export async function createSiteWorkers(
  config: Config,
  site: string,
  logger: Logger,
  opts: { connection?: NativeConnection; metricsHost?: string } = {},
): Promise<SiteWorkers> {
  assertSite(config, site);
  const metricsPort = config.sites[site]!.metricsPort;
  // The SDK installs its own SIGINT/SIGTERM handlers that shut workers down.
  const { coreMetricsUrl } = await installRuntime(site, metricsPort !== undefined);
  const connection = opts.connection;
  const conn = connection ?? (await connectWorker(config, site, { logger }));
  const pools = new Pools();
  const status = new Client({ connection: conn, namespace: config.temporal.namespace });
  const metrics = createWorkerMetrics({
    config,
    site,
    mart: () => pools.get(config.sites[site]!.mart, { max: 2 }),
    etlStatus: () => status.withDeadline(Date.now() + 2000, () => status.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery)),
  });
  let metricsServer: MetricsServer | null = null;
  if (metricsPort !== undefined) {
    metricsServer = await serveMetrics({
      registry: metrics.registry,
      port: metricsPort,
      host: opts.metricsHost ?? '127.0.0.1',
      logger,
      extra: async () => (coreMetricsUrl ? (await fetch(coreMetricsUrl, { signal: AbortSignal.timeout(2000) })).text() : ''),
    });
  }
  const activityLog = activityAware(logger);
  const workflowSource = existsSync(workflowBundlePath)
    ? { workflowBundle: { codePath: workflowBundlePath } }
    : { workflowsPath };
  const control = await Worker.create({
    connection: conn,
    namespace: config.temporal.namespace,
    taskQueue: CONTROL_QUEUE,
    ...workflowSource,
    activities: createControlActivities({ config }),
    identity: `twinmart-${site}-control@${process.pid}`,
    // A workflow's tasks stick to the worker that ran it last; when that worker's site
    // has just died, the next task (a declareSiteFailure) waits this long before another
    // site's worker may take it. The default 10 s went straight into the failover's RTO.
    stickyQueueScheduleToStartTimeout: '2 seconds',
  });
  const activities = await Worker.create({
    connection: conn,
    namespace: config.temporal.namespace,
    taskQueue: siteQueue(site),
    activities: {
      ...createEtlActivities({ config, site, pools, logger: activityLog, metrics: metrics.etl }),
      ...createDrActivities({ config, site, pools, logger: activityLog }),
      ...createDrillActivities({ config, site, pools }),
      ...createRetentionActivities({ config, site, pools, logger: activityLog, metrics: metrics.retention }),
    },
    identity: `twinmart-${site}@${process.pid}`,
    shutdownGraceTime: '20s',
    maxConcurrentActivityTaskExecutions: 16,
    // A cancel reaches an activity only in the answer to a heartbeat, which the SDK sends at
    // most every 80 % of the heartbeat timeout (8 s) by default: an ETL cycle interrupted by
    // a command would wait that long for its load to hear of it. Loads beat every second.
    maxHeartbeatThrottleInterval: '1 second',
  });
  const stopped = async () => {
    await metricsServer?.close();
    await pools.end();
  };
  const run = Promise.all([control.run(), activities.run()]).then(
    async () => {
      await stopped();
      if (!connection) await conn.close();
    },
    async (e) => {
      await stopped();
      throw e;
    },
  );
  return {
    run,
    shutdown() {
      for (const w of [control, activities]) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
