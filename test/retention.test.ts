/**
 * Retention on a real two-site world: each site has its schedule; a run purges old staged
 * events, sessions, audit rows and discards and old facts and aggregates, keeps the rest
 * as it was, leaves the marts at parity, never rebuilds a fact from a late event for what
 * it purged, and runs its many batches beside a busy ETL without failing a cycle.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Pool } from 'pg';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { compareMarts } from '../src/parity';
import { retentionScheduleId } from '../src/workflows/names';
import { historyText } from '../src/temporal/history-text';
import type { RetentionResult, retentionWorkflow } from '../src/workflows/retention';
import { etlHistories, openWorld, settled, step, waitFor, type TestWorld } from './helpers/world';
import { queueAggregateDiff } from './helpers/truth';
import { withPgClient } from './helpers/pg';

const DAY = 86_400_000;
const SITES = ['dc1', 'dc2'];
const RETENTION = { stagingDays: 3, factDays: 10, batchRows: 5000 };

/** Triggers the site's schedule as an operator would and waits for that run's result. */
async function runRetention(w: TestWorld, site: string): Promise<RetentionResult & { workflowId: string }> {
  const schedule = w.client.schedule.getHandle(retentionScheduleId(site));
  const actions = async () => {
    const { info } = await schedule.describe();
    return [...info.runningActions, ...info.recentActions.map((a) => a.action)].map((a) => a.workflow);
  };
  const seen = new Set((await actions()).map((a) => a.workflowId));
  await schedule.trigger();
  const run = await waitFor(`a retention run of ${site}`, async () => (await actions()).find((a) => !seen.has(a.workflowId)), 30_000);
  const result = await w.client.workflow.getHandle<typeof retentionWorkflow>(run.workflowId, run.firstExecutionRunId).result();
  return { ...result, workflowId: run.workflowId };
}

/** Every row of a table as natural key -> text of its content, read with SQL of its own. */
async function rowsOf(mart: Pool, sql: string): Promise<Map<string, string>> {
  const { rows } = await mart.query<{ k: string; v: string }>(sql);
  return new Map(rows.map((r) => [r.k, r.v]));
}
const FACT_ROW = `row(source_id, media, direction, queue, agent_id, start_ts, answer_ts, end_ts, outcome, wait_s, talk_s, event_count)::text`;
const facts = (mart: Pool, where = 'true') => rowsOf(mart, `select call_id::text as k, ${FACT_ROW} as v from interaction_fact where ${where}`);
const factsWithStart = async (mart: Pool): Promise<Map<string, { start: Date; row: string }>> => {
  const { rows } = await mart.query<{ k: string; start: Date; row: string }>(`select call_id::text as k, start_ts as start, ${FACT_ROW} as row from interaction_fact`);
  return new Map(rows.map((r) => [r.k, { start: r.start, row: r.row }]));
};
const spans = (mart: Pool, where: string) =>
  rowsOf(mart, `select source_id || '/' || agent_id || '/' || seq as k, row(state, reason, start_ts, end_ts)::text as v
                  from agent_state_fact where ${where}`);
