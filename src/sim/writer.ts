/**
 * One member's collector: it writes its HA set's events into its own IDB, in its own
 * dss_session rows, with its own faults. Every member gets the same events; what differs
 * is what each one manages to record, and its session rows say so honestly:
 *
 * - an injected gap closes the session at the gap start, drops the events of the window
 *   and opens a reconnect session at the gap end;
 * - a late-commit window's events go into one transaction on a second connection,
 *   committed holdMs after the window while later batches keep committing;
 * - an unreachable IDB loses the batches until it answers again (one retry a second at
 *   most, so a dead site never slows down the writes to the surviving one); then the
 *   old session is closed at the first lost batch and a reconnect session opened.
 *
 * Batches run one after another per member (one transaction each); members run
 * independently of each other.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool, PoolClient } from 'pg';
import type { Member } from '../config';
import { describeDbError, isConnectionError, withClient, withTransaction } from '../db';
import type { Logger } from '../logger';
import {
  closeSession,
  closeStaleSessions,
  ensureIdbSchema,
  insertAgentEvents,
  insertCallEvents,
  lastAgentSeqs,
  openSession,
  readIncarnation,
} from './idb';
import type { AgentEventRow, CallEventRow, SimEvent } from './model';
import type { Marker, PlannedLateCommit, PlannedWindow } from './plan';
import type { MemberSimCounts } from './types';

export type Item = SimEvent | Marker;

/** Items in emission order; startAt is the event time the batch begins at (ms from the start). */
export interface Batch {
  startAt: number;
  items: Item[];
}

export interface MemberWindows {
  gaps: PlannedWindow[];
  late: PlannedLateCommit[];
}

type Step =
  | { kind: 'close'; at: number }
  | { kind: 'open'; at: number }
  | { kind: 'rows'; late: PlannedLateCommit | undefined; calls: CallEventRow[]; agents: AgentEventRow[] }
  | { kind: 'release' };

interface BatchPlan {
  steps: Step[];
  /** Events left out because they fall in a gap. */
  inGap: number;
  /** Events to be written (main or held transaction). */
  writable: number;
}

const FIRST_CONNECTION = 1;
const RECONNECT = 2;
const RETRY_MS = 1000;

const within = (at: number, w: PlannedWindow): boolean => w.start <= at && at < w.end;

/**
 * What a batch means for one member, before touching its database: session changes at
 * the markers, and runs of rows for the main or the held transaction. Gap and late
 * windows are decided by emission time (equal to the event time except in malformed rows).
 */
function planBatch(items: readonly Item[], windows: MemberWindows): BatchPlan {
  const plan: BatchPlan = { steps: [], inGap: 0, writable: 0 };
  let run: Extract<Step, { kind: 'rows' }> | undefined;
  for (const item of items) {
    if (item.kind === 'marker') {
      run = undefined;
      plan.steps.push(
        item.marker === 'gapStart'
          ? { kind: 'close', at: item.at }
          : item.marker === 'gapEnd'
            ? { kind: 'open', at: item.at }
            : { kind: 'release' },
      );
      continue;
    }
    if (windows.gaps.some((g) => within(item.at, g))) {
      plan.inGap++;
      continue;
    }
    const late = windows.late.find((w) => within(item.at, w));
    if (!run || run.late !== late) {
      run = { kind: 'rows', late, calls: [], agents: [] };
      plan.steps.push(run);
    }
    if (item.kind === 'call') run.calls.push(item);
    else run.agents.push(item);
    plan.writable++;
  }
  return plan;
}

/** Connection trouble (including our client-side timeouts), as opposed to a bug or bad data. */
function isUnreachable(e: unknown): boolean {
  const message = (e as Error)?.message ?? '';
  return isConnectionError(e) || /timeout exceeded when trying to connect|Query read timeout/.test(message);
}

interface SessionState {
  /** The session row open in the IDB, as of the last commit. */
  dssId: number | null;
  incarnation: string | null;
  /** A session was opened in this incarnation during this run: the next one is a reconnect. */
  opened: boolean;
}

interface HeldTransaction {
  client: PoolClient;
  window: PlannedLateCommit;
  rows: number;
  calls: number;
  agents: number;
}

