/**
 * The ETL on a real two-site world: simulated traffic with a collector gap, late commits
 * and malformed rows lands exactly once in both marts, with the right facts; a long
 * transaction's rows arrive when it commits; commands are validated; history holds ids
 * and counts only.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type WorkflowUpdateHandle } from '@temporalio/client';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { compareMarts } from '../src/parity';
import { etlStatusQuery, excludeSiteUpdate, includeSiteUpdate, type EtlConfirmation, type EtlStatus } from '../src/workflows/etl-messages';
import { CONTROL_QUEUE, etlWorkflowId } from '../src/workflows/names';
import { DEV_LAYOUT, startWorker, stopWorker } from '../src/dev/world';
import { etlHistories, openWorld, settled, step, taskTimeoutSeconds, waitFor, type TestWorld } from './helpers/world';
import { diffFacts, expectedFacts, martFacts, martKeys, memberKeys, queueAggregateDiff, unionCallEvents, unusableRows } from './helpers/truth';

/**
 * History as text with every payload's bytes decoded, so a search sees what was stored.
 * Walked by hand: protobuf messages' own toJSON would turn the bytes into base64.
 */
function historyText(history: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (parts.push(k), walk(x));
    else if (v !== null && v !== undefined) parts.push(String(v));
  };
  walk(history);
  return parts.join('\n');
}

const status = (w: TestWorld, site: string): Promise<EtlStatus> =>
  w.client.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery);

/** Every key of the IDBs' union is staged in both marts, and nothing else. */
async function marksComplete(w: TestWorld, expectedKeys: Set<string>): Promise<boolean> {
  for (const site of ['dc1', 'dc2']) {
    const keys = await martKeys(w.mart(site));
    if (keys.size !== expectedKeys.size) return false;
  }
  return true;
}

