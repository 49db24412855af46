/**
 * Scaling (full run only), each point in a world of its own:
 *  - the same number of call events spread over 1, 4 and 16 HA sets, each set with one
 *    member per site, caught up by one site's ETL on Temporal, with the worker's peak memory;
 *  - growing backlogs in the dev layout (100k and 1M calls): each site's ETL catches up
 *    alone on Temporal, then a DR round fails dc1 and rebuilds it from the survivor's
 *    mart, timed to parity.
 */
import { DEV_LAYOUT, sitesOf, type Layout } from '../dev/world';
import { startAll } from '../temporal/connection';
import { temporalCatchup } from './catchup';
import { drRound, type DrResult } from './dr';
import { CALL_EVENTS_PER_CALL, loadBacklog } from './load';
import type { Profile } from './profile';
import { openBenchWorld } from './world';
import { log, peakRssMb } from './util';

export interface ScalingPoint {
  sets: number;
  members: number;
  callEvents: number;
  memberRows: number;
  seconds: number;
  eventsPerSecond: number;
  cycles: number;
  workerPeakRssMb: number | null;
}

export function setsLayout(n: number): Layout {
  const layout: Layout = {};
  for (let i = 1; i <= n; i++) {
    layout[`sw-voice-${i}`] = [
      { site: 'dc1', db: `idb_s${i}` },
      { site: 'dc2', db: `idb_s${i}` },
    ];
  }
  return layout;
}

export async function scalingPoint(n: number, profile: Profile): Promise<ScalingPoint> {
  const w = await openBenchWorld(`sets${n}`, { layout: setsLayout(n), workers: ['dc1'], temporal: profile.temporal });
  try {
    const b = await loadBacklog(w, profile.scalingCallEvents, {
      callsPerSecond: profile.backfillCallsPerSecond,
      batch: profile.backfillBatch,
      seed: 77,
    });
    const t = await temporalCatchup(w, 'dc1', b, profile.catchupTimeoutSeconds);
    const p: ScalingPoint = {
      sets: n,
      members: b.members,
      callEvents: b.callEvents,
      memberRows: b.memberRows,
      seconds: t.seconds,
      eventsPerSecond: t.eventsPerSecond,
      cycles: t.cycles,
      workerPeakRssMb: peakRssMb(w.state.workers.dc1),
    };
    log.info(`scaling: ${n} sets -> ${p.eventsPerSecond} rows/s, worker peak ${p.workerPeakRssMb} MB`);
    return p;
  } finally {
    await w.close();
  }
}

export interface RebuildPoint {
  calls: number;
  callEvents: number;
  memberRows: number;
  /** Each site's catch-up on Temporal, alone, rows/s and seconds. */
  catchup: Record<string, { eventsPerSecond: number; seconds: number; cycles: number }>;
  workerPeakRssMb: Record<string, number | null>;
  dr: Pick<DrResult, 'failedSite' | 'failoverRtoSeconds' | 'rebuildToParitySeconds' | 'rebuildSteps' | 'seeded' | 'parity'>;
}

export async function rebuildPoint(calls: number, profile: Profile): Promise<RebuildPoint> {
  const w = await openBenchWorld(`rebuild${calls}`, { layout: DEV_LAYOUT, reporting: true, temporal: profile.temporal });
  try {
    const b = await loadBacklog(w, calls * CALL_EVENTS_PER_CALL, {
      callsPerSecond: profile.backfillCallsPerSecond,
      batch: profile.backfillBatch,
      seed: 78,
    });
    const sites = sitesOf(w.state.layout);
    const catchup: RebuildPoint['catchup'] = {};
    for (const site of sites) {
      // The last site's start brings up the DR workflow too, as the DR round needs it.
      const start = site === sites.at(-1) ? () => startAll(w.client, w.config) : undefined;
      const t = await temporalCatchup(w, site, b, profile.catchupTimeoutSeconds, start);
      catchup[site] = { eventsPerSecond: t.eventsPerSecond, seconds: t.seconds, cycles: t.cycles };
    }
    const workerPeakRssMb = Object.fromEntries(sites.map((s) => [s, peakRssMb(w.state.workers[s])]));
    const dr = await drRound(w, profile.drTimeoutSeconds);
    const p: RebuildPoint = {
      calls: b.calls,
      callEvents: b.callEvents,
      memberRows: b.memberRows,
      catchup,
      workerPeakRssMb,
      dr: {
        failedSite: dr.failedSite,
        failoverRtoSeconds: dr.failoverRtoSeconds,
        rebuildToParitySeconds: dr.rebuildToParitySeconds,
        rebuildSteps: dr.rebuildSteps,
        seeded: dr.seeded,
        parity: dr.parity,
      },
    };
    log.info(`rebuild: ${b.calls} calls -> parity ${p.dr.rebuildToParitySeconds} s after siteRebuilt`);
    return p;
  } finally {
    await w.close();
  }
}