export interface LateOutcome {
  rows: number;
  committedAt: Date | null;
}

export class MemberWriter {
  readonly counts: MemberSimCounts;
  readonly lateOutcomes: Map<PlannedLateCommit, LateOutcome>;
  /** A failure that is not the database being away: the run stops and reports it. */
  fatal: Error | undefined;

  private session: SessionState = { dssId: null, incarnation: null, opened: false };
  private handshakeDone = false;
  /** First batch time lost to an unreachable IDB since the last successful write. */
  private lostSince: number | null = null;
  private down = false;
  private probing = false;
  private retryAt = 0;
  private held: HeldTransaction | null = null;
  private heldRowsThisBatch = 0;
  private readonly holds: { hurry: AbortController; done: Promise<void> }[] = [];
  private chain: Promise<void> = Promise.resolve();
  private readonly writes = new Set<Promise<void>>();

  constructor(
    readonly member: Member,
    private readonly pool: Pool,
    private readonly windows: MemberWindows,
    private readonly baseMs: number,
    private readonly logger: Logger,
  ) {
    this.counts = {
      memberId: member.id,
      sourceId: member.sourceId,
      site: member.site,
      callEvents: 0,
      agentEvents: 0,
      sessions: 0,
      skippedGap: 0,
      skippedUnreachable: 0,
    };
    this.lateOutcomes = new Map(windows.late.map((w) => [w, { rows: 0, committedAt: null }]));
  }

  /**
   * Connects, installs the schema if missing and opens the first session at the start
   * of the run. Returns the agents' last seq numbers in this IDB, or null when it is
   * unreachable (its writes are then retried with later batches).
   */
  async start(agentIds: string[]): Promise<Map<string, number> | null> {
    let seqs: Map<string, number>;
    try {
      await this.handshake();
      seqs = await withClient(this.pool, (c) => lastAgentSeqs(c, this.member.sourceId, agentIds));
    } catch (e) {
      if (!isUnreachable(e)) throw e;
      this.lostSince = 0;
      this.markDown(e);
      return null;
    }
    await this.write({ startAt: 0, items: [] }, false);
    if (this.fatal) throw this.fatal;
    return seqs;
  }

  /** Queues the member's share of a batch; returns at once. */
  submit(batch: Batch): void {
    const items = batch.items.filter((i) =>
      i.kind === 'marker' ? i.memberId === this.member.id : i.sourceId === this.member.sourceId,
    );
    if (items.length === 0) return;
    const mine: Batch = { startAt: batch.startAt, items };
    let write = true;
    let probe = false;
    if (this.down) {
      write = !this.probing && Date.now() >= this.retryAt;
      if (write) probe = this.probing = true;
    }
    // Skips go through the chain too, so that batches are always accounted for in order.
    this.chain = this.chain
      .then(() => (write ? this.write(mine, probe) : this.skip(mine)))
      .catch((e: unknown) => {
        this.fatal ??= this.explain(e);
      });
    if (write) {
      const tracked: Promise<void> = this.chain.finally(() => this.writes.delete(tracked));
      this.writes.add(tracked);
    }
  }

  /** Waits until fewer than `limit` writes are queued (backpressure for the generator). */
  async backlogBelow(limit: number): Promise<void> {
    while (this.writes.size >= limit) await this.writes.values().next().value;
  }

  /**
   * Waits for the queued batches, then for the late commits: at their time, or at once
   * when hurrying (abort, failure) because the run is stopping. A late window cut short
   * is committed too: its rows were recorded, only not yet committed.
   */
  async finish(hurry: boolean): Promise<void> {
    await this.chain;
    this.releaseHeld();
    if (hurry) for (const h of this.holds) h.hurry.abort();
    await Promise.all(this.holds.map((h) => h.done));
  }

  private iso(ms: number): string {
    return new Date(this.baseMs + ms).toISOString();
  }

  private inGap(at: number): boolean {
    return this.windows.gaps.some((g) => within(at, g));
  }