describe('ETL correctness on a real two-site world', { timeout: 300_000 }, () => {
  let w: TestWorld;
  let malformedKeys: Set<string>;
  // Far enough back that a call lasting 40 days (absurd) still ends in the past.
  const simStart = new Date(Date.now() - 45 * 86_400_000);

  after(() => w?.close());
  before(async () => {
    w = await openWorld('etl-correctness', {
      layout: DEV_LAYOUT,
      // Short runs, so they continue as new many times during the test. The server's own
      // suggestion stays at its default (thousands of events): the bound is twinmart's.
      runHistoryEvents: 150,
    });
    const result = await runSim(
      w.config,
      {
        calls: 600,
        rate: 2,
        seed: 7,
        startTs: simStart,
        gaps: [{ memberId: 'idb-voice-1-dc1', afterCalls: 100, calls: 60 }],
        lateCommits: [{ memberId: 'idb-voice-2a-dc1', afterCalls: 200, calls: 30, holdMs: 1500 }],
        malformed: { unknownEvent: 3, outOfOrder: 3, absurdDuration: 3 },
      },
      silentLogger,
    );
    malformedKeys = new Set(result.malformed.map((m) => `${m.callId}/${m.seq}`));
  });

  it(
    'lands every (call_id, seq) of any member exactly once in each mart, with the right facts, and the marts agree',
    step(async () => {
      const union = await unionCallEvents(w.config, w.pools);
      const unusable = unusableRows(union.values());
      // Rows refused at load never reach staging; the others are staged and maybe discarded later.
      const stageable = new Set([...union.keys()].filter((k) => !['unknown event', 'in the future'].includes(unusable.get(k)!)));
      await waitFor('both marts to stage every event', () => marksComplete(w, stageable));
      for (const site of ['dc1', 'dc2']) await waitFor(`${site} to settle`, () => settled(w, site));
      const expected = expectedFacts(union.values(), new Set(unusable.keys()));
      for (const site of ['dc1', 'dc2']) {
        const keys = await martKeys(w.mart(site));
        assert.deepEqual([...keys.keys()].sort(), [...stageable].sort(), `${site}: staged keys = union of members`);
        assert.ok([...keys.values()].every((n) => n === 1), `${site}: every key once`);
        assert.deepEqual(diffFacts(expected, await martFacts(w.mart(site))), [], `${site}: facts match the IDBs`);
        assert.deepEqual(
          await queueAggregateDiff(w.mart(site), w.config.etl),
          [],
          `${site}: ag_queue_15min equals the aggregate of interaction_fact`,
        );
      }
      const report = await compareMarts(
        { name: 'dc1', pool: w.mart('dc1') },
        { name: 'dc2', pool: w.mart('dc2') },
        { closedBefore: new Date() },
      );
      assert.equal(report.match, true, JSON.stringify(report.mismatches.slice(0, 3)));
      assert.equal(report.counts.a.calls, expected.size, 'parity compared every call');
    }),
  );

  it(
    'loads members that are behind one task each, then runs every caught-up cycle as one task',
    step(async () => {
      for (const site of ['dc1', 'dc2']) {
        const activities = (await etlHistories(w, site)).flatMap((h) =>
          (h.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []),
        );
        // The first cycle finds every member never loaded, so it loads them one task each.
        const firstCycle = activities.slice(1, activities.indexOf('transform'));
        assert.equal(activities[0], 'prepareSite', `${site}: ${activities.slice(0, 3).join(', ')}`);
        assert.deepEqual(firstCycle, w.config.members.map(() => 'extractMember'), `${site}: first cycle`);
        assert.ok(activities.includes('extractAndTransform'), `${site}: caught-up cycles as one task`);
      }
    }),
  );

  it(
    "fills a member's collector gap from its partner",
    step(async () => {
      const gapped = await memberKeys(w.config, w.pools, 'idb-voice-1-dc1');
      const partner = await memberKeys(w.config, w.pools, 'idb-voice-1-dc2');
      const missing = [...partner].filter((k) => !gapped.has(k));
      assert.ok(missing.length > 50, `the gap removed events from the member (${missing.length})`);
      for (const site of ['dc1', 'dc2']) {
        const keys = await martKeys(w.mart(site));
        assert.deepEqual(missing.filter((k) => !keys.has(k)), [], `${site} has the gap's events`);
      }
      const { rows } = await w.mart('dc1').query(
        "select conn_end, conn_type from stg_dss_session where member_id = 'idb-voice-1-dc1' order by conn_start",
      );
      assert.ok(rows.length >= 2 && rows.at(-1)!.conn_type === 2, 'the reconnect session is staged');
    }),
  );

  it(
    'records malformed rows in ctl_discard with a reason while the rest lands and cycles go on',
    step(async () => {
      const before = (await status(w, 'dc1')).cycle;
      for (const site of ['dc1', 'dc2']) {
        const { rows } = await w.mart(site).query<{ natural_key: string; reason: string }>(
          "select natural_key, reason from ctl_discard where table_name = 'call_event'",
        );
        const found = new Map(rows.map((r) => [r.natural_key, r.reason]));
        assert.deepEqual([...found.keys()].sort(), [...malformedKeys].sort(), `${site}: discards are the malformed rows`);
        assert.ok(rows.some((r) => /unknown event/.test(r.reason)));
        assert.ok(rows.some((r) => /out of order/.test(r.reason)));
        assert.ok(rows.some((r) => /absurd duration/.test(r.reason)));
      }
      await waitFor('more cycles', async () => (await status(w, 'dc1')).cycle > before + 2);
    }),
  );

  it(
    'picks up a transaction held open across several cycles when it commits with old event times',
    step(async () => {
      const idb = w.db('dc1', 'idb_voice_1');
      const client = await idb.connect();
      const callId = '11111111-2222-4333-8444-555555555555';
      try {
        await client.query('begin');
        await client.query(
          `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction, queue)
           values ($1, 1, 'sw-voice-1', 'created', now() - interval '2 hours', 'voice', 'inbound', null),
                  ($1, 2, 'sw-voice-1', 'queued', now() - interval '2 hours' + interval '1 second', 'voice', 'inbound', 'sales'),
                  ($1, 3, 'sw-voice-1', 'abandoned', now() - interval '2 hours' + interval '30 seconds', 'voice', 'inbound', 'sales')`,
          [callId],
        );
        // Later transactions commit while this one stays open across several cycles.
        const cycle = (await status(w, 'dc1')).cycle;
        await w.db('dc1', 'idb_voice_2a').query(
          `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
           values ('22222222-2222-4333-8444-555555555555', 1, 'sw-voice-2', 'created', now(), 'voice', 'inbound')`,
        );
        await waitFor('three cycles with the transaction open', async () => (await status(w, 'dc1')).cycle >= cycle + 3);
        const { rows } = await w.mart('dc1').query('select 1 from stg_call_event where call_id = $1', [callId]);
        assert.equal(rows.length, 0, 'uncommitted rows are not visible');
        await client.query('commit');
      } finally {
        client.release();
      }
      for (const site of ['dc1', 'dc2']) {
        const fact = await waitFor(`${site} to load the late call`, async () => {
          const { rows } = await w.mart(site).query('select outcome, event_count from interaction_fact where call_id = $1', [callId]);
          return rows[0];
        });
        assert.deepEqual(fact, { outcome: 'abandoned', event_count: 3 });
      }
    }),
  );

  it(
    "keeps the same member's version of an event in both marts: the session-covered one, then the first-listed",
    step(async () => {
      // sw-voice-1 lists idb-voice-1-dc1 first, idb-voice-1-dc2 second. Each window is a
      // day in 2001 where only the named members had a session; the members disagree on
      // the queue of the window's call.
      const members = [
        { id: 'idb-voice-1-dc1', idb: w.db('dc1', 'idb_voice_1'), queue: 'q-first' },
        { id: 'idb-voice-1-dc2', idb: w.db('dc2', 'idb_voice_1'), queue: 'q-second' },
      ];
      const windows = [
        { day: '2001-01-01', covered: [0], kept: 0 },
        { day: '2001-01-02', covered: [1], kept: 1 },
        { day: '2001-01-03', covered: [0, 1], kept: 0 },
        { day: '2001-01-04', covered: [], kept: 0 },
      ].map((x, i) => ({ ...x, callId: `33333333-2222-4333-8444-55555555555${i}` }));
      for (const [i, m] of members.entries()) {
        for (const x of windows) {
          const client = await m.idb.connect();
          try {
            await client.query('begin');
            if (x.covered.includes(i)) {
              await client.query(
                `insert into idb.dss_session (collector, source_id, conn_start, conn_end, conn_type)
                 values ('test-collector', 'sw-voice-1', $1::date + interval '10 hours', $1::date + interval '11 hours', 1)`,
                [x.day],
              );
            }
            await client.query(
              `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction, queue)
               values ($1, 1, 'sw-voice-1', 'created', $2::date + interval '10 hours 1 minute', 'voice', 'inbound', $3),
                      ($1, 2, 'sw-voice-1', 'abandoned', $2::date + interval '10 hours 2 minutes', 'voice', 'inbound', $3)`,
              [x.callId, x.day, m.queue],
            );
            await client.query('commit');
          } finally {
            client.release();
          }
        }
      }
      for (const site of ['dc1', 'dc2']) {
        await waitFor(`${site} to load the calls`, async () => {
          const { rows } = await w.mart(site).query('select count(*)::int as n from interaction_fact where call_id = any($1::uuid[])', [
            windows.map((x) => x.callId),
          ]);
          return rows[0].n === windows.length;
        });
        // Settled: every member extracted up to now, so both copies were merged.
        await waitFor(`${site} to settle`, () => settled(w, site));
        for (const x of windows) {
          const { rows } = await w.mart(site).query<{ member_id: string; queue: string }>(
            'select member_id, queue from stg_call_event where call_id = $1 order by seq',
            [x.callId],
          );
          const want = members[x.kept]!;
          assert.deepEqual(
            rows,
            [1, 2].map(() => ({ member_id: want.id, queue: want.queue })),
            `${site}, ${x.day} (sessions of ${x.covered.map((i) => members[i]!.id).join(', ') || 'none'})`,
          );
        }
      }
      const report = await compareMarts(
        { name: 'dc1', pool: w.mart('dc1') },
        { name: 'dc2', pool: w.mart('dc2') },
        { closedBefore: new Date() },
      );
      assert.equal(report.match, true, JSON.stringify(report.mismatches.slice(0, 3)));
    }),
  );

  it(
    'ends a call whose end never arrived as incomplete, out of the answered counts, and mends it when the end arrives',
    step(async () => {
      // Answered two days ago (more than etl.maxCallSeconds before the newest events
      // loaded), never released: its end was at a site that failed.
      const callId = '44444444-2222-4333-8444-555555555555';
      const idb = w.db('dc1', 'idb_voice_2a');
      const started = new Date(Date.now() - 2 * 86_400_000);
      await idb.query(
        `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction, queue, agent_id)
         values ($1, 1, 'sw-voice-2', 'created', $2, 'voice', 'inbound', null, null),
                ($1, 2, 'sw-voice-2', 'queued', $2::timestamptz + interval '1 second', 'voice', 'inbound', 'q-lost', null),
                ($1, 3, 'sw-voice-2', 'established', $2::timestamptz + interval '5 seconds', 'voice', 'inbound', 'q-lost', 'a-1')`,
        [callId, started],
      );
      const fact = (site: string) =>
        w.mart(site).query(
          `select f.outcome, f.end_ts, f.talk_s, q.offered, q.answered, q.total_wait_s::float8 as wait
             from interaction_fact f join ag_queue_15min q
               on q.queue = f.queue and q.interval_start = date_bin('15 minutes', f.start_ts, timestamptz '2000-01-01 00:00:00+00')
            where f.call_id = $1`,
          [callId],
        );
      for (const site of ['dc1', 'dc2']) {
        const row = await waitFor(`${site} to close the call`, async () => (await fact(site)).rows.find((r) => r.outcome !== 'in_progress'));
        assert.deepEqual(row, { outcome: 'incomplete', end_ts: null, talk_s: null, offered: 1, answered: 0, wait: 0 }, site);
      }
      await idb.query(
        `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction, queue, agent_id)
         values ($1, 4, 'sw-voice-2', 'released', $2::timestamptz + interval '65 seconds', 'voice', 'inbound', 'q-lost', 'a-1')`,
        [callId, started],
      );
      for (const site of ['dc1', 'dc2']) {
        const row = await waitFor(`${site} to mend the call`, async () => (await fact(site)).rows.find((r) => r.outcome !== 'incomplete'));
        assert.equal(row.outcome, 'answered', site);
        assert.equal(Number(row.talk_s), 60, site);
        assert.deepEqual([row.offered, row.answered, row.wait], [1, 1, 4], site);
        assert.deepEqual(await queueAggregateDiff(w.mart(site), w.config.etl), [], site);
      }
    }),
  );

  it(
    'refuses malformed commands clearly and keeps running; applies and confirms valid ones at a cycle boundary',
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      await handle.signal('excludeSite', { site: 42 });
      await handle.signal('excludeSite', {});
      await handle.signal('excludeSite', { site: 'dc1' });
      await handle.signal('pause', { bogus: true });
      await assert.rejects(
        handle.executeUpdate(excludeSiteUpdate, { args: [{ site: 'nowhere' }] }),
        (e: unknown) => e instanceof WorkflowUpdateFailedError && /unknown site "nowhere"/.test(String((e.cause as Error)?.message)),
      );
      const s = await waitFor('rejections recorded', async () => {
        const st = await status(w, 'dc1');
        return st.rejected.length >= 4 && st;
      });
      // The refused update got its reason as the answer; validators change no state (replay).
      assert.equal(s.rejected.length, 4, 'only the signals are recorded');
      assert.match(s.rejected[0]!.reason, /site: /);
      assert.match(s.rejected[2]!.reason, /cannot exclude its own site/);
      assert.match(s.rejected[3]!.reason, /bogus/);
      assert.deepEqual(s.excludedSites, [], 'nothing changed');
      const cycle = s.cycle;
      await waitFor('cycles continue', async () => (await status(w, 'dc1')).cycle > cycle + 1);

      const confirmation = await handle.executeUpdate(excludeSiteUpdate, { args: [{ site: 'dc2', requestId: 'r-1' }] });
      assert.equal(confirmation.requestId, 'r-1');
      assert.deepEqual(confirmation.excludedSites, ['dc2']);
      assert.equal(confirmation.members['idb-voice-1-dc2']!.state, 'excluded');
      assert.equal(confirmation.members['idb-chat-1a-dc2']!.state, 'excluded');
      assert.notEqual(confirmation.members['idb-voice-1-dc1']!.state, 'excluded');
      // While excluded, dc2's IDBs are not read by dc1's ETL.
      const cursor = async () =>
        (await w.mart('dc1').query("select last_extract_at from ctl_cursor where member_id = 'idb-chat-1a-dc2'")).rows[0]
          .last_extract_at as Date;
      const t0 = await cursor();
      await sleep(2000);
      assert.equal((await cursor()).getTime(), t0.getTime(), 'excluded member not extracted');
      const back = await handle.executeUpdate(includeSiteUpdate, { args: [{ site: 'dc2' }] });
      assert.deepEqual(back.excludedSites, []);
      await waitFor('included member extracted again', async () => (await cursor()).getTime() > t0.getTime());
    }),
  );

  it(
    'refuses an update naming an unknown site that was accepted before the run knew its sites, and keeps continuing as new, with the configured task timeout',
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc2'));
      // A fresh run whose prepareSite waits for dc2's worker: until it answers, the
      // validator cannot know the sites, so the update is accepted.
      await stopWorker(w.state, 'dc2', 'graceful');
      let update: WorkflowUpdateHandle<EtlConfirmation>;
      let started: string;
      try {
        await handle.terminate('test: a fresh run');
        // Started as by `temporal workflow start` without --task-timeout: the server's default.
        started = (await w.client.workflow.start('siteEtlWorkflow', { workflowId: etlWorkflowId('dc2'), taskQueue: CONTROL_QUEUE, args: [{ site: 'dc2' }] }))
          .firstExecutionRunId;
        update = await handle.startUpdate(excludeSiteUpdate, { args: [{ site: 'nowhere' }], waitForStage: WorkflowUpdateStage.ACCEPTED });
      } finally {
        startWorker(w.state, 'dc2');
      }
      await assert.rejects(
        update.result(),
        (e: unknown) => e instanceof WorkflowUpdateFailedError && /unknown site "nowhere"/.test(String((e.cause as Error)?.message)),
      );
      // The update no longer holds the run open: it continues as new again.
      const { runId } = await status(w, 'dc2');
      await waitFor('a continue-as-new after the refusal', async () => (await status(w, 'dc2')).runId !== runId);
      assert.deepEqual((await status(w, 'dc2')).excludedSites, []);
      assert.equal(await taskTimeoutSeconds(w, etlWorkflowId('dc2'), started), 10, 'the run started without a task timeout');
      assert.equal(await taskTimeoutSeconds(w, etlWorkflowId('dc2')), 3, 'its continuation has the configured one');
    }),
  );

  it(
    'continues as new once its run holds temporal.runHistoryEvents events, carrying its state, cursors and counters',
    step(async () => {
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const before = await status(w, 'dc1');
      assert.equal(await taskTimeoutSeconds(w, etlWorkflowId('dc1')), 3, 'started with the configured workflow task timeout');
      await waitFor('two more continue-as-new', async () => (await status(w, 'dc1')).continuedAsNew >= before.continuedAsNew + 2);
      const after = await status(w, 'dc1');
      assert.notEqual(after.runId, before.runId);
      assert.ok(after.cycle > before.cycle, 'cycle count carried over');
      assert.ok(after.totals.callRows >= before.totals.callRows && before.totals.callRows > 0, 'counters carried over');
      assert.equal(after.members['idb-voice-1-dc1']!.lastOkAt !== null, true);
      // Every closed run ended at the limit, give or take the cycle that crossed it.
      for await (const r of w.client.workflow.list({ query: `WorkflowId = "${etlWorkflowId('dc1')}" AND ExecutionStatus = "ContinuedAsNew"` })) {
        assert.ok(r.historyLength >= 150 && r.historyLength < 300, `a run of ${r.historyLength} events`);
      }
      assert.ok((await handle.describe()).historyLength < 300, 'the current run is bounded too');
    }),
  );

  it(
    'keeps rows and credentials out of workflow history',
    step(async () => {
      const union = await unionCallEvents(w.config, w.pools);
      const callIds = [...new Set([...union.values()].map((r) => r.call_id))];
      for (const site of ['dc1', 'dc2']) {
        const histories = await etlHistories(w, site);
        const texts = histories.map(historyText);
        const events = histories.reduce((a, h) => a + (h.events?.length ?? 0), 0);
        const text = texts.join('\n');
        assert.ok(texts.length > 2 && events > 500, `many cycles of history (${texts.length} runs, ${events} events)`);
        // Control: decoded payloads are searchable (ids and counts are meant to be there).
        assert.ok(text.includes('"memberId":"idb-voice-1-dc1"'), 'payloads were decoded');
        assert.doesNotMatch(text, /postgres(ql)?:\/\//, 'no connection URLs');
        assert.doesNotMatch(text, /127\.0\.0\.1:\d+\/idb_/, 'no database addresses');
        const leaked = callIds.filter((id) => text.includes(id));
        assert.deepEqual(leaked, [], 'no call ids (rows) in history');
        assert.ok(!text.includes('"ani"'), 'no row columns');
      }
    }),
  );
});
