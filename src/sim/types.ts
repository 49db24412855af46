/** The simulator's public options and results (see runSim). */
import type { MalformedKind } from './model';

/** A window of the run counted in calls: from the arrival of call `afterCalls` (0-based) for `calls` arrivals. */
export interface CallWindow {
  memberId: string;
  afterCalls: number;
  calls: number;
}

/** The member's collector loses its connection to the data source for the window. */
export type GapOption = CallWindow;

/** The member's collector writes the window's events in one transaction it commits `holdMs` after the window. */
export interface LateCommitOption extends CallWindow {
  holdMs: number;
}

export interface MalformedOption {
  /** Calls that get an extra event with an unknown name (`teleported`). */
  unknownEvent?: number;
  /** Calls whose last event carries an event_ts earlier than its predecessor's. */
  outOfOrder?: number;
  /** Calls whose `released` event is stamped 40 days after the call's start. */
  absurdDuration?: number;
}

export interface SimOptions {
  calls: number;
  /** Mean call arrivals per second, over all simulated sources together. */
  rate: number;
  /** Same seed, same data (random when omitted; the result reports it). */
  seed?: number;
  /** Backfill mode: event times start here and rows are written as fast as possible. Omitted: real time. */
  startTs?: Date;
  /**
   * Real time only: the run begins this many seconds into its traffic. What came before
   * (agents logging in, calls arriving and building up) is written at once, stamped in the
   * past, so real time starts with the data sources in their steady state. Default 0.
   */
  historySeconds?: number;
  /** HA sets to simulate; default every set in the config. */
  sources?: string[];
  /** Default: sized from the rate for about 85% occupancy. */
  agentsPerSource?: number;
  gaps?: GapOption[];
  lateCommits?: LateCommitOption[];
  malformed?: MalformedOption;
  /**
   * Share of call events (0 to 1) that one member of the set, drawn per event, records
   * with other attached data (`attrs.recordedBy`): members that disagree on content.
   */
  divergent?: number;
  /** Most events per written batch (one transaction per batch per member). Default 2000. */
  batchSize?: number;
  onProgress?: (progress: SimProgress) => void;
}

export interface MemberSimCounts {
  memberId: string;
  sourceId: string;
  site: string;
  /** Committed rows. */
  callEvents: number;
  agentEvents: number;
  /** dss_session rows opened. */
  sessions: number;
  /** Events left out on purpose: they fell in an injected gap. */
  skippedGap: number;
  /** Events lost because the member's IDB could not be written. */
  skippedUnreachable: number;
}

export interface SourceSimCounts {
  sourceId: string;
  /** Events the data source emitted (what every member would hold without faults). */
  callEvents: number;
  agentEvents: number;
}

export interface MalformedRow {
  kind: MalformedKind;
  sourceId: string;
  callId: string;
  seq: number;
  event: string;
  eventTs: Date;
  detail: string;
}

export interface GapReport extends CallWindow {
  /** Events with event times in [start, end) are missing from the member. */
  start: Date;
  end: Date;
}

export interface LateCommitReport extends CallWindow {
  start: Date;
  end: Date;
  holdMs: number;
  /** Rows committed late; null committedAt: the transaction was lost (member unreachable). */
  rows: number;
  committedAt: Date | null;
}

export interface SimProgress {
  calls: number;
  events: number;
  /** Event time the run has reached. */
  simTime: Date;
  members: MemberSimCounts[];
}

export interface SimResult {
  seed: number;
  mode: 'realtime' | 'backfill';
  /** Calls that started (fewer than asked when aborted). */
  calls: number;
  sources: SourceSimCounts[];
  members: MemberSimCounts[];
  malformed: MalformedRow[];
  gaps: GapReport[];
  lateCommits: LateCommitReport[];
  /** Event time span of the run. */
  simStart: Date;
  simEnd: Date;
  startedAt: Date;
  finishedAt: Date;
  elapsedMs: number;
  /** Generated events per wall-clock second. */
  eventsPerSecond: number;
  aborted: boolean;
}
