/**
 * One member's extraction: read the snapshot difference since its cursor from the IDB
 * and commit it to the mart in chunks, each chunk's rows and the cursor position in one
 * mart transaction, so a crash anywhere replays from the last committed chunk and the
 * natural keys make a replay a no-op. Plain functions of pools and config: the Temporal
 * activity and the benchmark's no-Temporal baseline both call this.
 */
import type { Pool, PoolClient } from 'pg';
import type { Member } from '../config';
import { describeDbError, isConnectionError, withTransaction } from '../db';
import { answerWithin } from '../db/sessions';
import {
  beginSnapshot,
  checkWitness,
  copyDeltaChunk,
  copyRowsByKey,
  newestRow,
  EMPTY_SNAPSHOT,
  EVENT_TABLES,
  readSessions,
  START,
  type EventTable,
  type IdbIdentity,
  type Position,
  type WitnessCheck,
} from '../sources/idb';
import {
  copyIntoTemp,
  copyLeanIntoTemp,
  ensureCursor,
  mergeAgentEvents,
  mergeCallEvents,
  mergeLeanChunk,
  openSessionIds,
  readCursor,
  upsertSessions,
  writeAudit,
  writeCursor,
  type CursorRow,
  type MergeInput,
} from '../mart/staging';
import { qualityBase } from './order';
import { snapshotXmax, snapshotXmin } from './snapshot';

export interface ExtractOptions {
  /** The site whose mart loads: a member at another site is read across the WAN. */
  site: string;
  chunkRows: number;
  /** A statement on the IDB fails when the IDB sends nothing for this long (etl.idbTimeoutSeconds). */
  idbTimeoutSeconds: number;
  /** Chunks committed per call at most; the rest of the delta waits in the cursor for the next call. */
  maxChunks?: number;
  /** Called after every committed chunk (activities heartbeat here). */
  onChunk?: (progress: ChunkProgress) => void;
  /**
   * Stops the load: the running chunk's statement is cancelled and rolls back, the chunks
   * committed before it are kept and counted, and the rest waits in the cursor.
   */
  signal?: AbortSignal;
  /**
   * Awaited once this member's IDB snapshot is taken, before anything is read: when it is
   * the better partner's extraction, that one stages what both snapshots hold and this
   * member's copies only probe keys already there. Snapshots taken one after the other
   * instead left this member the events committed in between (18 % of a steady cycle's
   * rows at 5,000 events/s), each rewritten by the better partner a cycle later.
   */
  after?: Promise<unknown>;
  /**
   * Read the delta as keys and checksums, and in full only the rows this mart does not
   * hold with the same content (etl.extraction: lean, for every member of a set but the
   * one that loads first and in full: readsLean). The mart ends as a full read leaves it.
   */
  lean?: boolean;
}

export interface ChunkProgress {
  memberId: string;
  chunks: number;
  rows: number;
  pending: { table: EventTable; position: Position } | null;
}

export interface ExtractResult {
  memberId: string;
  /** removed: the member is not in the worker's config (any more). */
  state: 'ok' | 'unreachable' | 'error' | 'superseded' | 'removed';
  callRows: number;
  agentRows: number;
  sessionRows: number;
  discarded: number;
  chunks: number;
  /**
   * COPY data read from the member's IDB (event rows; sessions and control statements
   * not counted), committed or not: what crossed the link.
   */
  bytes: number;
  /** The member is at the loading site (member.site): its bytes stayed on the site's network. */
  local: boolean;
  reset: string | null;
  error: string | null;
}

/** What the extraction sees of the IDB, against which the cursor is checked. */
export interface IdbObservation {
  incarnation: string | null;
  snapshot: string;
  identity: IdbIdentity;
  /** What the cursor's witness reads as now; null when the cursor has no identity yet. */
  witness: WitnessCheck | null;
}

/**
 * Why the stored cursor cannot be trusted for this IDB, or null. Every reason but the
 * first extraction's leads to a read from the start, which the natural keys make a no-op
 * for the rows already staged: a needless reset costs time, a missed one loses rows.
 */
