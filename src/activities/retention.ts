/**
 * Retention's activities, built per site like the ETL's: on that site's task queue, as the
 * ETL's role (twinmart_etl may delete what it loaded; ANALYZE goes through
 * ctl_analyze). Each purges one bounded batch and is idempotent: a retried batch
 * finds what is left to purge under the same cutoffs. Inputs and results: ids and counts.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config';
import type { Pools } from '../db';
import { etlMartSession } from '../db/sessions';
import type { Logger } from '../logger';
import { analyzePurged, purgeBatch, retentionCutoffs, type BatchResult, type RetentionCutoffs } from '../mart/retention';
import type { RetentionStep } from '../workflows/retention';
import type { RetentionMetrics } from '../metrics/worker';
import { heartbeating } from './heartbeat';

export interface RetentionActivityDeps {
  config: Config;
  site: string;
  pools: Pools;
  logger: Logger;
  metrics?: RetentionMetrics;
}

/** Tries for the transform lock this many times (each up to 5 s) before the batch gives way to the ETL. */
const LOCK_ATTEMPTS = 3;

export interface PurgeBatchInput {
  site: string;
  step: RetentionStep;
  cutoffs: RetentionCutoffs;
  /** Not the step's first batch of the run: go on from where the last one stopped (kept in the mart). */
  resume?: boolean;
}

/** `busy`: the ETL held the transform lock on every attempt; nothing was purged. */
export type PurgeBatchResult = BatchResult & { busy: boolean };

export function createRetentionActivities({ config, site, pools, logger, metrics }: RetentionActivityDeps) {
  const mart = () => pools.get(config.sites[site]!.mart, etlMartSession(`twinmart-retention-${site}`));
  function checkSite(requested: string): void {
    if (requested !== site) {
      throw ApplicationFailure.nonRetryable(`retention activity for site ${requested} reached the worker of site ${site}`);
    }
  }

  return {
    /** The run's cutoffs, from this worker's clock, so every batch of the run purges by the same ones. */
    async retentionCutoffs(input: { site: string }): Promise<RetentionCutoffs> {
      checkSite(input.site);
      return retentionCutoffs(config.retention);
    },

    async purgeBatch(input: PurgeBatchInput): Promise<PurgeBatchResult> {
      checkSite(input.site);
      return heartbeating(async (progress) => {
        for (let attempt = 1; attempt <= LOCK_ATTEMPTS; attempt++) {
          const r = await purgeBatch(mart(), input.step, input.cutoffs, config.retention.batchRows, input.resume === true);
          if (r) {
            for (const [table, n] of Object.entries(r.purged)) metrics?.purged(table, n);
            return { ...r, busy: false };
          }
          progress({ step: input.step, lockAttempts: attempt });
        }
        logger.warn('retention gave way to the ETL: the transform lock stayed taken', { site, step: input.step });
        metrics?.busy();
        return { purged: {}, full: false, busy: true };
      });
    },

    async analyzePurged(input: { site: string; tables: string[] }): Promise<void> {
      checkSite(input.site);
      await heartbeating(() => analyzePurged(mart(), input.tables));
    },
  };
}

export type RetentionActivities = ReturnType<typeof createRetentionActivities>;
