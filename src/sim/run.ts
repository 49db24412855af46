/**
 * runSim: generates the traffic and hands it, batch by batch, to one writer per member.
 * In real time a batch holds the events whose time has come (timestamps are the wall
 * clock, shifted back by the history the run starts with); in backfill the events are
 * stamped from startTs and written as fast as the IDBs take them, generation overlapping
 * the writes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import type { Config } from '../config';
import { Pools } from '../db';
import type { Logger } from '../logger';
import { type SimEvent, type SourceSpec, TrafficModel } from './model';
import { type Marker, type SimPlan, resolveSimPlan } from './plan';
import type { MalformedRow, SimOptions, SimProgress, SimResult, SourceSimCounts } from './types';
import { type Batch, type Item, MemberWriter } from './writer';

const POOL_OPTIONS = {
  // main transaction + held late-commit transaction + one spare
  max: 3,
  connectionTimeoutMillis: 2000,
  // a site that vanishes mid-query must not hang its writer
  query_timeout: 15_000,
  keepAlive: true,
};
/** Batches queued per member: two lets generation overlap the writes without running ahead. */
const BACKFILL_BACKLOG = 2;
/** Real time never waits on a slow member; its timeouts mark it down first. */
const REALTIME_BACKLOG = 1000;
/** Real time gathers the events of at least this long into one batch. */
const REALTIME_TICK_MS = 50;

/** The model's events with the fault markers merged in; a marker goes before events of the same time. */
class ItemStream {
  private event: SimEvent | undefined;
  private markerIndex = 0;

  constructor(
    private readonly events: Iterator<SimEvent>,
    private readonly markers: readonly Marker[],
  ) {
    this.event = this.pull();
  }

  peek(): Item | undefined {
    const marker = this.markers[this.markerIndex];
    if (marker && (!this.event || marker.at <= this.event.at)) return marker;
    return this.event;
  }

  take(): Item | undefined {
    const item = this.peek();
    if (item === undefined) return undefined;
    if (item.kind === 'marker') this.markerIndex++;
    else this.event = this.pull();
    return item;
  }

  private pull(): SimEvent | undefined {
    const next = this.events.next();
    return next.done ? undefined : next.value;
  }
}

/** What the data sources emitted, for the result and the progress reports. */
class Tally {
  events = 0;
  lastAt = 0;
  readonly sources = new Map<string, SourceSimCounts>();
  readonly malformed: MalformedRow[] = [];

  constructor(
    sourceIds: string[],
    private readonly baseMs: number,
  ) {
    for (const sourceId of sourceIds) this.sources.set(sourceId, { sourceId, callEvents: 0, agentEvents: 0 });
  }

  add(item: Item): void {
    this.lastAt = Math.max(this.lastAt, item.at);
    if (item.kind === 'marker') return;
    this.events++;
    const counts = this.sources.get(item.sourceId)!;
    if (item.kind === 'agent') {
      counts.agentEvents++;
      return;
    }
    counts.callEvents++;
    if (item.malformed) {
      this.malformed.push({
        kind: item.malformed.kind,
        sourceId: item.sourceId,
        callId: item.callId,
        seq: item.seq,
        event: item.event,
        eventTs: new Date(this.baseMs + item.ts),
        detail: item.malformed.detail,
      });
    }
  }
}