  /** The session needs work even without rows: first open, after a loss, or after reconnecting. */
  private needsRepair(startAt: number): boolean {
    return !this.handshakeDone || this.lostSince !== null || (this.session.dssId === null && !this.inGap(startAt));
  }

  private async handshake(): Promise<void> {
    const incarnation = await withClient(this.pool, async (c) => {
      await ensureIdbSchema(c);
      return readIncarnation(c);
    });
    if (incarnation !== this.session.incarnation) {
      if (this.session.incarnation !== null) {
        this.logger.warn('sim: member IDB was replaced (new incarnation); opening a first session in it', {
          member: this.member.id,
          incarnation,
        });
      }
      this.session = { dssId: null, incarnation, opened: false };
    }
    this.handshakeDone = true;
  }

  private async write(batch: Batch, probe: boolean): Promise<void> {
    if (this.fatal) return;
    if (this.down && !probe) return this.skip(batch);
    const plan = planBatch(batch.items, this.windows);
    if (plan.steps.length === 0 && !this.needsRepair(batch.startAt)) {
      this.counts.skippedGap += plan.inGap;
      return;
    }
    const progress = { steps: 0 };
    this.heldRowsThisBatch = 0;
    try {
      if (!this.handshakeDone) await this.handshake();
      const done = await withTransaction(this.pool, (client) => this.apply(client, batch.startAt, plan, progress));
      this.session = done.session;
      this.counts.callEvents += done.calls;
      this.counts.agentEvents += done.agents;
      this.counts.sessions += done.sessions;
      this.counts.skippedGap += plan.inGap;
      this.recovered();
    } catch (e) {
      if (!isUnreachable(e)) {
        this.fatal = this.explain(e);
        return;
      }
      // The windows that ended in this batch are over even if the batch is lost.
      for (const step of plan.steps.slice(progress.steps)) if (step.kind === 'release') this.releaseHeld();
      this.lose(batch.startAt, plan, plan.writable - this.heldRowsThisBatch);
      this.markDown(e);
    }
  }

  /** One transaction: repair the session if needed, then the plan's steps in order. */
  private async apply(
    client: PoolClient,
    startAt: number,
    plan: BatchPlan,
    progress: { steps: number },
  ): Promise<{ session: SessionState; calls: number; agents: number; sessions: number }> {
    const s = { ...this.session };
    const done = { session: s, calls: 0, agents: 0, sessions: 0 };
    const open = async (at: number): Promise<void> => {
      // A first session also ends whatever a previous run of this collector left open.
      if (!s.opened) await closeStaleSessions(client, this.member.id, this.iso(at));
      const connType = s.opened ? RECONNECT : FIRST_CONNECTION;
      s.dssId = await openSession(client, this.member.id, this.member.sourceId, this.iso(at), connType);
      s.opened = true;
      done.sessions++;
    };
    if (this.lostSince !== null && s.dssId !== null) {
      await closeSession(client, s.dssId, this.iso(this.lostSince));
      s.dssId = null;
    }
    if (s.dssId === null && !this.inGap(startAt)) await open(startAt);
    for (const step of plan.steps) {
      switch (step.kind) {
        case 'close':
          if (s.dssId !== null) await closeSession(client, s.dssId, this.iso(step.at));
          s.dssId = null;
          break;
        case 'open':
          if (s.dssId === null) await open(step.at);
          break;
        case 'rows':
          if (step.late) {
            await this.writeHeld(step.late, step.calls, step.agents, s.dssId);
          } else {
            await insertCallEvents(client, this.member.sourceId, s.dssId, this.asRecorded(step.calls), (ms) => this.iso(ms));
            await insertAgentEvents(client, this.member.sourceId, s.dssId, step.agents, (ms) => this.iso(ms));
            done.calls += step.calls.length;
            done.agents += step.agents.length;
          }
          break;
        case 'release':
          this.releaseHeld();
          break;
      }
      progress.steps++;
    }
    return done;
  }

  /** The rows as this member records them: its own attached data where the source's event has a variant for it. */
  private asRecorded(rows: CallEventRow[]): CallEventRow[] {
    const i = this.member.index;
    return rows.some((r) => r.variant?.memberIndex === i) ? rows.map((r) => (r.variant?.memberIndex === i ? { ...r, attrs: r.variant.attrs } : r)) : rows;
  }

