/**
 * The ETL's activities, built per site by a factory that receives the config, the pools
 * and the logger. Each runs on that site's task queue, so extraction into a site's mart
 * runs at that site. Inputs and results carry ids and counts only.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { martOwnerUrl, runLimits, siteIds, type Config } from '../config';
import type { RunLimits } from '../workflows/runs';
import { withTransaction, type Pools } from '../db';
import { etlMartSession, idbReadSession } from '../db/sessions';
import { emptyResult, extractMember, type ExtractResult } from '../etl/extract-member';
import { readsLean } from '../etl/order';
import { transformSite, type TransformResult } from '../etl/transform';
import type { Logger } from '../logger';
import { migrateMart } from '../mart/migrate';
import { initReportingRole } from '../mart/control';
import { noteExclusions, refreshDataGaps } from '../mart/facts';
import { heartbeating, type Progress } from './heartbeat';
import type { EtlMetrics } from '../metrics/worker';

export interface SiteDescription {
  site: string;
  sites: string[];
  members: { id: string; site: string; sourceId: string; index: number }[];
  cycleSeconds: number;
  chunkRows: number;
  heartbeatSeconds: number;
  martVersion: number;
  /** Absent in results recorded before runs were bounded (see boundRun). */
  runs?: RunLimits;
  /** etl.extraction; absent in results recorded before it existed (full). */
  extraction?: 'full' | 'lean';
}

export interface EtlActivityDeps {
  config: Config;
  site: string;
  pools: Pools;
  logger: Logger;
  /** Counts for the worker's /metrics; absent, nothing is counted. */
  metrics?: EtlMetrics;
}

