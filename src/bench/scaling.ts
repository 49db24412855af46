/**
 * Scaling (full run only): the same number of call events spread over 1, 4 and 16 HA
 * sets, each set with one member per site, caught up by one site's ETL on Temporal in a
 * world of its own; with the worker's peak memory.
 */
import type { Layout } from '../dev/world';
import { temporalCatchup } from './catchup';
import { loadBacklog } from './load';
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
  const w = await openBenchWorld(`sets${n}`, { layout: setsLayout(n), workers: ['dc1'] });
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
