/**
 * Real failures under the ETL: a worker killed with SIGKILL in the middle of chunked
 * loads, a member's PostgreSQL server stopped and restarted, a member replaced by a new
 * empty database. Nothing may be lost and nothing loaded twice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, type PoolClient } from 'pg';
import { tsToMs } from '@temporalio/common/lib/time';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { applyIdbSchema } from '../src/sim/idb';
import { grantIdbReader } from '../src/dev/roles';
import { compareMarts } from '../src/parity';
import { collectStatus } from '../src/etl/site-status';
import { extractMember, resetReason } from '../src/etl/extract-member';
import { migrateMart } from '../src/mart/migrate';
import { createDatabase, instanceUrl, startInstance, stopInstance } from '../src/dev/postgres';
import { MART_DB, startWorker, stopWorker } from '../src/dev/world';
import { etlStatusQuery, excludeSiteUpdate, includeSiteUpdate } from '../src/workflows/etl-messages';
import { etlWorkflowId } from '../src/workflows/names';
import { startEtl } from '../src/temporal/connection';
import { etlHistories, openWorld, settled, step, waitFor, type TestWorld } from './helpers/world';
import { resettableRelay } from './helpers/pg';
import { auditedRows, diffFacts, expectedFacts, idbRows, martFacts, martKeys, unionCallEvents, unusableRows } from './helpers/truth';

const LAYOUT = {
  // idb_a at dc1 has a PostgreSQL server of its own, so it can stop without its site.
  'sw-a': [
    { site: 'dc1', db: 'idb_a', instance: 'm-a-dc1' },
    { site: 'dc2', db: 'idb_a' },
  ],
  'sw-b': [
    { site: 'dc1', db: 'idb_b' },
    { site: 'dc2', db: 'idb_b' },
  ],
};

const memberState = async (w: TestWorld, site: string, member: string) =>
  (await w.client.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery)).members[member]?.state;

/** Every event of the reachable members (all but `down`) is staged in both marts. */
async function allStaged(w: TestWorld, down: string[] = []): Promise<boolean> {
  const members = w.config.members.map((m) => m.id).filter((id) => !down.includes(id));
  const union = await unionCallEvents(w.config, w.pools, members);
  for (const site of ['dc1', 'dc2']) {
    const keys = await martKeys(w.mart(site));
    if ([...union.keys()].some((k) => !keys.has(k))) return false;
  }
  return true;
}

/** A site's facts are what the union of every IDB gives: none missing, none counted twice. */
async function assertFactsOf(w: TestWorld, site: string, message: string): Promise<void> {
  const union = await unionCallEvents(w.config, w.pools);
  const expected = expectedFacts(union.values(), new Set(unusableRows(union.values()).keys()));
  assert.deepEqual(diffFacts(expected, await martFacts(w.mart(site))), [], message);
}

const STALL_SECONDS = 15;

/** Sessions of other roles (the ETL's) show their waits in pg_stat_activity to the superuser only. */
const activity = (w: TestWorld, site: string) => w.db(site, MART_DB);

/**
 * Takes dc1's transform lock, as a long transform batch of another attempt would hold it,
 * and returns its session once dc1's transform waits for it (every cycle's does).
 */
async function takeTransformLock(w: TestWorld): Promise<PoolClient> {
  const c = await w.mart('dc1').connect();
  try {
    await c.query(`select pg_advisory_lock(hashtext('twinmart.transform'))`);
    await waitFor('dc1 transform waiting for the lock', async () => {
      const { rows } = await activity(w, 'dc1').query(`select 1 from pg_stat_activity where wait_event = 'advisory'`);
      return rows.length > 0;
    }, 30_000, 50);
    return c;
  } catch (e) {
    c.release();
    throw e;
  }
}

/**
 * Holds the mart's transform lock (as a long transform batch would) until dc1's transform
 * has waited for it `ms`, while a few calls arrive; returns when the wait began, once the
 * cycle that waited is over (its activity is in the history only when it ends).
 */