export function createEtlActivities({ config, site, pools, logger, metrics }: EtlActivityDeps) {
  const mart = () => pools.get(config.sites[site]!.mart);
  const owner = () => pools.get(martOwnerUrl(config, site));
  // Loads and transforms use sessions of their own. PostgreSQL empties every ON COMMIT
  // DELETE ROWS temp table of a session at each commit that touched any temp table: a
  // session that served both held seven, and each chunk commit of a load emptied the
  // transform's five too (0.3 ms a table here, see BENCHMARKS.md).
  const martFor = (role: 'load' | 'transform') => pools.get(config.sites[site]!.mart, etlMartSession(`twinmart-${role}-${site}`));

  /** A task routed to the wrong site's queue would load the wrong mart: refuse it outright. */
  function checkSite(requested: string): void {
    if (requested !== site) {
      throw ApplicationFailure.nonRetryable(`activity for site ${requested} reached the worker of site ${site}`);
    }
  }

  async function extract(memberId: string, maxChunks: number, progress: Progress, after?: Promise<unknown>): Promise<ExtractResult> {
    const member = config.members.find((m) => m.id === memberId);
    // The run's member list predates this worker's config: the workflow starts a new run, which reads it.
    if (!member) return { ...emptyResult(memberId, false), state: 'removed', error: `member ${memberId} is not in the config of the worker of ${site}` };
    const idb = pools.get(member.url, idbReadSession(config.etl, `twinmart-extract-${site}`));
    const result = await extractMember(martFor('load'), idb, member, {
      site,
      chunkRows: config.etl.chunkRows,
      idbTimeoutSeconds: config.etl.idbTimeoutSeconds,
      maxChunks,
      onChunk: progress,
      signal: Context.current().cancellationSignal,
      ...(after && { after }),
      lean: config.etl.extraction === 'lean' && readsLean(member, config.members, site),
    });
    if (result.state !== 'ok') logger.warn('member not extracted', { site, member: member.id, state: result.state, error: result.error });
    metrics?.extracted(member.id, result);
    return result;
  }

  /** `cycleStartedAt`: when the workflow began the cycle this transform ends (absent from older runs). */
  async function transform(progress: Progress, cycleStartedAt?: string): Promise<TransformResult> {
    const t0 = Date.now();
    const r = await transformSite(martFor('transform'), {
      batch: config.etl.transformBatch,
      queueRules: config.etl,
      maxCallSeconds: config.etl.maxCallSeconds,
      dimensions: config.etl.dimensions,
      onBatch: progress,
      signal: Context.current().cancellationSignal,
    });
    metrics?.transformed((Date.now() - t0) / 1000, r.facts);
    if (cycleStartedAt) metrics?.cycle((Date.now() - Date.parse(cycleStartedAt)) / 1000);
    return r;
  }

  /** ctl_excluded_member as the ETL has it, and the data gaps that follow; returns the gaps written. */
  function recordExclusions(excludedSites: string[]): Promise<number> {
    const excluded = config.members
      .filter((m) => excludedSites.includes(m.site))
      .map((m) => ({ memberId: m.id, sourceId: m.sourceId }));
    return withTransaction(martFor('transform'), async (c) => {
      await noteExclusions(c, excluded);
      return refreshDataGaps(c);
    });
  }

  /** Loads and transforms heartbeat while they commit chunks or batches (see heartbeating). */
  const progressing = <T>(fn: (progress: Progress) => Promise<T>) => heartbeating(fn, config.etl.stallSeconds * 1000);

  return {
    /** Migrates this site's mart, records the run's exclusions and describes what its ETL extracts (ids only). */
    async prepareSite(input: { site: string; excludedSites?: string[] }): Promise<SiteDescription> {
      checkSite(input.site);
      const { applied, version } = await heartbeating(() => migrateMart(owner()));
      if (applied.length) logger.info('mart migrated', { site, applied });
      // A seeded mart holds the survivor's exclusions; a new run states its own.
      await recordExclusions(input.excludedSites ?? []);
      await initReportingRole(mart(), site, config.reporting.primary);
      return {
        site,
        sites: siteIds(config),
        members: config.members.map((m) => ({ id: m.id, site: m.site, sourceId: m.sourceId, index: m.index })),
        cycleSeconds: config.etl.cycleSeconds,
        chunkRows: config.etl.chunkRows,
        heartbeatSeconds: config.etl.heartbeatSeconds,
        martVersion: version,
        runs: runLimits(config),
        extraction: config.etl.extraction,
      };
    },

    /**
     * Tells the mart which members are excluded and records the data gaps that follow
     * (a set with no member read any more), so the data-loss report read after a
     * confirmed exclusion lists them. Returns the gaps written.
     */
    async noteExclusions(input: { site: string; excludedSites: string[] }): Promise<number> {
      checkSite(input.site);
      return recordExclusions(input.excludedSites);
    },

    async extractMember(input: { site: string; memberId: string }): Promise<ExtractResult> {
      checkSite(input.site);
      return progressing((progress) => extract(input.memberId, config.etl.cycleChunks, progress));
    },

    async transform(input: { site: string; cycleStartedAt?: string }): Promise<TransformResult> {
      checkSite(input.site);
      return progressing((progress) => transform(progress, input.cycleStartedAt));
    },

    /**
     * A steady cycle in one task: every member's small delta (one chunk each), then the
     * transform. Seven tasks a cycle cost the server a sixth of the two cores at 5,000
     * events/s and each cycle a round trip per task; a member that fills its chunk counts
     * as behind next cycle and loads through extractMember again. The members of a lane
     * take their IDB snapshots at once, then load one after another in the lane's order
     * (see ExtractOptions.after and extractionLanes).
     */
    async extractAndTransform(input: { site: string; lanes: string[][]; cycleStartedAt?: string }): Promise<{ extracts: ExtractResult[]; transform: TransformResult }> {
      checkSite(input.site);
      return progressing(async (progress) => {
        const extracts = await Promise.all(
          input.lanes.flatMap((lane) => {
            let before: Promise<unknown> = Promise.resolve();
            return lane.map((id) => {
              const done = extract(id, 1, progress, before);
              before = done.catch(() => undefined);
              return done;
            });
          }),
        );
        return { extracts, transform: await transform(progress, input.cycleStartedAt) };
      });
    },
  };
}

export type EtlActivities = ReturnType<typeof createEtlActivities>;
