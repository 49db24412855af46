/**
 * Messages to the ETL and DR workflows at their worst moments: rejected updates and a
 * worker restart (replay), two updates with one request id at one boundary, malformed
 * confirmations while a failover waits for them, a reintroduction whose parity keeps
 * failing (its wait continues as new and says what differs), one whose ETL run ends while
 * it waits for the catch-up (started again), and who sent each command.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { DEV_LAYOUT, startWorker, stopWorker } from '../src/dev/world';
import { drStatusQuery, drUpdates, siteHealthSignal, type DrStatus } from '../src/workflows/dr-messages';
import {
  etlConfirmationSignal,
  etlStatusQuery,
  excludeMemberUpdate,
  excludeSiteUpdate,
  includeMemberUpdate,
  pauseUpdate,
  resumeUpdate,
} from '../src/workflows/etl-messages';
import { membersBehind } from '../src/etl/backlog';
import { DR_PROBES_WORKFLOW_ID, DR_WORKFLOW_ID, etlWorkflowId } from '../src/workflows/names';
import { openWorld, step, twinmartCli, waitFor, type TestWorld } from './helpers/world';
import { clientIdentity } from '../src/temporal/connection';
import { formatDrStatus } from '../src/cli/dr';

const run = promisify(execFile);

describe('workflow messages', { timeout: 600_000 }, () => {
  let w: TestWorld;
  const dr = (): Promise<DrStatus> => w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
  const etl = (site: string) => w.client.workflow.getHandle(etlWorkflowId(site));
  const steps = (s: DrStatus) => s.timeline.map((t) => t.step);
  /** The steps of dc2 noted at or after `since` (ISO). */
  const stepsSince = (s: DrStatus, since: string) => s.timeline.filter((t) => t.at >= since && t.site === 'dc2').map((t) => t.step);
  /** dc2 declared failed, then rebuilt, until its mart is seeded again; returns when the round began. */
  const rebuildDc2 = async (): Promise<string> => {
    const since = new Date().toISOString();
    const handle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
    await handle.executeUpdate(drUpdates.declareSiteFailure, { args: [{ site: 'dc2', reason: 'test' }] });
    await waitFor('degraded', async () => (await dr()).phase === 'degraded');
    await handle.executeUpdate(drUpdates.siteRebuilt, { args: [{ site: 'dc2' }] });
    await waitFor('dc2 seeded', async () => stepsSince(await dr(), since).includes('mart-seeded'), 120_000);
    return since;
  };

  after(async () => {
    await w?.close();
  });
  before(async () => {
    // A low history limit, so a reintroduction's waits reach it within the test.
    w = await openWorld('messages', { layout: DEV_LAYOUT, runHistoryEvents: 100 });
    await runSim(w.config, { calls: 200, rate: 20, seed: 31, startTs: new Date(Date.now() - 2 * 3600_000) }, silentLogger);
    await waitFor('dc1 to have run a cycle', async () => (await etl('dc1').query(etlStatusQuery)).cycle > 2);
  });

  it(
    'answers rejected updates without changing state, the same after a worker restart (replay)',
    step(async () => {
      await assert.rejects(etl('dc1').executeUpdate(excludeSiteUpdate, { args: [{ site: 'dc9' }] }), WorkflowUpdateFailedError);
      await assert.rejects(w.client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drUpdates.siteRebuilt, { args: [{ site: 'dc1' }] }), WorkflowUpdateFailedError);
      // Accepted without a request id: the workflow makes one up.
      const paused = await etl('dc1').executeUpdate(pauseUpdate, { args: [{}] });
      await etl('dc1').executeUpdate(resumeUpdate, { args: [{}] });
      const seen = async () => {
        const e = await etl('dc1').query(etlStatusQuery);
        const d = await dr();
        return { etlApplied: e.applied.map((a) => a.requestId), etlRejected: e.rejected, drRejected: d.rejected };
      };
      const before = await seen();
      assert.ok(before.etlApplied.includes(paused.requestId));
      // Every worker restarts: the next query replays the runs from their histories.
      for (const site of ['dc1', 'dc2']) await stopWorker(w.state, site, 'kill');
      for (const site of ['dc1', 'dc2']) startWorker(w.state, site);
      assert.deepEqual(await seen(), before, 'the status a replay rebuilds is the one before it');
    }),
  );

  it(
    'answers both of two updates with the same request id at one boundary',
    step(async () => {
      const requestId = `twice-${randomUUID()}`;
      const both = await Promise.race([
        Promise.all([
          etl('dc1').executeUpdate(pauseUpdate, { args: [{ requestId }] }),
          etl('dc1').executeUpdate(pauseUpdate, { args: [{ requestId }] }),
        ]),
        sleep(30_000).then(() => assert.fail('an update with a repeated request id was not answered within 30 s')),
      ]);
      assert.deepEqual(both.map((c) => [c.requestId, c.paused]), [[requestId, true], [requestId, true]]);
      await etl('dc1').executeUpdate(resumeUpdate, { args: [{}] });
      const s = await etl('dc1').query(etlStatusQuery);
      assert.equal(s.paused, false);
    }),
  );

  it(
    'excludes and includes one member (an IDB under maintenance), confirmed at a cycle boundary',
    step(async () => {
      const member = 'idb-voice-1-dc2';
      const handle = etl('dc1');
      await assert.rejects(handle.executeUpdate(excludeMemberUpdate, { args: [{ member: 'idb-nowhere' }] }), (e: unknown) =>
        e instanceof WorkflowUpdateFailedError && /unknown member "idb-nowhere" \(members: .*idb-voice-1-dc2/.test(String((e.cause as Error).message)),
      );
      const rejected = (await handle.query(etlStatusQuery)).rejected.length;
      await handle.signal('excludeMember', { site: 'dc2' });
      await waitFor('the malformed signal recorded', async () => {
        const s = await handle.query(etlStatusQuery);
        return s.rejected.length === rejected + 1 && /member: /.test(s.rejected.at(-1)!.reason);
      });
      const confirmed = await handle.executeUpdate(excludeMemberUpdate, { args: [{ member }] });
      assert.deepEqual([confirmed.command, confirmed.target, confirmed.excludedMembers], ['excludeMember', member, [member]]);
      assert.equal(confirmed.members[member]!.state, 'excluded');
      assert.equal(confirmed.members['idb-voice-1-dc1']!.state, 'ok', 'its partner goes on');
      const extractedAt = async () =>
        (await membersBehind(w.config, w.pools, 'dc1')).find((m) => m.member.id === member)!.cursor!.last_extract_at?.getTime();
      const frozen = await extractedAt();
      await runSim(w.config, { calls: 20, rate: 200, seed: 32, startTs: new Date(Date.now() - 1800_000) }, silentLogger);
      const cycle = (await handle.query(etlStatusQuery)).cycle;
      const s = await waitFor('cycles go on', async () => {
        const x = await handle.query(etlStatusQuery);
        return x.cycle > cycle + 2 && x;
      });
      assert.deepEqual([s.excludedMembers, s.members[member]!.state], [[member], 'excluded']);
      assert.equal(await extractedAt(), frozen, 'no load from the excluded member');
      const back = await handle.executeUpdate(includeMemberUpdate, { args: [{ member }] });
      assert.deepEqual(back.excludedMembers, []);
      await waitFor('the member loaded again', async () => ((await extractedAt()) ?? 0) > (frozen ?? 0));
    }),
  );

  it(
    'shows what differs while parity keeps failing, and its wait continues as new',
    step(async () => {
      await rebuildDc2();
      // A call only the survivor holds, in a closed interval: parity can never pass.
      const callId = randomUUID();
      const startTs = new Date(Math.floor((Date.now() - 3 * 3600_000) / 900_000) * 900_000 + 60_000);
      await w.mart('dc1').query(
        `insert into interaction_fact (call_id, source_id, media, direction, start_ts, outcome, event_count)
         values ($1, 'sw-voice-1', 'voice', 'inbound', $2, 'in_progress', 1)`,
        [callId, startTs],
      );
      const seeded = await dr();
      const failing = await waitFor('parity failing a few times, the wait continued as new', async () => {
        const s = await dr();
        return s.phase === 'reintroducing' && (s.reintroduction?.parityFailures ?? 0) >= 3 && s.continuedAsNew > seeded.continuedAsNew && s;
      }, 180_000);
      assert.ok(steps(failing).includes('inclusions-confirmed'));
      const interval = new Date(Math.floor(startTs.getTime() / 900_000) * 900_000).toISOString();
      const mismatch = failing.reintroduction!.mismatches!.find((m) => m.kind === 'interaction_fact');
      assert.deepEqual(mismatch, { kind: 'interaction_fact', interval, rows: { dc2: mismatch!.rows.dc2, dc1: mismatch!.rows.dc2 + 1 }, onlyIn: { dc2: 0, dc1: 1 }, changed: 0 });
      assert.ok(!JSON.stringify(failing).includes(callId), 'the status names intervals and counts, never rows');
      await w.mart('dc1').query('delete from interaction_fact where call_id = $1', [callId]);
      const normal = await waitFor('normal once parity passes', async () => {
        const s = await dr();
        return s.phase === 'normal' && s;
      }, 180_000);
      assert.equal(normal.sites.dc2, 'active');
    }),
  );

  it(
    'starts the ETL of a site being reintroduced again when its run ends while the reintroduction waits for it to catch up',
    step(async () => {
      const since = await rebuildDc2();
      // dc2's worker frozen, the new ETL run of dc2 can read nothing; it is ended while the
      // reintroduction waits for its catch-up, as a returning cluster's history once did.
      const worker = w.state.workers.dc2!;
      process.kill(worker, 'SIGSTOP');
      try {
        const started = await waitFor('the ETL of dc2 started', async () => {
          const s = await dr();
          return stepsSince(s, since).includes('etl-started') && s;
        }, 60_000);
        assert.equal(started.phase, 'reintroducing');
        await etl('dc2').terminate('ended under the reintroduction (test)');
      } finally {
        process.kill(worker, 'SIGCONT');
      }
      await waitFor('the ETL of dc2 started again', async () => stepsSince(await dr(), since).includes('etl-restarted'), 120_000);
      const normal = await waitFor('normal', async () => {
        const s = await dr();
        return s.phase === 'normal' && s;
      }, 180_000);
      assert.equal(normal.sites.dc2, 'active');
      assert.equal((await etl('dc2').describe()).status.name, 'RUNNING');
    }),
  );

  it(
    "keeps the health probes out of the DR workflow's history: they run in a workflow of their own, which reports changes only",
    step(async () => {
      const handle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
      type Events = Awaited<ReturnType<typeof handle.fetchHistory>>['events'];
      const since = Date.now();
      const recent = (events: Events) => (events ?? []).filter((e) => tsToMs(e.eventTime) >= since);
      const probeSites = (events: Events) =>
        recent(events).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'probeSite').length;
      await sleep(10_000); // five probe rounds at dr.probeSeconds 2
      const { events } = await handle.fetchHistory();
      assert.equal(probeSites(events), 0, 'no probe in the DR history');
      assert.equal(recent(events).filter((e) => e.timerStartedEventAttributes).length, 0, 'no probe timer either');
      // The probes' runs continue as new every few rounds here (runHistoryEvents 100): count over all of them.
      const runIds = new Set([(await w.client.workflow.getHandle(DR_PROBES_WORKFLOW_ID).describe()).runId]);
      for await (const r of w.client.workflow.list({ query: `WorkflowId = "${DR_PROBES_WORKFLOW_ID}"` })) runIds.add(r.runId);
      let probed = 0;
      for (const runId of runIds) probed += probeSites((await w.client.workflow.getHandle(DR_PROBES_WORKFLOW_ID, runId).fetchHistory()).events);
      assert.ok(probed >= 2 * 3, `the probe workflow probed both sites (${probed} probes in 10 s)`);

      // Its signal is checked like any: a malformed one is recorded, not obeyed.
      const before = (await dr()).rejected.length;
      await handle.signal(siteHealthSignal, { site: 'dc1', healthy: 'no' });
      const s = await waitFor('the malformed report recorded', async () => {
        const st = await dr();
        return st.rejected.length > before && st;
      }, 30_000);
      assert.equal(s.rejected.at(-1)!.command, 'siteHealth');
      assert.deepEqual(s.suspected, {}, 'nothing suspected from it');
    }),
  );

  it(
    'records malformed confirmations during a failover as rejected and goes on waiting',
    step(async () => {
      // dc1's ETL is gone, so the failover of dc2 waits for a confirmation that cannot come.
      await etl('dc1').terminate('test: no ETL to confirm');
      const handle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
      await handle.executeUpdate(drUpdates.declareSiteFailure, { args: [{ site: 'dc2', reason: 'test' }] });
      await waitFor('a confirmation pending', async () => (await dr()).pending.some((p) => p.kind === 'etl-confirmation'));
      const before = await dr();
      const bad: unknown[] = [undefined, {}, { requestId: 7, excludedSites: 'dc2' }];
      for (const payload of bad) await handle.signal(etlConfirmationSignal, payload as never);
      const after = await waitFor('the malformed confirmations recorded', async () => {
        const s = await dr();
        return s.rejected.length >= before.rejected.length + bad.length && s;
      }, 30_000);
      assert.ok(after.rejected.slice(-3).every((r) => r.command === 'etlConfirmation'), JSON.stringify(after.rejected));
      assert.deepEqual(after.pending.map((p) => p.requestId), before.pending.map((p) => p.requestId), 'still waiting for the same confirmations');
      assert.equal(after.phase, 'failing-over');
    }),
  );

  it(
    'records who sent each command: the client identity Temporal keeps with every update and signal',
    step(async () => {
      // Still failing over (the previous test): declared by this test's twinmart client, by update.
      const temporal = (...args: string[]) =>
        run(w.binary, [...args, '--address', w.config.temporal.address, '--namespace', w.config.temporal.namespace]);
      await temporal('workflow', 'signal', '--workflow-id', DR_WORKFLOW_ID, '--name', 'confirmReporting',
        '--input', '{"site":"dc9"}', '--identity', 'ops-alice@dc1-console');
      await temporal('workflow', 'signal', '--workflow-id', DR_WORKFLOW_ID, '--name', 'retry', '--input', '{}', '--identity', 'ops-bob@dc2-console');
      await twinmartCli(w, ['dr', 'retry']);
      const s = await waitFor('every sender looked up', async () => {
        const x = await dr();
        return [...x.timeline, ...x.rejected].every((e) => !e.sender) && x.timeline.filter((t) => t.step === 'command:retry').length === 2 && x;
      }, 30_000);
      const declared = s.timeline.find((t) => t.step === 'command:declareSiteFailure' && t.site === 'dc2')!;
      assert.equal(declared.by, clientIdentity(), 'the update names its client');
      assert.deepEqual(s.timeline.filter((t) => t.step === 'command:retry').map((t) => t.by), ['ops-bob@dc2-console', clientIdentity()],
        'a signal names its sender, in the order they came');
      const refused = s.rejected.find((r) => r.command === 'confirmReporting')!;
      assert.equal(refused.by, 'ops-alice@dc1-console', 'a refused signal names its sender too');
      assert.match(formatDrStatus(s), /command:retry by ops-bob@dc2-console/);
    }),
  );
});
