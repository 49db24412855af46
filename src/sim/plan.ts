/**
 * Turns SimOptions into a checked plan, once, before anything is written: the sources
 * with their queues and agents, the arrival times, and the fault windows in event time.
 * Fault windows are counted in calls, so they are placed on the arrival times, which
 * come from their own random stream and are known before the model runs.
 */
import { randomInt } from 'node:crypto';
import type { Config, Member } from '../config';
import {
  type MalformedKind,
  type SourceSpec,
  agentIdsFor,
  arrivalTimes,
  chooseMalformed,
  meanHandleSeconds,
  mediaOf,
  msOf,
  queuesFor,
} from './model';
import type { CallWindow, SimOptions } from './types';

export class SimOptionsError extends Error {
  override name = 'SimOptionsError';
}

/** Event-time window, ms from the start of the run: [start, end). */
export interface PlannedWindow extends CallWindow {
  start: number;
  end: number;
}

export interface PlannedLateCommit extends PlannedWindow {
  holdMs: number;
}

/** Points in event time where a member's collector changes state; they travel with the events. */
export interface Marker {
  kind: 'marker';
  marker: 'gapStart' | 'gapEnd' | 'lateEnd';
  memberId: string;
  at: number;
}

export interface SimPlan {
  seed: number;
  calls: number;
  rate: number;
  mode: 'realtime' | 'backfill';
  startTs: Date | undefined;
  /** Real time: ms of traffic before the wall clock's start, written at once. */
  historyMs: number;
  batchSize: number;
  /** Agents' lastSeq is 0 here; the run fills it in from the IDBs. */
  sources: SourceSpec[];
  members: Member[];
  /** Seconds; one more than `calls`, so a window may end at the end of the arrivals. */
  arrivals: number[];
  malformed: Map<number, MalformedKind>;
  divergent: number;
  gaps: PlannedWindow[];
  lateCommits: PlannedLateCommit[];
  /** Sorted by time. */
  markers: Marker[];
}

const TARGET_OCCUPANCY = 0.85;
const DEFAULT_BATCH_SIZE = 2000;
const MAX_BATCH_SIZE = 50_000;

function fail(path: string, expected: string, got: unknown): never {
  throw new SimOptionsError(`sim options ${path}: expected ${expected}, got ${JSON.stringify(got) ?? String(got)}`);
}

function integer(path: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(path, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function selectSources(config: Config, wanted: string[] | undefined): string[] {
  const all = Object.keys(config.sources);
  if (wanted === undefined) return all;
  if (wanted.length === 0) fail('sources', `one or more of the config's HA sets (${all.join(', ')})`, wanted);
  wanted.forEach((id, i) => {
    if (!all.includes(id)) fail(`sources[${i}]`, `one of the config's HA sets (${all.join(', ')})`, id);
  });
  return [...new Set(wanted)];
}

/** Enough agents for the offered load at the target occupancy, but no more than could ever take a call. */
function defaultAgents(media: ReturnType<typeof mediaOf>, ratePerSource: number, callsPerSource: number): number {
  const erlangs = ratePerSource * meanHandleSeconds(media);
  return Math.max(2, Math.min(Math.ceil(erlangs / TARGET_OCCUPANCY), Math.ceil(callsPerSource) + 2));
}

function planWindow(
  path: string,
  w: CallWindow,
  members: Member[],
  calls: number,
  arrivals: number[],
): PlannedWindow {
  if (!members.some((m) => m.id === w.memberId)) {
    fail(`${path}.memberId`, `a member of the simulated sets (${members.map((m) => m.id).join(', ')})`, w.memberId);
  }
  const afterCalls = integer(`${path}.afterCalls`, w.afterCalls, 0, calls - 1);
  const count = integer(`${path}.calls`, w.calls, 1, calls - afterCalls);
  return {
    memberId: w.memberId,
    afterCalls,
    calls: count,
    start: msOf(arrivals[afterCalls]!),
    end: msOf(arrivals[afterCalls + count]!),
  };
}

/**
 * One member's windows of one kind must not overlap: each gap has one close and one
 * reconnect, each late window one transaction.
 */
function assertDisjoint(path: string, windows: PlannedWindow[]): void {
  const byMember = new Map<string, PlannedWindow[]>();
  for (const w of windows) byMember.set(w.memberId, [...(byMember.get(w.memberId) ?? []), w]);
  for (const [memberId, list] of byMember) {
    const sorted = [...list].sort((a, b) => a.afterCalls - b.afterCalls);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.afterCalls < sorted[i - 1]!.afterCalls + sorted[i - 1]!.calls) {
        const given = list.map(({ afterCalls, calls }) => ({ afterCalls, calls }));
        fail(path, `windows of member ${memberId} that do not overlap`, given);
      }
    }
  }
}