export function resetReason(cursor: CursorRow, idb: IdbObservation): string | null {
  if (cursor.incarnation === null) return null;
  if (cursor.incarnation !== idb.incarnation) return `incarnation changed from ${cursor.incarnation} to ${idb.incarnation}`;
  const newest = cursor.pending_snapshot ?? cursor.snapshot;
  if (snapshotXmax(idb.snapshot) < snapshotXmin(newest)) {
    return `IDB snapshot ${idb.snapshot} is older than the cursor ${newest} (restored database)`;
  }
  const was = cursor.identity;
  if (!was) return null; // a cursor from before identities were recorded
  if (was.systemId !== idb.identity.systemId) {
    return `IDB system identifier changed from ${was.systemId} to ${idb.identity.systemId} (another cluster: a dump restored or a re-created server)`;
  }
  if (was.timeline !== idb.identity.timeline) {
    return `IDB timeline changed from ${was.timeline} to ${idb.identity.timeline} (restored to a point in time, or a promoted standby)`;
  }
  if (cursor.witness && idb.witness?.hash !== cursor.witness.hash) {
    return `the newest row read, ${cursor.witness.table} ${cursor.witness.id}, is gone or changed (restored database, or purged past the cursor)`;
  }
  if (idb.witness?.unreadCounted) {
    return 'rows committed after the cursor use xids it counts as read (restored database)';
  }
  return null;
}

/** The member's IDB is not one twinmart can read as it is (no idb.meta row). */
class MemberError extends Error {}

/**
 * Errors of a member that retrying will not mend until someone fixes the IDB or its
 * grants: bad password (28P01), refused by pg_hba (28000), missing grant (42501), missing
 * table or schema (42P01, 3F000), too many connections (53300), no idb.meta row. Retried
 * like a crash, one such member held back its whole site's transform.
 */
export function isMemberError(e: unknown): boolean {
  if (e instanceof MemberError) return true;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ['28P01', '28000', '42501', '42P01', '3F000', '53300'].includes(code);
}

/**
 * What an error of the member's IDB makes the member for this cycle: unreachable (a
 * connection error), error (one no retry mends: reported and skipped, the site goes on),
 * or null for an error that is not the member's.
 */
function memberState(e: unknown): 'unreachable' | 'error' | null {
  if (isConnectionError(e) || isBusy(e)) return 'unreachable';
  return isMemberError(e) ? 'error' : null;
}

/** The IDB did not let this cycle read in time: a lock wait (55P03) or statement (57014) past its session's limit. */
function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '55P03' || code === '57014';
}

/** Another extraction of the same member committed in between (a zombie activity attempt). */
class Superseded extends Error {}

function sameCursor(a: CursorRow, b: CursorRow): boolean {
  return (
    a.incarnation === b.incarnation &&
    a.snapshot === b.snapshot &&
    a.pending_snapshot === b.pending_snapshot &&
    a.pending_table === b.pending_table &&
    a.pending_xid === b.pending_xid &&
    a.pending_id === b.pending_id
  );
}

/** A delta (prev, target] in progress, from `table` after `position`. */
interface Delta {
  prev: string;
  target: string;
  table: EventTable;
  position: Position;
}

export const emptyResult = (memberId: string, local: boolean): ExtractResult => ({
  memberId,
  state: 'ok',
  callRows: 0,
  agentRows: 0,
  sessionRows: 0,
  discarded: 0,
  chunks: 0,
  bytes: 0,
  local,
  reset: null,
  error: null,
});

export async function extractMember(mart: Pool, idb: Pool, member: Member, options: ExtractOptions): Promise<ExtractResult> {
  const result = emptyResult(member.id, member.site === options.site);
  let idbClient: PoolClient;
  try {
    idbClient = await idb.connect();
  } catch (e) {
    const state = memberState(e);
    if (!state) throw e;
    return { ...result, state, error: describeDbError(e, member.url) };
  }
  let broken: Error | undefined;
  const unwatch = answerWithin(idbClient, options.idbTimeoutSeconds * 1000);
  try {
    await extractDeltas(mart, idbClient, member, options, result);
    return result;
  } catch (e) {
    broken = e as Error;
    if (options.signal?.aborted) return result;
    if (e instanceof Superseded) return { ...result, state: 'superseded', error: e.message };
    // An error is the member's only when the mart still answers.
    const state = memberState(e);
    if (state && (await answers(mart))) return { ...result, state, error: describeDbError(e, member.url) };
    throw e;
  } finally {
    if (!broken) await idbClient.query('rollback').catch(() => {});
    unwatch();
    idbClient.release(broken);
  }
}

