/**
 * The Temporal SDK runtime of a worker process: its logs (the SDK's, the native core's,
 * and those workflows and activities write through the SDK's `log`, which carry the
 * workflow's ids) go through the process's one logger; with a metrics port its own
 * Prometheus exporter runs on a loopback port, which the worker's /metrics appends.
 */
import { Context } from '@temporalio/activity';
import type { LogLevel, LogMetadata, Logger as SdkLogger } from '@temporalio/common';
import { makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import type pino from 'pino';
import { freePort } from '../dev/ports';
import { envLevel, rootLogger, type Logger } from '../logger';

const PINO_LEVEL = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

function sdkLogger(p: pino.Logger): SdkLogger {
  const log = (level: LogLevel, message: string, meta?: LogMetadata) => p[PINO_LEVEL[level]]({ ...meta }, message);
  return {
    log,
    trace: (m, meta) => log('TRACE', m, meta),
    debug: (m, meta) => log('DEBUG', m, meta),
    info: (m, meta) => log('INFO', m, meta),
    warn: (m, meta) => log('WARN', m, meta),
    error: (m, meta) => log('ERROR', m, meta),
  };
}

let installed: Promise<{ coreMetricsUrl: string | null }> | null = null;

/** Once per process, before any connection. Returns where the SDK's own metrics are, if asked for. */
export function installRuntime(site: string, withMetrics: boolean): Promise<{ coreMetricsUrl: string | null }> {
  installed ??= (async () => {
    const level = envLevel() ?? 'info';
    const corePort = withMetrics ? await freePort() : null;
    Runtime.install({
      logger: sdkLogger(rootLogger().child({ name: 'temporal', site }, { level })),
      telemetryOptions: {
        // The native core is chatty below WARN; LOG_LEVEL=debug or trace lets it speak.
        logging: { forward: {}, filter: makeTelemetryFilterString({ core: level === 'debug' || level === 'trace' ? 'DEBUG' : 'WARN' }) },
        ...(corePort && {
          metrics: {
            prometheus: { bindAddress: `127.0.0.1:${corePort}`, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true },
            globalTags: { site },
          },
        }),
      },
    });
    return { coreMetricsUrl: corePort ? `http://127.0.0.1:${corePort}/metrics` : null };
  })();
  return installed;
}

/** Inside an activity, its lines go through the SDK's `log` (the activity's and workflow's ids with them); elsewhere through `fallback`. */
export function activityAware(fallback: Logger): Logger {
  const at = (level: keyof Logger) => (message: string, meta?: Record<string, unknown>) => {
    let ctx: Context | undefined;
    try {
      ctx = Context.current();
    } catch {
      // not in an activity
    }
    if (ctx) ctx.log[level](message, meta);
    else fallback[level](message, meta);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