export function resolveSimPlan(config: Config, options: SimOptions): SimPlan {
  const calls = integer('calls', options.calls, 0);
  if (typeof options.rate !== 'number' || !Number.isFinite(options.rate) || options.rate <= 0) {
    fail('rate', 'calls per second, a number above 0', options.rate);
  }
  const rate = options.rate;
  const seed = options.seed === undefined ? randomInt(0, 2 ** 32) : integer('seed', options.seed, 0, 2 ** 32 - 1);
  if (options.startTs !== undefined && !(options.startTs instanceof Date && !Number.isNaN(options.startTs.getTime()))) {
    fail('startTs', 'a valid Date', options.startTs);
  }
  const historySeconds = integer('historySeconds', options.historySeconds ?? 0, 0, 86_400);
  if (historySeconds > 0 && options.startTs !== undefined) {
    fail('historySeconds', 'no history in backfill mode (startTs given); 0 or omitted', options.historySeconds);
  }
  const batchSize =
    options.batchSize === undefined ? DEFAULT_BATCH_SIZE : integer('batchSize', options.batchSize, 1, MAX_BATCH_SIZE);
  const sourceIds = selectSources(config, options.sources);
  const agentsOption =
    options.agentsPerSource === undefined ? undefined : integer('agentsPerSource', options.agentsPerSource, 1, 100_000);

  const sources: SourceSpec[] = sourceIds.map((id) => {
    const media = mediaOf(id);
    const count = agentsOption ?? defaultAgents(media, rate / sourceIds.length, calls / sourceIds.length);
    return { id, media, queues: queuesFor(id, media), agents: agentIdsFor(id, count).map((a) => ({ id: a, lastSeq: 0 })) };
  });
  const members = config.members.filter((m) => sourceIds.includes(m.sourceId));
  const arrivals = arrivalTimes(seed, rate, calls + 1);

  const malformedCounts: Record<MalformedKind, number> = {
    unknownEvent: integer('malformed.unknownEvent', options.malformed?.unknownEvent ?? 0, 0),
    outOfOrder: integer('malformed.outOfOrder', options.malformed?.outOfOrder ?? 0, 0),
    absurdDuration: integer('malformed.absurdDuration', options.malformed?.absurdDuration ?? 0, 0),
  };
  const malformedTotal = Object.values(malformedCounts).reduce((a, b) => a + b, 0);
  if (malformedTotal > calls) fail('malformed', `at most one malformed row per call (${calls} calls)`, options.malformed);

  const divergent = options.divergent ?? 0;
  if (typeof divergent !== 'number' || !(divergent >= 0 && divergent <= 1)) fail('divergent', 'a share from 0 to 1', options.divergent);
  const gaps = (options.gaps ?? []).map((g, i) => planWindow(`gaps[${i}]`, g, members, calls, arrivals));
  const lateCommits = (options.lateCommits ?? []).map((l, i) => ({
    ...planWindow(`lateCommits[${i}]`, l, members, calls, arrivals),
    holdMs: integer(`lateCommits[${i}].holdMs`, l.holdMs, 0, 3_600_000),
  }));
  assertDisjoint('gaps', gaps);
  assertDisjoint('lateCommits', lateCommits);
  const markers: Marker[] = [
    ...gaps.flatMap((g): Marker[] => [
      { kind: 'marker', marker: 'gapStart', memberId: g.memberId, at: g.start },
      { kind: 'marker', marker: 'gapEnd', memberId: g.memberId, at: g.end },
    ]),
    ...lateCommits.map((l): Marker => ({ kind: 'marker', marker: 'lateEnd', memberId: l.memberId, at: l.end })),
  ].sort((a, b) => a.at - b.at);

  return {
    seed,
    calls,
    rate,
    mode: options.startTs ? 'backfill' : 'realtime',
    startTs: options.startTs,
    historyMs: historySeconds * 1000,
    batchSize,
    sources,
    members,
    arrivals,
    malformed: chooseMalformed(seed, calls, malformedCounts),
    divergent,
    gaps,
    lateCommits,
    markers,
  };
}