async function holdTransformLock(w: TestWorld, ms: number, seed: number): Promise<number> {
  const cycle = async () => (await w.client.workflow.getHandle(etlWorkflowId('dc1')).query(etlStatusQuery)).cycle;
  const c = await takeTransformLock(w);
  try {
    const waiting = Date.now();
    await runSim(w.config, { calls: 20, rate: 5, seed, startTs: new Date(Date.now() - 600_000) }, silentLogger);
    await sleep(Math.max(0, waiting + ms - Date.now()));
    const waited = await cycle();
    await c.query('select pg_advisory_unlock_all()');
    await waitFor('the cycle that waited to end', async () => (await cycle()) > waited, 60_000);
    return waiting;
  } finally {
    await c.query('select pg_advisory_unlock_all()').catch(() => undefined);
    c.release();
  }
}

/**
 * Attempts of the transforming activities dc1 started since `sinceMs`. An activity is
 * recorded started once, when it ends, with its last attempt and the failure before it.
 */
async function transformAttempts(w: TestWorld, sinceMs: number): Promise<{ type: string; attempt: number; failure: string | null }[]> {
  const out: { type: string; attempt: number; failure: string | null }[] = [];
  for (const h of await etlHistories(w, 'dc1')) {
    const scheduled = new Map<string, string>();
    for (const e of h.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
      const st = e.activityTaskStartedEventAttributes;
      if (!st || tsToMs(e.eventTime) < sinceMs) continue;
      const type = scheduled.get(String(st.scheduledEventId)) ?? '';
      if (type === 'transform' || type === 'extractAndTransform') {
        out.push({ type, attempt: st.attempt ?? 1, failure: st.lastFailure?.message ?? null });
      }
    }
  }
  return out;
}

