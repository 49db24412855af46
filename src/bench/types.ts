/** The shape of a benchmark result: bench/results/<date>.json and the last line of `--json`. */
import type { BandwidthResult } from './bandwidth';
import type { CatchupSummary, PlainResult, RawResult, TemporalResult } from './catchup';
import type { DrResult } from './dr';
import type { Footprint, HistoryGrowth } from './footprint';
import type { FreshnessLevel } from './freshness';
import type { PlainIdle, TemporalIdle } from './idle';
import type { Backlog } from './load';
import type { Machine, PostgresSettings, Versions } from './machine';
import type { ReportTimings } from './reports';
import type { RebuildPoint, ScalingPoint } from './scaling';
import type { WaitProfile } from './statements';

export interface CatchupDetail extends CatchupSummary {
  backlog: Backlog;
  raw: RawResult | null;
  keyedRaw: RawResult | null;
  noTemporal: PlainResult | null;
  temporal: TemporalResult | null;
  /** The other site's ETL catching up on the same backlog, started with the DR workflow while the first ran idle cycles. */
  otherSite: TemporalResult | null;
}

export interface BenchResult {
  schema: 1;
  kind: 'quick' | 'full';
  command: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  note: string;
  machine: Machine;
  versions: Versions;
  /** The site instances' durability settings as they report them (SHOW), not as configured. */
  postgres: PostgresSettings;
  settings: {
    layout: string;
    cycleSeconds: number;
    chunkRows: number;
    cycleChunks: number;
    transformBatch: number;
    postgres: string;
    pgStatStatements: boolean;
  };
  sizes: {
    catchupCallEvents: number[];
    main: Backlog | null;
    freshnessRates: number[];
    freshnessWarmupSeconds: number;
    freshnessWindowSeconds: number;
    /** Seconds of traffic the simulator wrote at once before each level's real time. */
    freshnessHistorySeconds: number;
    idlePlainCycles: number;
    idleTemporalWindowSeconds: number;
    scalingSets: number[] | null;
    scalingCallEvents: number | null;
    rebuildCalls: number[] | null;
    drBehindCalls: number;
  };
  /** Headline figures from the largest backlog (the main world), site dc1; every size under bySize. */
  catchup: CatchupSummary & {
    bySize: Record<string, CatchupDetail>;
    stages: {
      noTemporal: { extractSeconds: number; transformSeconds: number; extractShare: number | null } | null;
      databaseShares: Record<string, { group: string; seconds: number; share: number }[]>;
      temporalOutsideActivitiesSeconds: number | null;
      /** What active backends waited on, sampled every 50 ms during each variant. */
      waits: Record<string, WaitProfile | null>;
    };
  };
  /** What the main world's catch-up (dc1, on Temporal) read from local and remote members. */
  bandwidth: BandwidthResult | null;
  freshness: Record<string, FreshnessLevel>;
  idle: {
    /** The no-Temporal loop on an idle, fully loaded mart. */
    msPerCycle: number | null;
    dbMsPerCycle: number | null;
    historyEventsPerCycle: number | null;
    historyBytesPerCycle: number | null;
    noTemporal: PlainIdle | null;
    temporal: TemporalIdle | null;
  };
  memory: {
    /** Highest VmHWM of any worker process of the main world before the DR stage. */
    peakRssMb: number | null;
    workers: Record<string, number | null>;
    afterCatchupMb: Record<string, number | null>;
  };
  dr: (Partial<DrResult> & { failoverRtoSeconds: number | null; rebuildToParitySeconds: number | null }) ;
  /** The reports' cost on a year of queue intervals and a month of agent spans. */
  reports: ReportTimings | null;
  temporal: {
    idle: HistoryGrowth | null;
    underLoad: Record<string, Record<string, HistoryGrowth | null>>;
    footprint: Footprint | null;
  };
  scaling: {
    backlog: { callEvents: number; memberRows: number; eventsPerSecond: number | null }[];
    sets: ScalingPoint[];
    /** Growing backlogs: each site's catch-up, then a rebuild of dc1 timed to parity. */
    rebuild: RebuildPoint[];
    note: string | null;
  } | null;
  errors: { stage: string; message: string }[];
}