interface Run {
  plan: SimPlan;
  baseMs: number;
  writers: MemberWriter[];
  model: TrafficModel;
  tally: Tally;
  onProgress: ((p: SimProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

export async function runSim(config: Config, options: SimOptions, logger: Logger, signal?: AbortSignal): Promise<SimResult> {
  const plan = resolveSimPlan(config, options);
  const startedAt = new Date();
  const baseMs = plan.startTs?.getTime() ?? startedAt.getTime() - plan.historyMs;
  const pools = new Pools(POOL_OPTIONS);
  // The simulator writes as the collectors do, not as the ETL's read-only IDB role.
  const members = plan.members.map((m) => ({ ...m, url: m.collectorUrl ?? m.url }));
  const guarded = new Map(members.map((m) => [m.url, guardClients(pools.get(m.url))]));
  const writers = members.map(
    (m) =>
      new MemberWriter(
        m,
        guarded.get(m.url)!,
        {
          gaps: plan.gaps.filter((g) => g.memberId === m.id),
          late: plan.lateCommits.filter((l) => l.memberId === m.id),
        },
        baseMs,
        logger,
      ),
  );
  const tally = new Tally(
    plan.sources.map((s) => s.id),
    baseMs,
  );
  logger.info('sim: starting', {
    mode: plan.mode,
    calls: plan.calls,
    rate: plan.rate,
    seed: plan.seed,
    historySeconds: plan.historyMs / 1000,
    members: plan.members.map((m) => m.id),
    agentsPerSource: plan.sources.map((s) => s.agents.length),
  });

  let model: TrafficModel | undefined;
  let aborted = false;
  let hurry = true;
  try {
    const sources = await startWriters(plan, writers);
    model = new TrafficModel({
      seed: plan.seed,
      arrivals: plan.arrivals.slice(0, plan.calls),
      sources,
      malformed: plan.malformed,
      divergent: plan.divergent,
    });
    aborted = await pump({ plan, baseMs, writers, model, tally, onProgress: options.onProgress, signal });
    hurry = aborted;
  } finally {
    await Promise.all(writers.map((w) => w.finish(hurry)));
    await pools.end();
  }
  throwIfFatal(writers);

  const finishedAt = new Date();
  const elapsedMs = finishedAt.getTime() - startedAt.getTime();
  const date = (ms: number): Date => new Date(baseMs + ms);
  const result: SimResult = {
    seed: plan.seed,
    mode: plan.mode,
    calls: model.callsStarted,
    sources: [...tally.sources.values()],
    members: writers.map((w) => ({ ...w.counts })),
    malformed: tally.malformed,
    gaps: plan.gaps.map(({ start, end, ...g }) => ({ ...g, start: date(start), end: date(end) })),
    lateCommits: writers.flatMap((w) =>
      [...w.lateOutcomes].map(([{ start, end, ...window }, outcome]) => ({
        ...window,
        start: date(start),
        end: date(end),
        ...outcome,
      })),
    ),
    simStart: date(0),
    simEnd: date(tally.lastAt),
    startedAt,
    finishedAt,
    elapsedMs,
    eventsPerSecond: elapsedMs > 0 ? Math.round((tally.events * 1000) / elapsedMs) : tally.events,
    aborted,
  };
  logger.info('sim: finished', {
    aborted,
    calls: result.calls,
    events: tally.events,
    elapsedMs,
    eventsPerSecond: result.eventsPerSecond,
    skipped: result.members
      .filter((m) => m.skippedGap + m.skippedUnreachable > 0)
      .map((m) => ({ member: m.memberId, gap: m.skippedGap, unreachable: m.skippedUnreachable })),
  });
  return result;
}

/**
 * Opens every member and continues each agent's seq numbering from the highest seq any
 * reachable member of its set already holds (a data source does not restart numbering).
 */
async function startWriters(plan: SimPlan, writers: MemberWriter[]): Promise<SourceSpec[]> {
  const agentIds = new Map(plan.sources.map((s) => [s.id, s.agents.map((a) => a.id)]));
  const seqs = await Promise.all(writers.map((w) => w.start(agentIds.get(w.member.sourceId)!)));
  return plan.sources.map((source) => ({
    ...source,
    agents: source.agents.map((agent) => ({
      id: agent.id,
      lastSeq: Math.max(0, ...writers.map((w, i) => (w.member.sourceId === source.id ? (seqs[i]?.get(agent.id) ?? 0) : 0))),
    })),
  }));
}

/**
 * pg-pool only listens for errors on idle clients: a server that goes away while a client
 * is checked out (the held late-commit transaction waits for seconds) would raise an
 * unhandled 'error' and end the process. The failure still reaches the next query on
 * that client, which is where the writer handles it.
 */
function guardClients(pool: Pool): Pool {
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

function throwIfFatal(writers: MemberWriter[]): void {
  const failed = writers.find((w) => w.fatal);
  if (failed) throw failed.fatal;
}

/** Generates and dispatches batches until the model is done (false) or the signal aborts (true). */
async function pump(run: Run): Promise<boolean> {
  const { plan, baseMs, writers, tally, signal } = run;
  const realtime = plan.mode === 'realtime';
  const stream = new ItemStream(run.model.events(), plan.markers);
  for (;;) {
    if (signal?.aborted) return true;
    const due = realtime ? Date.now() - baseMs : Infinity;
    const batch = takeBatch(stream, plan.batchSize, due);
    // A full batch means more is due than one batch holds (backfill, or a real-time run
    // writing its history): generation then waits for the writers.
    const behind = batch?.items.length === plan.batchSize;
    if (batch) {
      for (const item of batch.items) tally.add(item);
      for (const w of writers) w.submit(batch);
      await Promise.all(writers.map((w) => w.backlogBelow(realtime && !behind ? REALTIME_BACKLOG : BACKFILL_BACKLOG)));
      throwIfFatal(writers);
      run.onProgress?.({
        calls: run.model.callsStarted,
        events: tally.events,
        simTime: new Date(baseMs + tally.lastAt),
        members: writers.map((w) => ({ ...w.counts })),
      });
    }
    const next = stream.peek();
    if (!next) return false;
    if (realtime && !behind) {
      const wait = Math.max(REALTIME_TICK_MS, next.at - (Date.now() - baseMs));
      if (!(await pause(wait, signal))) return true;
    }
  }
}

/** Up to `max` items whose time is not after `due`; undefined when none is due. */
function takeBatch(stream: ItemStream, max: number, due: number): Batch | undefined {
  const items: Item[] = [];
  for (let next = stream.peek(); next && next.at <= due && items.length < max; next = stream.peek()) {
    items.push(stream.take()!);
  }
  return items.length > 0 ? { startAt: items[0]!.at, items } : undefined;
}

/** Sleeps; false when the signal aborted the wait. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
    return true;
  } catch {
    return false;
  }
}