describe('ETL under real failures', { timeout: 420_000 }, () => {
  let w: TestWorld;
  after(() => w?.close());
  before(async () => {
    // Heartbeats time out after 3 s (the test worlds' setting); a load or transform is hung after 15 s without progress.
    w = await openWorld('etl-failures', { layout: LAYOUT, etl: { chunkRows: 100, stallSeconds: STALL_SECONDS } });
  });

  it(
    'loses and doubles nothing when a worker is killed (SIGKILL several times, then SIGTERM) in the middle of chunked loads',
    step(async () => {
      // dc1's worker is down while the backlog is written, so its loads are many chunks long
      // (a running ETL would keep up in small deltas and leave nothing to kill mid-load).
      await stopWorker(w.state, 'dc1', 'graceful');
      await runSim(w.config, { calls: 4000, rate: 5, seed: 11, startTs: new Date(Date.now() - 4 * 3600_000) }, silentLogger);
      startWorker(w.state, 'dc1');
      let kills = 0;
      let drained = false;
      for (let i = 0; i < 4; i++) {
        // Wait until a chunked delta is half committed at dc1, then kill dc1's worker.
        await waitFor('a load in the middle of its chunks', async () => {
          const { rows } = await w.mart('dc1').query('select 1 from ctl_cursor where pending_snapshot is not null');
          return rows.length > 0;
        }, 30_000).then(
          async () => {
            if (i === 3) {
              // SIGTERM last, as a drain may finish the whole load: the worker finishes it or stops at a chunk boundary, and exits by itself.
              const started = Date.now();
              await stopWorker(w.state, 'dc1', 'graceful');
              const log = readFileSync(join(w.state.root, 'logs', 'worker-dc1.log'), 'utf8');
              assert.match(log, /workers stopped/, 'the worker shut down by itself');
              assert.ok(Date.now() - started < 25_000, 'within the grace time');
              drained = true;
            } else {
              await stopWorker(w.state, 'dc1', 'kill');
              kills += 1;
            }
            await sleep(500);
            startWorker(w.state, 'dc1');
          },
          () => undefined, // the load may have finished before the last round
        );
      }
      assert.ok(drained, 'a SIGTERM mid-load drained the worker');
      assert.ok(kills >= 2, `killed ${kills} times mid-load`);
      await waitFor('everything staged after the kills', () => allStaged(w), 180_000);
      for (const site of ['dc1', 'dc2']) await waitFor(`${site} to settle`, () => settled(w, site));
      const union = await unionCallEvents(w.config, w.pools);
      const expected = expectedFacts(union.values(), new Set(unusableRows(union.values()).keys()));
      for (const site of ['dc1', 'dc2']) {
        const keys = await martKeys(w.mart(site));
        assert.equal(keys.size, union.size, `${site}: no extra keys`);
        assert.deepEqual(diffFacts(expected, await martFacts(w.mart(site))), []);
        for (const m of w.config.members) {
          assert.equal(await auditedRows(w.mart(site), m.id), await idbRows(w.config, w.pools, m.id), `${site}: ${m.id} loaded once, no overlapping chunks`);
        }
      }
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date() });
      assert.equal(report.match, true, JSON.stringify(report.mismatches.slice(0, 3)));
    }),
  );

  it(
    "keeps a set flowing from the partner while a member's server is stopped, shows it down, and catches it up",
    step(async () => {
      const inst = w.state.pg['m-a-dc1']!;
      await stopInstance(inst, 'immediate');
      await runSim(w.config, { calls: 200, rate: 5, seed: 12, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
      for (const site of ['dc1', 'dc2']) {
        await waitFor(`${site} sees idb-a-dc1 down`, async () => (await memberState(w, site, 'idb-a-dc1')) === 'unreachable');
      }
      await waitFor('the partner-only events in both marts', () => allStaged(w, ['idb-a-dc1']), 60_000);
      const view = await collectStatus(w.config, w.client, w.pools);
      const row = view.find((s) => s.site === 'dc2')!.members.find((m) => m.id === 'idb-a-dc1')!;
      assert.equal(row.state, 'unreachable');
      assert.match(row.lastError ?? '', /ECONNREFUSED|connect/);

      await startInstance(inst);
      await runSim(w.config, { calls: 100, rate: 5, seed: 13, startTs: new Date(Date.now() - 1800_000) }, silentLogger);
      for (const site of ['dc1', 'dc2']) {
        await waitFor(`${site} extracts idb-a-dc1 again`, async () => (await memberState(w, site, 'idb-a-dc1')) === 'ok');
        await waitFor(`${site} caught up with idb-a-dc1`, async () =>
          (await auditedRows(w.mart(site), 'idb-a-dc1')) === (await idbRows(w.config, w.pools, 'idb-a-dc1')));
      }
      await waitFor('everything staged', () => allStaged(w));
    }),
  );

  it(
    'reads a member replaced by a new empty database from the start (new incarnation)',
    step(async () => {
      const dc2 = w.state.pg.dc2!;
      const admin = w.db('dc2', 'postgres');
      await admin.query('drop database idb_b with (force)');
      await createDatabase(dc2, 'idb_b');
      await applyIdbSchema(instanceUrl(dc2, 'idb_b'));
      await grantIdbReader(dc2, 'idb_b'); // as the collectors' provisioning would
      await runSim(
        w.config,
        { calls: 50, rate: 5, seed: 14, startTs: new Date(Date.now() - 900_000), sources: ['sw-b'] },
        silentLogger,
      );
      for (const site of ['dc1', 'dc2']) {
        const audit = await waitFor(`${site} to reset idb-b-dc2`, async () => {
          const { rows } = await w.mart(site).query<{ reset_reason: string }>(
            "select reset_reason from ctl_load_audit where member_id = 'idb-b-dc2' and reset_reason is not null",
          );
          return rows[0];
        });
        assert.match(audit.reset_reason, /incarnation changed/);
      }
      await waitFor('new database rows staged', () => allStaged(w));
    }),
  );

  it(
    'loads a long backlog a few chunks per call, resuming each call where the last one stopped',
    step(async () => {
      await runSim(w.config, { calls: 300, rate: 5, seed: 15, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
      // A mart of its own on dc1's server: the running ETLs do not move its cursors.
      await createDatabase(w.state.pg.dc1!, 'chunk_cap_mart');
      const mart = w.db('dc1', 'chunk_cap_mart');
      await migrateMart(mart);
      const member = w.config.members.find((m) => m.id === 'idb-b-dc1')!;
      const total = await idbRows(w.config, w.pools, member.id);
      const agents = Number((await w.pools.get(member.url).query('select count(*) as n from idb.agent_event')).rows[0]!.n);
      assert.ok(total + agents > 300, `the member holds more than three chunks of 100 rows (${total + agents})`);
      const calls: number[] = [];
      for (;;) {
        const r = await extractMember(mart, w.pools.get(member.url), member, { site: 'dc1', idbTimeoutSeconds: 30, chunkRows: 100, maxChunks: 3 });
        assert.equal(r.state, 'ok');
        assert.ok(r.chunks <= 3, `a call commits at most 3 chunks, got ${r.chunks}`);
        if (!r.callRows && !r.agentRows) break;
        calls.push(r.callRows + r.agentRows);
        if (calls.length < 2) {
          const { rows } = await mart.query('select pending_snapshot from ctl_cursor where member_id = $1', [member.id]);
          assert.ok(rows[0].pending_snapshot, 'the first call left the rest of the delta pending in the cursor');
        }
      }
      assert.ok(calls.length >= 2, `the backlog took several calls (${calls.join(', ')} rows)`);
      assert.ok(calls.slice(0, -1).every((n) => n === 300), `every call but the last loaded 3 full chunks: ${calls.join(', ')}`);
      // Rows the load rejects (the simulator writes a few unknown events) are recorded instead.
      const staged = await mart.query<{ calls: string; agents: string; rejected: string }>(
        `select (select count(*) from stg_call_event) as calls, (select count(*) from stg_agent_event) as agents,
                (select count(*) from ctl_discard where table_name = 'call_event') as rejected`,
      );
      const n = (k: 'calls' | 'agents' | 'rejected') => Number(staged.rows[0]![k]);
      assert.equal(n('calls') + n('rejected'), total, 'every call event staged or rejected, none twice');
      assert.equal(n('agents'), agents, 'every agent event staged once');
    }),
  );

  it(
    'a member told to wait for its partner loads what its snapshot held when it began to wait, not what came after',
    step(async (t) => {
      await createDatabase(w.state.pg.dc2!, 'after_gate_mart');
      const mart = w.db('dc2', 'after_gate_mart');
      await migrateMart(mart);
      const member = w.config.members.find((m) => m.id === 'idb-b-dc2')!;
      // A pool of its own, named, so the wait below finds this extraction's session and not the running ETLs'.
      const idb = new Pool({ connectionString: member.url, application_name: 'after-gate', max: 2 });
      t.after(() => idb.end());
      const extract = (after?: Promise<unknown>) =>
        extractMember(mart, idb, member, { site: 'dc2', idbTimeoutSeconds: 30, chunkRows: 100_000, ...(after && { after }) });
      assert.equal((await extract()).state, 'ok', 'caught up with what the member held');

      const sim = (seed: number) =>
        runSim(w.config, { calls: 20, rate: 5, seed, sources: ['sw-b'], startTs: new Date(Date.now() - 600_000) }, silentLogger);
      const before = await idbRows(w.config, w.pools, member.id);
      await sim(16);
      const heldAtSnapshot = (await idbRows(w.config, w.pools, member.id)) - before;
      let release!: () => void;
      const gate = new Promise<void>((ok) => (release = ok));
      const waiting = extract(gate);
      let settled = false;
      void waiting.finally(() => (settled = true)).catch(() => undefined);
      // The extraction holds its IDB snapshot in an open transaction while it waits.
      await waitFor('the extraction to wait with its snapshot taken', async () => {
        const { rows } = await w.pools
          .get(member.url)
          .query(`select count(*)::int as n from pg_stat_activity where application_name = 'after-gate' and state = 'idle in transaction'`);
        return rows[0]!.n > 0;
      });
      await sim(17);
      const committedWhileWaiting = (await idbRows(w.config, w.pools, member.id)) - before - heldAtSnapshot;
      assert.ok(committedWhileWaiting > 0, 'rows were committed while it waited');
      assert.equal(settled, false, 'it waits for its partner');
      release();
      const first = await waiting;
      assert.equal(first.callRows, heldAtSnapshot, 'only the rows its snapshot held');
      assert.equal((await extract()).callRows, committedWhileWaiting, 'the rest in the next extraction');
    }),
  );

  it(
    'a transform that waits longer than the heartbeat timeout stays in its first attempt; one without progress for etl.stallSeconds is retried',
    step(async () => {
      const facts = async () => Number((await w.mart('dc1').query('select count(*) as n from interaction_fact')).rows[0]!.n);
      // Three times the heartbeat timeout, within the stall limit: a busy mart, not a hung one.
      const before = await facts();
      const slow = await holdTransformLock(w, 9_000, 21);
      await waitFor('dc1 to transform the calls that arrived meanwhile', async () => (await facts()) > before);
      const slowAttempts = await transformAttempts(w, slow - 3000);
      assert.ok(slowAttempts.length > 0, 'a transform ran since');
      assert.deepEqual(slowAttempts.filter((a) => a.attempt > 1), [], 'no transform retried while it waited');

      // Past the stall limit and one heartbeat timeout: hung, so retried; the retry finishes the work.
      const hung = await holdTransformLock(w, (STALL_SECONDS + 3 + 4) * 1000, 22);
      await waitFor('dc1 to settle after the hung transform', () => settled(w, 'dc1'), 60_000);
      const hungAttempts = await transformAttempts(w, hung - 3000);
      const retried = hungAttempts.filter((a) => a.attempt > 1);
      assert.ok(retried.length > 0, `a transform was retried: ${JSON.stringify(hungAttempts)}`);
      assert.match(retried[0]!.failure ?? '', /heartbeat/i, 'after a heartbeat timeout');
      await assertFactsOf(w, 'dc1', 'every fact right, none counted twice');
    }),
  );

  it(
    'a command interrupts a cycle whose transform waits: the exclusion is confirmed while it still waits, and nothing is lost',
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      // Held for as long as it takes, while calls arrive.
      const lock = await takeTransformLock(w);
      try {
        await runSim(w.config, { calls: 30, rate: 5, seed: 23, startTs: new Date(Date.now() - 600_000) }, silentLogger);
        const waitingSince = Date.now();
        const cycle = (await handle.query(etlStatusQuery)).cycle;
        const confirmed = await Promise.race([
          handle.executeUpdate(excludeSiteUpdate, { args: [{ site: 'dc2' }] }),
          sleep(60_000).then(() => null),
        ]);
        assert.ok(confirmed, 'the exclusion was confirmed while the transform lock was still held');
        assert.deepEqual(confirmed.excludedSites, ['dc2']);
        assert.equal(confirmed.cycle, cycle + 1, 'at the boundary of the interrupted cycle');
        assert.equal((await handle.query(etlStatusQuery)).applied.at(-1)?.cycle, cycle + 1);
        // The activity asked to stop returned what it had committed: not failed, not retried.
        const ends = (await etlHistories(w, 'dc1')).flatMap((h) => {
          const events = (h.events ?? []).filter((e) => tsToMs(e.eventTime) >= waitingSince - 3000);
          const asked = new Set(events.map((e) => String(e.activityTaskCancelRequestedEventAttributes?.scheduledEventId)));
          return events.flatMap((e) => {
            const [end, a] = Object.entries({
              completed: e.activityTaskCompletedEventAttributes,
              failed: e.activityTaskFailedEventAttributes,
              cancelled: e.activityTaskCanceledEventAttributes,
              'timed out': e.activityTaskTimedOutEventAttributes,
            }).find(([, attrs]) => attrs) ?? [];
            return a && asked.has(String(a.scheduledEventId)) ? [end] : [];
          });
        });
        assert.ok(ends.length > 0, 'an activity of the cycle was asked to stop');
        assert.deepEqual([...new Set(ends)], ['completed'], 'it stopped after what it had committed and said so');
      } finally {
        await lock.query('select pg_advisory_unlock_all()').catch(() => undefined);
        lock.release();
      }
      const back = await handle.executeUpdate(includeSiteUpdate, { args: [{ site: 'dc2' }] });
      assert.deepEqual(back.excludedSites, []);
      await waitFor('dc1 to settle', () => settled(w, 'dc1'), 60_000);
      await assertFactsOf(w, 'dc1', 'every fact right after the interrupted transform');
    }),
  );

  it(
    "a load that finds its member's cursor held by another attempt leaves the member to it, instead of queueing behind it, and nothing is lost",
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const member = 'idb-b-dc2';
      const lockWaiters = async () =>
        (await activity(w, 'dc1').query(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`)).rows.length;
      await waitFor(`dc1's cursor of ${member}`, async () => {
        const { rows } = await w.mart('dc1').query('select 1 from ctl_cursor where member_id = $1', [member]).catch(() => ({ rows: [] }));
        return rows.length > 0;
      });
      // The member was replaced earlier in this world: count from here, so only this test's loads are compared.
      const [auditedBefore, idbBefore] = [await auditedRows(w.mart('dc1'), member), await idbRows(w.config, w.pools, member)];
      const lock = await w.mart('dc1').connect();
      try {
        // The cursor row held as a hung attempt's chunk would hold it (a retry used to wait
        // behind it for as long as the old attempt hung).
        await lock.query('begin');
        await lock.query('select 1 from ctl_cursor where member_id = $1 for update', [member]);
        await runSim(w.config, { calls: 30, rate: 5, seed: 24, sources: ['sw-b'], startTs: new Date(Date.now() - 600_000) }, silentLogger);
        const status = await waitFor(`${member} left to the attempt that holds its cursor`, async () => {
          const st = await handle.query(etlStatusQuery);
          return st.members[member]?.state === 'superseded' && st;
        }, 30_000, 50);
        assert.match(status.members[member]!.lastError ?? '', /held by another extraction/);
        assert.equal(await lockWaiters(), 0, `no load of ${member} waits for its cursor`);
        const cycle = status.cycle;
        await waitFor('dc1 cycling on meanwhile', async () => (await handle.query(etlStatusQuery)).cycle > cycle + 2, 30_000);
      } finally {
        await lock.query('rollback').catch(() => undefined);
        lock.release();
      }
      await waitFor('dc1 to settle', () => settled(w, 'dc1'), 60_000);
      assert.equal(
        (await auditedRows(w.mart('dc1'), member)) - auditedBefore,
        (await idbRows(w.config, w.pools, member)) - idbBefore,
        `${member} loaded once`,
      );
      await waitFor('everything staged', () => allStaged(w));
    }),
  );

  it(
    "commits a batch's call facts before its agent spans: new calls are visible while the agent step waits",
    step(async () => {
      const agentStepWaiting = async () =>
        (
          await activity(w, 'dc1')
            .query(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'twinmart-transform-dc1' and query like '%agent_state_fact%'`)
        ).rows.length > 0;
      await waitFor('dc1 to settle', () => settled(w, 'dc1'), 60_000);
      const known = new Set([...(await unionCallEvents(w.config, w.pools)).values()].map((r) => r.call_id));
      const lock = await w.mart('dc1').connect();
      try {
        // Spans cannot be written until this rolls back, as if their step were slow.
        await lock.query('begin');
        await lock.query('lock table agent_state_fact in share row exclusive mode');
        await runSim(w.config, { calls: 30, rate: 5, seed: 25, startTs: new Date(Date.now() - 600_000) }, silentLogger);
        const fresh = [...new Set([...(await unionCallEvents(w.config, w.pools)).values()].map((r) => r.call_id))].filter(
          (id) => !known.has(id),
        );
        assert.ok(fresh.length > 0, 'the simulator wrote new calls');
        await waitFor('the new calls in interaction_fact at dc1', async () => {
          const { rows } = await w
            .mart('dc1')
            .query<{ n: string }>('select count(*) as n from interaction_fact where call_id = any($1::uuid[])', [fresh]);
          return Number(rows[0]!.n) === fresh.length;
        }, 30_000);
        assert.ok(await agentStepWaiting(), 'the agent step of the transform still waits for the table');
      } finally {
        await lock.query('rollback').catch(() => undefined);
        lock.release();
      }
      await waitFor('dc1 to settle', () => settled(w, 'dc1'), 60_000);
      await assertFactsOf(w, 'dc1', 'every fact once the agent step went on');
    }),
  );

  it(
    "an IDB lost while the mart prepares a chunk's COPY: the member is reported unreachable, nothing is committed, the process runs on",
    step(async () => {
      await createDatabase(w.state.pg.dc1!, 'lost_copy_mart');
      const martUrl = instanceUrl(w.state.pg.dc1!, 'lost_copy_mart');
      const mart = w.pools.get(martUrl);
      await migrateMart(mart);
      // The mart is slow to prepare the chunk's temp table (2 s), and the IDB goes away meanwhile.
      await mart.query(`
        create function slow_temp_table() returns event_trigger language plpgsql as $$
        begin
          if current_query() like 'create temp table if not exists tmp_call_event%' then perform pg_sleep(2); end if;
        end $$;
        create event trigger slow_temp_table on ddl_command_start when tag in ('CREATE TABLE') execute function slow_temp_table()`);
      await runSim(w.config, { calls: 30, rate: 50, seed: 26, sources: ['sw-b'], startTs: new Date(Date.now() - 600_000) }, silentLogger);
      const member = w.config.members.find((m) => m.id === 'idb-b-dc1')!;
      const relay = await resettableRelay(member.url);
      // A COPY sent before the mart is ready waits on this lock, so it is still under way
      // when the connection goes (as a COPY still reading when its site fails).
      // The lock is the collector's to take: the ETL's reader role may only read.
      const lock = await w.pools.get(member.collectorUrl!).connect();
      try {
        await lock.query('begin');
        await lock.query('lock table idb.call_event in access exclusive mode');
        const extraction = extractMember(mart, w.pools.get(relay.url), { ...member, url: relay.url }, { site: 'dc1', idbTimeoutSeconds: 30, chunkRows: 1000 });
        await waitFor('the mart preparing the COPY', async () => {
          const { rows } = await mart.query(`select 1 from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()`);
          return rows.length > 0;
        }, 30_000, 20);
        relay.reset();
        // Before the fix the COPY was under way here, and its ECONNRESET, on a stream nobody
        // listened to yet, crashed this process (the survivor's worker, in a demo failover).
        const result = await extraction;
        assert.equal(result.state, 'unreachable', `the member reported unreachable: ${result.error}`);
      } finally {
        await lock.query('rollback').catch(() => undefined);
        lock.release();
        await relay.close();
      }
      const { rows } = await mart.query<{ n: string }>(
        `select (select count(*) from stg_call_event) + (select count(*) from ctl_cursor where snapshot::text <> '1:1:' or pending_snapshot is not null) as n`,
      );
      assert.equal(Number(rows[0]!.n), 0, 'nothing staged and no cursor moved');
    }),
  );

  it(
    'a run cancelled while its activity is on a dead worker ends cancelled, not failed',
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      // dc1's cycle waits for the transform lock in an activity of dc1's worker, which then dies
      // with its site, as when a failover stops the failed site's ETL.
      const lock = await takeTransformLock(w);
      try {
        await stopWorker(w.state, 'dc1', 'kill');
        await handle.cancel();
        await waitFor('the cancelled run to end', async () => (await handle.describe()).status.name !== 'RUNNING', 60_000);
      } finally {
        await lock.query('select pg_advisory_unlock_all()').catch(() => undefined);
        lock.release();
        startWorker(w.state, 'dc1');
      }
      const events = (await handle.fetchHistory()).events ?? [];
      // The attempt on the dead worker ends by its heartbeat timeout: either that is the
      // activity's end (the cancel came first) or a retry was scheduled that the cancel ended.
      assert.ok(
        events.some((e) => e.activityTaskTimedOutEventAttributes || e.activityTaskCanceledEventAttributes),
        'its activity ended by a timeout or its cancellation',
      );
      assert.equal((await handle.describe()).status.name, 'CANCELLED');
      await startEtl(w.client, w.config, 'dc1');
      await waitFor('dc1 to settle', () => settled(w, 'dc1'), 60_000);
      await assertFactsOf(w, 'dc1', 'every fact after the restart');
    }),
  );

  it('reads a member from the start when its IDB is not the one the cursor was read from', () => {
    const identity = { systemId: '7714516183630297263', timeline: 1 };
    const witness = { table: 'call_event' as const, id: '42', xid: '4990', hash: 'h' };
    const cursor = {
      member_id: 'm',
      incarnation: 'a',
      snapshot: '5000:5000:',
      pending_snapshot: null,
      pending_table: null,
      pending_xid: null,
      pending_id: null,
      identity,
      witness,
    };
    const same = { incarnation: 'a', snapshot: '5001:5003:5001', identity, witness: { hash: 'h', unreadCounted: false } };
    assert.equal(resetReason(cursor, same), null);
    assert.match(resetReason(cursor, { ...same, snapshot: '800:900:' }) ?? '', /older than the cursor/);
    assert.match(resetReason(cursor, { ...same, incarnation: 'b' }) ?? '', /incarnation changed/);
    assert.match(resetReason(cursor, { ...same, identity: { ...identity, systemId: '1' } }) ?? '', /system identifier changed/);
    assert.match(resetReason(cursor, { ...same, identity: { ...identity, timeline: 2 } }) ?? '', /timeline changed from 1 to 2/);
    assert.match(resetReason(cursor, { ...same, witness: { hash: null, unreadCounted: false } }) ?? '', /call_event 42, is gone/);
    assert.match(resetReason(cursor, { ...same, witness: { hash: 'h', unreadCounted: true } }) ?? '', /xids it counts as read/);
    assert.equal(
      resetReason({ ...cursor, identity: null, witness: null }, { ...same, witness: null }),
      null,
      'a cursor from before identities were recorded is trusted as before',
    );
    assert.equal(resetReason({ ...cursor, incarnation: null }, { ...same, incarnation: 'b' }), null, 'a first extraction is not a reset');
  });
});
