/**
 * Temporal's share: history growth per cycle (describe().historyLength / historySize),
 * what the activities and workflow tasks of a stretch of history spent waiting, the
 * largest payload a history holds, and how long runs get before they continue as new.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { etlStatusQuery } from '../workflows/etl-messages';
import { round } from './util';

type History = Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;
type Event = NonNullable<History['events']>[number];

export interface HistoryPoint {
  runId: string;
  length: number;
  size: number;
  cycle: number;
  at: number;
}

/** The ETL's history size and cycle count now. */
export async function historyPoint(client: Client, workflowId: string): Promise<HistoryPoint> {
  const handle = client.workflow.getHandle(workflowId);
  const [d, s] = await Promise.all([handle.describe(), handle.query(etlStatusQuery)]);
  return { runId: d.runId, length: d.historyLength, size: d.historySize ?? 0, cycle: s.cycle, at: Date.now() };
}

export interface HistoryGrowth {
  cycles: number;
  events: number;
  bytes: number;
  eventsPerCycle: number | null;
  bytesPerCycle: number | null;
  secondsPerCycle: number | null;
  /** Runs that continued as new in between (their growth is counted up to their end). */
  continuedAsNew: number;
}

/** Growth between two points; a continue-as-new in between is followed through the closed run. */
export async function historyGrowth(client: Client, workflowId: string, a: HistoryPoint, b: HistoryPoint): Promise<HistoryGrowth> {
  let events = b.length - a.length;
  let bytes = b.size - a.size;
  let continuedAsNew = 0;
  if (a.runId !== b.runId) {
    const closed = await client.workflow.getHandle(workflowId, a.runId).describe();
    events = closed.historyLength - a.length + b.length;
    bytes = (closed.historySize ?? 0) - a.size + b.size;
    continuedAsNew = 1; // at least one; more would need the chain, which a short window does not reach
  }
  const cycles = b.cycle - a.cycle;
  return {
    cycles,
    events,
    bytes,
    eventsPerCycle: cycles > 0 ? round(events / cycles, 1) : null,
    bytesPerCycle: cycles > 0 ? Math.round(bytes / cycles) : null,
    secondsPerCycle: cycles > 0 ? round((b.at - a.at) / 1000 / cycles, 3) : null,
    continuedAsNew,
  };
}

const ms = (t: Event['eventTime']): number => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : 0);
const id = (n: unknown): number => Number(n ?? 0);

export interface TaskTimings {
  activities: Record<string, { count: number; meanQueueMs: number; meanRunMs: number; maxRunMs: number }>;
  workflowTasks: { count: number; meanQueueMs: number; meanRunMs: number };
  /** Time in the window when no activity of this workflow was running: timers, workflow tasks, queueing. */
  outsideActivitiesMs: number;
}

/** Activity and workflow-task timings of the history events inside [fromMs, toMs]. */
export function taskTimings(history: History, fromMs: number, toMs: number): TaskTimings {
  const events = history.events ?? [];
  const byId = new Map(events.map((e) => [id(e.eventId), e]));
  const acts: Record<string, { count: number; queue: number; run: number; max: number }> = {};
  const busy: [number, number][] = [];
  const wft = { count: 0, queue: 0, run: 0 };
  for (const e of events) {
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) {
      const sched = byId.get(id(done.scheduledEventId));
      const started = byId.get(id(done.startedEventId));
      if (!sched || !started) continue;
      const s0 = ms(sched.eventTime);
      const s1 = ms(started.eventTime);
      const s2 = ms(e.eventTime);
      if (s2 < fromMs || s0 > toMs) continue;
      const name = sched.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      const a = (acts[name] ??= { count: 0, queue: 0, run: 0, max: 0 });
      a.count++;
      a.queue += s1 - s0;
      a.run += s2 - s1;
      a.max = Math.max(a.max, s2 - s1);
      busy.push([Math.max(s1, fromMs), Math.min(s2, toMs)]);
    }
    const wc = e.workflowTaskCompletedEventAttributes;
    if (wc) {
      const sched = byId.get(id(wc.scheduledEventId));
      const started = byId.get(id(wc.startedEventId));
      if (!sched || !started || ms(e.eventTime) < fromMs || ms(sched.eventTime) > toMs) continue;
      wft.count++;
      wft.queue += ms(started.eventTime) - ms(sched.eventTime);
      wft.run += ms(e.eventTime) - ms(started.eventTime);
    }
  }
  busy.sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let end = -Infinity;
  for (const [s, e] of busy) {
    if (e <= end) continue;
    covered += e - Math.max(s, end);
    end = e;
  }
  return {
    activities: Object.fromEntries(
      Object.entries(acts).map(([k, a]) => [
        k,
        { count: a.count, meanQueueMs: round(a.queue / a.count, 1), meanRunMs: round(a.run / a.count, 1), maxRunMs: round(a.max, 1) },
      ]),
    ),
    workflowTasks: {
      count: wft.count,
      meanQueueMs: wft.count ? round(wft.queue / wft.count, 1) : 0,
      meanRunMs: wft.count ? round(wft.run / wft.count, 1) : 0,
    },
    outsideActivitiesMs: Math.round(Math.max(0, toMs - fromMs - covered)),
  };
}