async function extractDeltas(
  mart: Pool,
  idb: PoolClient,
  member: Member,
  options: ExtractOptions,
  result: ExtractResult,
): Promise<void> {
  const { snapshot: current, incarnation, identity } = await beginSnapshot(idb);
  await options.after;
  if (!identity) {
    throw new MemberError(
      `${member.id} is a hot standby: its snapshots do not list the transactions running on its primary, ` +
        "so rows they commit would count as read; point twinmart at the collector's primary",
    );
  }
  if (incarnation === null) throw new MemberError(`IDB of member ${member.id} has no row in idb.meta`);
  await ensureCursor(mart, member.id, member.sourceId);
  let cursor = (await readCursor(mart, member.id))!;
  const witness = cursor.identity ? await checkWitness(idb, cursor.snapshot, cursor.witness) : null;
  result.reset = resetReason(cursor, { incarnation, snapshot: current, identity, witness });

  let delta: Delta;
  if (result.reset) delta = { prev: EMPTY_SNAPSHOT, target: current, table: 'call_event', position: START };
  else if (cursor.pending_snapshot && cursor.pending_table)
    delta = {
      prev: cursor.snapshot,
      target: cursor.pending_snapshot,
      table: cursor.pending_table,
      position: { xid: cursor.pending_xid!, id: cursor.pending_id! },
    };
  else delta = { prev: cursor.snapshot, target: current, table: 'call_event', position: START };

  if (!result.reset && delta.prev === current && cursor.incarnation === incarnation) {
    // Nothing committed on the IDB since the last extraction: one cheap statement.
    await mart.query('update ctl_cursor set last_extract_at = now() where member_id = $1', [member.id]);
    return;
  }

  const openIds = result.reset ? [] : await openSessionIds(mart, member.id, incarnation);
  const sessions = await readSessions(idb, delta.prev, current, openIds);
  const base = qualityBase(member);

  for (;;) {
    if (options.signal?.aborted) return;
    const expected = cursor;
    const chunk = await withTransaction(mart, async (c) => {
      // Another extraction of this member holds its cursor (a zombie attempt or a second
      // worker): waiting would queue this one behind it, perhaps for as long as it hangs.
      const locked = await readCursor(c, member.id, true).catch((e: { code?: string }) => {
        if (e?.code === '55P03') throw new Superseded(`cursor of ${member.id} is held by another extraction; leaving it to that one`);
        throw e;
      });
      if (!locked || !sameCursor(locked, expected)) {
        throw new Superseded(`cursor of ${member.id} moved while this extraction ran; leaving it to the newer one`);
      }
      const first = result.chunks === 0;
      const sessionRows = first ? await upsertSessions(c, member.id, incarnation, sessions) : 0;
      const merge = { memberId: member.id, incarnation, qualityBase: base };
      let budget = options.chunkRows;
      let callRows = 0;
      let agentRows = 0;
      let discarded = 0;
      let lastEventTs: Date | null = null;
      let next: Delta | null = delta;
      for (const table of EVENT_TABLES.slice(EVENT_TABLES.indexOf(delta.table))) {
        const position: Position = table === delta.table ? delta.position : START;
        const load = options.lean ? loadLean : loadFull;
        const loaded = await load(c, idb, table, { ...delta, position }, budget, merge);
        result.bytes += loaded.bytes;
        if (table === 'call_event') callRows = loaded.rows;
        else agentRows = loaded.rows;
        discarded += loaded.discarded;
        if (loaded.maxEventTs && (!lastEventTs || loaded.maxEventTs > lastEventTs)) lastEventTs = loaded.maxEventTs;
        budget -= loaded.rows;
        if (budget <= 0) {
          next = { ...delta, table, position: loaded.last! };
          break;
        }
        next = null;
      }
      const snapshot = next ? delta.prev : delta.target;
      const update = {
        incarnation,
        snapshot,
        pending: next ? { snapshot: next.target, table: next.table, position: next.position } : null,
        rows: callRows + agentRows,
        reset: first && result.reset !== null,
        lastEventTs,
        identity,
        witness: await newestRow(idb, snapshot),
      };
      await writeCursor(c, member.id, update);
      if (update.rows || sessionRows || (first && result.reset)) {
        await writeAudit(c, {
          memberId: member.id,
          incarnation,
          from: delta.prev,
          to: delta.target,
          final: next === null,
          callRows,
          agentRows,
          sessionRows,
          discarded,
          resetReason: first ? result.reset : null,
        });
      }
      return { next, callRows, agentRows, sessionRows, discarded, cursor: (await readCursor(c, member.id))! };
    }, { signal: options.signal });
    result.chunks += 1;
    result.callRows += chunk.callRows;
    result.agentRows += chunk.agentRows;
    result.sessionRows += chunk.sessionRows;
    result.discarded += chunk.discarded;
    cursor = chunk.cursor;
    options.onChunk?.({
      memberId: member.id,
      chunks: result.chunks,
      rows: result.callRows + result.agentRows,
      pending: chunk.next && { table: chunk.next.table, position: chunk.next.position },
    });
    if (options.maxChunks && result.chunks >= options.maxChunks) return;
    if (chunk.next) delta = chunk.next;
    else if (delta.target !== current) {
      // That finished a delta left pending by an earlier attempt; now the rest up to now.
      delta = { prev: delta.target, target: current, table: 'call_event', position: START };
    } else return;
  }
}

