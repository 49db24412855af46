import type { TemporalMode } from '../dev/world';
/** The sizes of a run: `--quick` keeps the harness alive in minutes, the full run measures. */
export interface Profile {
  kind: 'quick' | 'full';
  /** `--temporal per-site`: every world runs a Temporal cluster per site (default: one dev server). */
  temporal?: TemporalMode;
  /** `--extraction lean`: the main world's etl.extraction (default full); the catch-up measures the other beside it anyway. */
  extraction?: 'full' | 'lean';
  /** Call events (distinct, as the data sources emit them) in the backlog of each catch-up; the last is the main world's. */
  catchupSizes: number[];
  /** Arrival rate of the backfilled calls (calls per second of event time). */
  backfillCallsPerSecond: number;
  /** Rows per simulator transaction while backfilling. */
  backfillBatch: number;
  catchupTimeoutSeconds: number;
  idle: { plainCycles: number; temporalWindowSeconds: number };
  freshness: {
    rates: number[];
    allRates: number[];
    /** Seconds of traffic the simulator writes at once before real time, so a level starts in steady state. */
    historySeconds: number;
    warmupSeconds: number;
    /** Longest wait after the warm-up for steady cycles (at 5,000 events/s the history takes minutes to load). */
    steadyMaxSeconds: number;
    windowSeconds: number;
    drainSeconds: number;
    probeEveryMs: number;
    pollEveryMs: number;
    /**
     * Distinct events (call + agent) per call arrival when the window opens, the first
     * guess of the calls per second of a rate: 7.5 in the model at 100 and 670 calls/s
     * some 500 s into the traffic, 6.9 at 320 s (the full run's windows), 5.3 to 5.9 at
     * 150 s (the quick run's), 4.4 in the first minutes, when agents wait idle and calls
     * have not yet ended.
     */
    eventsPerCall: number;
    /**
     * Attempts per level, each corrected by what the last achieved. At 5,000 events/s the
     * achieved rate of the same calls per second varied by 5 % between runs (5,043 and
     * 5,227 events/s at 666.67 calls/s). The quick run, a check of the harness, takes one.
     */
    attempts: number;
  };
  drTimeoutSeconds: number;
  /** Calls written into every IDB just before the main world's failover, so the survivor is behind when it happens. */
  drBehindCalls: number;
  /** HA sets per world for the scaling runs (full only), each with `scalingCallEvents`. */
  scalingSets: number[] | null;
  scalingCallEvents: number;
  /** Calls in the backlog of each rebuild point (full only): catch-up, then a DR round timed to parity. */
  rebuildCalls: number[] | null;
  /** The reports stage's mart: queues over queueDays of 15-minute intervals, agents' spans of spanMinutes over agentDays. */
  reports: { queues: number; queueDays: number; agents: number; agentDays: number; spanMinutes: number };
}

const ALL_RATES = [200, 1000, 5000];

export const QUICK: Profile = {
  kind: 'quick',
  catchupSizes: [20_000],
  backfillCallsPerSecond: 10,
  backfillBatch: 5000,
  catchupTimeoutSeconds: 300,
  idle: { plainCycles: 20, temporalWindowSeconds: 10 },
  freshness: { rates: [200, 1000], allRates: ALL_RATES, historySeconds: 120, warmupSeconds: 10, steadyMaxSeconds: 120, windowSeconds: 15, drainSeconds: 20, probeEveryMs: 100, pollEveryMs: 20, eventsPerCall: 5.6, attempts: 1 },
  drTimeoutSeconds: 300,
  drBehindCalls: 10_000,
  scalingSets: null,
  scalingCallEvents: 0,
  rebuildCalls: null,
  // A check of the stage: the full run measures the year (71 s here with a year in a quick run).
  reports: { queues: 10, queueDays: 30, agents: 20, agentDays: 7, spanMinutes: 30 },
};

export const FULL: Profile = {
  kind: 'full',
  catchupSizes: [100_000, 1_000_000],
  backfillCallsPerSecond: 10,
  backfillBatch: 10_000,
  catchupTimeoutSeconds: 1800,
  idle: { plainCycles: 50, temporalWindowSeconds: 30 },
  freshness: { rates: ALL_RATES, allRates: ALL_RATES, historySeconds: 300, warmupSeconds: 20, steadyMaxSeconds: 420, windowSeconds: 30, drainSeconds: 60, probeEveryMs: 100, pollEveryMs: 20, eventsPerCall: 7.5, attempts: 3 },
  drTimeoutSeconds: 1800,
  drBehindCalls: 50_000,
  scalingSets: [1, 4, 16],
  scalingCallEvents: 100_000,
  rebuildCalls: [100_000, 1_000_000],
  reports: { queues: 20, queueDays: 365, agents: 200, agentDays: 31, spanMinutes: 10 },
};