export interface LargestPayload {
  bytes: number;
  eventType: string;
  eventId: number;
  /** Activity, signal, update or query name where the event has one. */
  name: string | null;
}

/** The largest payload (data bytes) in a history. */
export function largestPayload(history: History): LargestPayload | null {
  let best: LargestPayload | null = null;
  for (const e of history.events ?? []) {
    let biggest = 0;
    const walk = (v: unknown, depth: number): void => {
      if (depth > 12 || v === null || typeof v !== 'object') return;
      if (v instanceof Uint8Array) return;
      const o = v as Record<string, unknown>;
      if (o.data instanceof Uint8Array && 'metadata' in o) biggest = Math.max(biggest, o.data.length);
      for (const x of Object.values(o)) walk(x, depth + 1);
    };
    walk(e, 0);
    if (biggest && (!best || biggest > best.bytes)) {
      const attrs = Object.entries(e).find(([k, v]) => k.endsWith('EventAttributes') && v) as [string, Record<string, unknown>] | undefined;
      const a = attrs?.[1] ?? {};
      const name =
        (a.activityType as { name?: string } | undefined)?.name ??
        (a.signalName as string | undefined) ??
        (a.workflowType as { name?: string } | undefined)?.name ??
        ((a.acceptedRequest as { input?: { name?: string } } | undefined)?.input?.name ?? null);
      best = {
        bytes: biggest,
        eventType: (temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, ''),
        eventId: id(e.eventId),
        name: name ?? null,
      };
    }
  }
  return best;
}

export interface RunSummary {
  runId: string;
  status: string;
  historyLength: number;
  historySize: number;
  startTime: string;
  minutes: number | null;
}

/** Every run of a workflow id, newest first, with its history length (what it reached when it continued as new). */
export async function runsOf(client: Client, workflowId: string): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  for await (const info of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    let length = info.historyLength;
    let size = info.historySize ?? 0;
    if (!length) {
      const d = await client.workflow.getHandle(workflowId, info.runId).describe();
      length = d.historyLength;
      size = d.historySize ?? 0;
    }
    out.push({
      runId: info.runId,
      status: info.status.name,
      historyLength: length,
      historySize: size,
      startTime: info.startTime.toISOString(),
      minutes: info.closeTime ? round((info.closeTime.getTime() - info.startTime.getTime()) / 60_000, 2) : null,
    });
  }
  return out.sort((a, b) => b.startTime.localeCompare(a.startTime));
}

export async function fetchHistory(client: Client, workflowId: string, runId?: string): Promise<History> {
  return client.workflow.getHandle(workflowId, runId).fetchHistory();
}

export interface ContinueAsNewSummary {
  runs: number;
  continuedAsNew: number;
  /** History length (events) and size (bytes) each run had when it continued as new. */
  lengths: number[];
  sizes: number[];
  meanMinutesPerRun: number | null;
}

export interface Footprint {
  /** JSON size of each ETL's status query answer: about the state a continue-as-new carries. */
  stateBytes: Record<string, number>;
  largestPayload: (LargestPayload & { workflowId: string; runId: string }) | null;
  continueAsNew: Record<string, ContinueAsNewSummary>;
  dr: { historyLength: number; historySize: number; largestPayload: LargestPayload | null } | null;
}

/** Largest payloads and continue-as-new lengths of the given workflows (their latest runs). */
export async function footprint(client: Client, etlIds: string[], drId: string | null): Promise<Footprint> {
  let best: Footprint['largestPayload'] = null;
  const continueAsNew: Footprint['continueAsNew'] = {};
  const stateBytes: Footprint['stateBytes'] = {};
  for (const wid of etlIds) {
    stateBytes[wid] = JSON.stringify(await client.workflow.getHandle(wid).query(etlStatusQuery)).length;
    const runs = await runsOf(client, wid);
    const can = runs.filter((r) => r.status === 'CONTINUED_AS_NEW');
    const minutes = can.map((r) => r.minutes).filter((m): m is number => m !== null);
    continueAsNew[wid] = {
      runs: runs.length,
      continuedAsNew: can.length,
      lengths: can.map((r) => r.historyLength),
      sizes: can.map((r) => r.historySize),
      meanMinutesPerRun: minutes.length ? round(minutes.reduce((a, b) => a + b, 0) / minutes.length, 2) : null,
    };
    // The newest runs: the one running, and the last that continued as new (its end holds the carried state).
    for (const run of runs.slice(0, 3)) {
      const p = largestPayload(await fetchHistory(client, wid, run.runId));
      if (p && (!best || p.bytes > best.bytes)) best = { ...p, workflowId: wid, runId: run.runId };
    }
  }
  let dr: Footprint['dr'] = null;
  if (drId) {
    const d = await client.workflow.getHandle(drId).describe();
    dr = { historyLength: d.historyLength, historySize: d.historySize ?? 0, largestPayload: largestPayload(await fetchHistory(client, drId)) };
  }
  return { stateBytes, largestPayload: best, continueAsNew, dr };
}