  private skip(batch: Batch): void {
    if (this.fatal) return;
    const plan = planBatch(batch.items, this.windows);
    for (const step of plan.steps) if (step.kind === 'release') this.releaseHeld();
    this.lose(batch.startAt, plan, plan.writable);
  }

  private lose(startAt: number, plan: BatchPlan, lost: number): void {
    this.counts.skippedGap += plan.inGap;
    this.counts.skippedUnreachable += lost;
    this.lostSince ??= startAt;
  }

  private markDown(e: unknown): void {
    this.handshakeDone = false;
    this.probing = false;
    this.retryAt = Date.now() + RETRY_MS;
    if (this.down) {
      this.logger.debug('sim: member still unreachable', { member: this.member.id, error: describeDbError(e, this.member.url) });
      return;
    }
    this.down = true;
    this.logger.warn('sim: member IDB unreachable; its events are skipped until it answers again', {
      member: this.member.id,
      error: describeDbError(e, this.member.url),
    });
  }

  private recovered(): void {
    this.probing = false;
    this.lostSince = null;
    if (!this.down) return;
    this.down = false;
    this.logger.info('sim: member IDB reachable again; writing resumes in a new session', {
      member: this.member.id,
      skippedUnreachable: this.counts.skippedUnreachable,
    });
  }

  // ---- late commits ------------------------------------------------------------

  /** Rows of a late window go into the held transaction, opened on its own connection with the window's first rows. */
  private async writeHeld(
    window: PlannedLateCommit,
    calls: CallEventRow[],
    agents: AgentEventRow[],
    dssId: number | null,
  ): Promise<void> {
    const held = this.held ?? (this.held = await this.beginHeld(window));
    try {
      await insertCallEvents(held.client, this.member.sourceId, dssId, this.asRecorded(calls), (ms) => this.iso(ms));
      await insertAgentEvents(held.client, this.member.sourceId, dssId, agents, (ms) => this.iso(ms));
    } catch (e) {
      // The held transaction is gone with everything in it.
      this.held = null;
      held.client.release(e as Error);
      this.counts.skippedUnreachable += held.rows;
      throw e;
    }
    held.calls += calls.length;
    held.agents += agents.length;
    held.rows += calls.length + agents.length;
    this.heldRowsThisBatch += calls.length + agents.length;
  }

  private async beginHeld(window: PlannedLateCommit): Promise<HeldTransaction> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
    } catch (e) {
      client.release(e as Error);
      throw e;
    }
    return { client, window, rows: 0, calls: 0, agents: 0 };
  }

  /** The window is over: commit the held transaction holdMs from now, while later batches go on. */
  private releaseHeld(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    const hurry = new AbortController();
    const done = sleep(held.window.holdMs, undefined, { signal: hurry.signal })
      .catch(() => {})
      .then(() => this.commitHeld(held));
    this.holds.push({ hurry, done });
  }

  private async commitHeld(held: HeldTransaction): Promise<void> {
    try {
      await held.client.query('commit');
    } catch (e) {
      held.client.release(e as Error);
      if (!isUnreachable(e)) {
        this.fatal ??= this.explain(e);
        return;
      }
      this.counts.skippedUnreachable += held.rows;
      this.logger.warn('sim: late commit lost: member IDB unreachable', { member: this.member.id, rows: held.rows });
      return;
    }
    held.client.release();
    this.counts.callEvents += held.calls;
    this.counts.agentEvents += held.agents;
    const outcome = this.lateOutcomes.get(held.window)!;
    outcome.rows += held.rows;
    outcome.committedAt = new Date();
    this.logger.debug('sim: late commit done', { member: this.member.id, rows: held.rows });
  }

  private explain(e: unknown): Error {
    const err = e as { code?: string; message?: string };
    const hint =
      err.code === '23505'
        ? '; the IDB already holds events with these keys (a run with the same seed?): use another seed or fresh IDBs'
        : '';
    return new Error(`sim: member ${this.member.id}: ${describeDbError(e, this.member.url)}${hint}`, { cause: e });
  }
}