/** One table's part of a chunk: rows of the delta read, bytes read, the last position. */
interface Loaded {
  rows: number;
  bytes: number;
  last: Position | null;
  discarded: number;
  maxEventTs: Date | null;
}

type LoadTable = (c: PoolClient, idb: PoolClient, table: EventTable, delta: Delta, limit: number, merge: MergeInput) => Promise<Loaded>;

const mergeTemp = (c: PoolClient, table: EventTable, merge: MergeInput) =>
  table === 'call_event' ? mergeCallEvents(c, merge) : mergeAgentEvents(c, merge);

/** Every row of the chunk read in full and merged. */
const loadFull: LoadTable = async (c, idb, table, delta, limit, merge) => {
  const copied = await copyIntoTemp(c, table, await copyDeltaChunk(idb, table, delta.prev, delta.target, delta.position, limit));
  const merged = await mergeTemp(c, table, merge);
  return { ...copied, discarded: merged.discarded, maxEventTs: merged.maxEventTs };
};

/**
 * The chunk's keys and checksums, then in full, in the same IDB snapshot, only the rows
 * the mart does not hold with the same content; the rows it holds take this member's
 * quality where it wins, as loadFull's merge would give them.
 */
const loadLean: LoadTable = async (c, idb, table, delta, limit, merge) => {
  const lean = await copyLeanIntoTemp(c, table, await copyDeltaChunk(idb, table, delta.prev, delta.target, delta.position, limit, 'keys'));
  const loaded: Loaded = { ...lean, discarded: 0, maxEventTs: null };
  if (!lean.rows) return loaded;
  const { fetch, maxEventTs } = await mergeLeanChunk(c, table, merge);
  loaded.maxEventTs = maxEventTs;
  if (!fetch) return loaded;
  const fetched = await copyIntoTemp(c, table, await copyRowsByKey(idb, table, fetch));
  const merged = await mergeTemp(c, table, merge);
  loaded.bytes += fetched.bytes;
  loaded.discarded = merged.discarded;
  if (merged.maxEventTs && (!loaded.maxEventTs || merged.maxEventTs > loaded.maxEventTs)) loaded.maxEventTs = merged.maxEventTs;
  return loaded;
};

async function answers(pool: Pool): Promise<boolean> {
  try {
    await pool.query('select 1');
    return true;
  } catch {
    return false;
  }
}