const gaps = (mart: Pool) => rowsOf(mart, `select source_id || '/' || gap_start as k, coalesce(gap_end::text, 'open') as v from ctl_data_gap`);
const count = async (mart: Pool, sql: string, params: unknown[] = []): Promise<number> =>
  Number((await mart.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);

describe('retention on a real two-site world', { timeout: 240_000 }, () => {
  let w: TestWorld;
  const now = Date.now();
  /** A call with one event older than stagingDays and one recent: none of its events may go. */
  const straddling = '00000000-0000-4000-8000-00000000000a';
  let stagingBefore: Date;
  let factsBefore: Date;

  /** Writes call events into every member IDB of the set, as its collectors would. */
  const writeEvents = (events: { callId: string; seq: number; event: string; ts: number }[]) =>
    Promise.all(
      w.config.members.map((m) =>
        withPgClient(m.collectorUrl!, (c) =>
          c.query(
            `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction, queue)
             select call_id, seq, $1, event, ts, 'voice', 'inbound', 'q-retention'
               from unnest($2::uuid[], $3::integer[], $4::text[], $5::timestamptz[]) as e (call_id, seq, event, ts)`,
            [m.sourceId, events.map((e) => e.callId), events.map((e) => e.seq), events.map((e) => e.event), events.map((e) => new Date(e.ts))],
          ),
        ),
      ),
    );
  const bothSettled = () => Promise.all(SITES.map((s) => waitFor(`${s} settled`, () => settled(w, s), 60_000)));

  after(() => w?.close());
  before(async () => {
    w = await openWorld('retention', {
      layout: { 'sw-1': [{ site: 'dc1', db: 'idb_1' }, { site: 'dc2', db: 'idb_1' }] },
      // Calls may span days here: the straddling call's end must not be an absurd duration.
      etl: { maxCallSeconds: 10 * 86_400 },
      retention: RETENTION,
    });
    // Traffic older than factDays, between stagingDays and factDays, and recent.
    // Both members lose their sessions for a while six days ago: a data gap, and the
    // sessions before it are older than any gap the mart must go on computing.
    const gap = (site: string) => ({ memberId: `idb-1-${site}`, afterCalls: 40, calls: 20 });
    for (const [i, daysAgo] of [15, 6, 0.5].entries()) {
      const old = daysAgo === 6 ? { gaps: SITES.map(gap), malformed: { unknownEvent: 2 } } : {};
      await runSim(w.config, { calls: 120, rate: 5, seed: 11 + i, startTs: new Date(now - daysAgo * DAY), ...old }, silentLogger);
      await bothSettled(); // a load (and audit row) per run: an audit row to purge besides the newest
    }
    await writeEvents([
      { callId: straddling, seq: 1, event: 'created', ts: now - 4 * DAY },
      { callId: straddling, seq: 2, event: 'queued', ts: now - 4 * DAY + 2000 },
      { callId: straddling, seq: 3, event: 'abandoned', ts: now - 3600_000 },
    ]);
    await bothSettled();
    // Audit rows and discards are written as the ETL runs; make them old.
    for (const site of SITES) {
      await w.mart(site).query(`update ctl_load_audit set committed_at = now() - interval '5 days'`);
      await w.mart(site).query(`update ctl_discard set discarded_at = now() - interval '5 days'`);
    }
  });

  it(
    'has a retention schedule per site after startAll, with overlap policy skip',
    step(async () => {
      const ids: string[] = [];
      for await (const s of w.client.schedule.list()) ids.push(s.scheduleId);
      for (const site of SITES) {
        assert.ok(ids.includes(retentionScheduleId(site)), `${retentionScheduleId(site)} in ${ids.join(', ')}`);
        const d = await w.client.schedule.getHandle(retentionScheduleId(site)).describe();
        assert.equal(d.policies.overlap, 'SKIP');
        assert.equal(d.action.type === 'startWorkflow' && d.action.workflowType, 'retentionWorkflow');
        assert.deepEqual(d.action.type === 'startWorkflow' && d.action.args, [{ site }]);
      }
      const { stdout } = await promisify(execFile)(w.binary, [
        'schedule', 'list', '--address', w.config.temporal.address, '--namespace', w.config.temporal.namespace,
      ]);
      for (const site of SITES) assert.match(stdout, new RegExp(retentionScheduleId(site)));
    }),
  );

  it(
    'purges what is older than its cutoffs in both marts alike, keeps the rest as it was, and the marts stay at parity',
    step(async () => {
      const before = new Map<string, { facts: Map<string, { start: Date; row: string }>; spans: Map<string, string>; recentEvents: number; cursors: Map<string, string> }>();
      for (const site of SITES) {
        const mart = w.mart(site);
        before.set(site, {
          facts: await factsWithStart(mart),
          spans: await spans(mart, 'true'),
          recentEvents: await count(mart, `stg_call_event where event_ts >= now() - interval '3 days'`),
          cursors: await rowsOf(mart, 'select member_id as k, rows_total::text as v from ctl_cursor'),
        });
      }
      const results = await Promise.all(SITES.map((s) => runRetention(w, s)));
      for (const [i, site] of SITES.entries()) {
        const r = results[i]!;
        const mart = w.mart(site);
        const b = before.get(site)!;
        assert.equal(r.skippedAt, null);
        assert.equal(r.unfinished, false);
        stagingBefore = new Date(r.cutoffs.stagingBefore);
        factsBefore = new Date(r.cutoffs.factsBefore);
        assert.ok(r.purged.stg_call_event! > 0 && r.purged.interaction_fact! > 0 && r.purged.ag_queue_15min! > 0, JSON.stringify(r.purged));
        for (const table of ['stg_agent_event', 'stg_dss_session', 'ctl_data_gap', 'ctl_load_audit', 'ctl_discard', 'agent_state_fact']) {
          assert.ok(r.purged[table]! > 0, `${site}: ${table} in ${JSON.stringify(r.purged)}`);
        }

        // Staging: an old event is left only in a call that also has a recent one or is still in progress.
        const oldCalls = await mart.query<{ call_id: string; recent: boolean; in_progress: boolean }>(
          `select call_id::text, bool_or(event_ts >= $1) as recent, coalesce(bool_or(f.outcome = 'in_progress'), false) as in_progress
             from stg_call_event e left join interaction_fact f using (call_id)
            where call_id in (select call_id from stg_call_event where event_ts < $1) group by 1`,
          [stagingBefore],
        );
        assert.deepEqual(oldCalls.rows.filter((x) => !x.recent && !x.in_progress), [], site);
        assert.ok(oldCalls.rows.some((x) => x.call_id === straddling));
        assert.equal(await count(mart, 'stg_call_event where call_id = $1', [straddling]), 3, `${site}: the straddling call keeps all its events`);
        assert.equal(await count(mart, `stg_call_event where event_ts >= now() - interval '3 days'`), b.recentEvents);
        // Agents keep their last old event, from which the next span is computed.
        const agents = await mart.query<{ n: string }>(
          'select count(*) as n from stg_agent_event where event_ts < $1 group by source_id, agent_id having count(*) > 1', [stagingBefore]);
        assert.deepEqual(agents.rows, [], `${site}: at most one old event per agent`);
        assert.equal(await count(mart, 'ctl_discard where discarded_at < $1', [stagingBefore]), 0);
        assert.equal(
          await count(mart, `ctl_load_audit a where committed_at < $1 and exists (select 1 from ctl_load_audit b
                               where b.member_id = a.member_id and b.incarnation = a.incarnation and b.audit_id > a.audit_id)`, [stagingBefore]),
          0,
          `${site}: old audit rows go, each member incarnation's newest stays`,
        );
        assert.ok(await count(mart, 'ctl_load_audit') > 0);
        assert.deepEqual(await rowsOf(mart, 'select member_id as k, rows_total::text as v from ctl_cursor'), b.cursors, `${site}: cursors untouched`);

        // Facts: those within factDays exactly as they were, the older ones gone with their aggregates and spans.
        const kept = new Map([...b.facts].filter(([, f]) => f.start >= factsBefore).map(([k, f]) => [k, f.row]));
        assert.ok(kept.size > 0 && kept.size < b.facts.size, `${site}: ${kept.size} of ${b.facts.size} facts within factDays`);
        assert.deepEqual(await facts(mart), kept);
        assert.equal(await count(mart, 'ag_queue_15min where interval_start < $1', [factsBefore]), 0);
        assert.equal(await count(mart, 'agent_state_fact where end_ts < $1', [factsBefore]), 0);
        const spansKept = await spans(mart, `end_ts is null or end_ts >= '${factsBefore.toISOString()}'`);
        for (const [k, v] of spansKept) assert.equal(b.spans.get(k), v, `${site}: span ${k} unchanged`);
        assert.deepEqual(await queueAggregateDiff(mart, w.config.etl), []);
      }

      // The data gaps a refresh computes from the sessions left are the ones the purge kept.
      for (const site of SITES) {
        const kept = await gaps(w.mart(site));
        await w.mart(site).query(`insert into etl_dirty_source (source_id) select distinct source_id from stg_dss_session on conflict do nothing`);
        await waitFor(`${site} gaps refreshed`, () => settled(w, site));
        assert.deepEqual(await gaps(w.mart(site)), kept, `${site}: gaps recomputed from the remaining sessions`);
      }
      assert.deepEqual(await facts(w.mart('dc1')), await facts(w.mart('dc2')), 'both marts keep the same facts');
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date(), retention: RETENTION });
      assert.ok(report.match, JSON.stringify(report.mismatches.slice(0, 3)));
      assert.ok(report.counts.a.calls > 0);
    }),
  );

  it(
    'never rebuilds a fact from the late events of what it purged, nor lets a call lose part of its events',
    step(async () => {
      const purgedCall = (
        await w.mart('dc1').query<{ call_id: string }>('select call_id::text from ctl_purged_call p join interaction_fact using (call_id) limit 1')
      ).rows[0]!.call_id;
      const before = await Promise.all(SITES.map((s) => facts(w.mart(s), `call_id in ('${purgedCall}', '${straddling}')`)));
      // A late event for each: the purged call's fact stays as it was; the straddling call
      // is recomputed from all its events, so only what the late event says changes.
      await writeEvents([
        { callId: purgedCall, seq: 90, event: 'held', ts: now - 6 * DAY },
        { callId: straddling, seq: 4, event: 'held', ts: now - 1800_000 },
      ]);
      await bothSettled();
      for (const [i, site] of SITES.entries()) {
        const after = await facts(w.mart(site), `call_id in ('${purgedCall}', '${straddling}')`);
        assert.equal(after.get(purgedCall), before[i]!.get(purgedCall), `${site}: the purged call's fact is final`);
        const fact = (await w.mart(site).query('select start_ts, event_count from interaction_fact where call_id = $1', [straddling])).rows[0];
        assert.equal(fact.start_ts.getTime(), now - 4 * DAY, `${site}: the straddling call still starts with its first event`);
        assert.equal(fact.event_count, 4);
      }
    }),
  );

  it(
    'purges a large table in many batches while the ETL keeps landing traffic, and no cycle fails',
    step(async () => {
      const mart = w.mart('dc1');
      // 200,000 old staged events of 50,000 calls, loaded by nobody: only retention removes them.
      await mart.query(
        `insert into stg_call_event (call_id, seq, source_id, event, event_ts, media, direction, attrs, member_id, quality)
         select md5('bulk' || g / 4)::uuid, g % 4 + 1, 'sw-1', 'created', now() - interval '5 days' + g * interval '1 ms',
                'voice', 'inbound', '{}', 'bulk', 0
           from generate_series(0, 199999) g`,
      );
      // Real-time traffic runs until its calls end, minutes later: it stops once the purge is done.
      const stop = new AbortController();
      const traffic = runSim(w.config, { calls: 300, rate: 20, seed: 21 }, silentLogger, stop.signal);
      await waitFor('traffic landing', async () => (await count(mart, 'interaction_fact where start_ts > now() - interval \'1 minute\'')) > 0, 30_000);
      const landed = async () => Number((await mart.query('select sum(rows_total) as n from ctl_cursor')).rows[0].n);
      const atStart = await landed();
      const r = await runRetention(w, 'dc1');
      const atEnd = await landed();
      stop.abort();
      await traffic;
      assert.equal(r.skippedAt, null);
      assert.ok(r.purged.stg_call_event! >= 200_000, JSON.stringify(r));
      assert.ok(r.batches >= 40, `${r.batches} batches`);
      assert.ok(atEnd > atStart, `the ETL landed rows during the purge (${atStart} then ${atEnd})`);
      assert.equal(await count(mart, `stg_call_event where member_id = 'bulk'`), 0);
      // History holds steps, cutoffs and counts: no call's id, not even as where a batch goes on.
      const ids = [...new Set((await historyText(w.client, r.workflowId)).text.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g))];
      const calls = await mart.query<{ id: string }>(
        `select call_id::text as id from ctl_purged_call where call_id = any($1::uuid[])
         union select call_id::text from stg_call_event where call_id = any($1::uuid[])`,
        [ids],
      );
      assert.deepEqual(calls.rows.map((c) => c.id), [], 'call ids in the retention history');

      await bothSettled();
      const failures: string[] = [];
      for (const site of SITES) {
        for (const h of await etlHistories(w, site)) {
          for (const e of h.events ?? []) {
            if (e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes) failures.push(`${site}: event ${e.eventId}`);
          }
        }
      }
      assert.deepEqual(failures, []);
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date(), retention: RETENTION });
      assert.ok(report.match, JSON.stringify(report.mismatches.slice(0, 3)));
    }),
  );
});
