/**
 * The DR procedure with real failures: a site's PostgreSQL and worker stopped while
 * traffic runs, the failover declared with the `temporal` CLI, the surviving mart kept
 * complete for every set it has a member of, reintroduction of a wiped and of an intact
 * site, a worker kill and a Temporal server restart in the middle of both procedures.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { logTail } from '../src/dev/log-tail';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { compareMarts } from '../src/parity';
import { failSite, restoreSite, saveWorld, startTemporal, startWorker, stopTemporal, stopWorker } from '../src/dev/world';
import { drStatusQuery, drUpdates, type DrPhase, type DrStatus, type SiteHealth } from '../src/workflows/dr-messages';
import { temporal as proto } from '@temporalio/proto';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../src/workflows/names';
import { readReportingRole } from '../src/mart/control';
import { formatDrStatus, formatUnread } from '../src/cli/dr';
import { DEV_LAYOUT } from '../src/dev/world';
import { openWorld, step, taskTimeoutSeconds, twinmartCli, waitFor, type TestWorld } from './helpers/world';
import { changesNothing } from './helpers/drill';
import { drillUpdate } from '../src/workflows/drill';
import { martKeys, queueAggregateDiff, unionCallEvents } from './helpers/truth';

const run = promisify(execFile);



describe('disaster recovery with real site failures', { timeout: 600_000 }, () => {
  let w: TestWorld;
  const traffic = new AbortController();
  let sim: Promise<unknown>;

  const dr = (): Promise<DrStatus> => w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
  const phase = (p: DrPhase, timeoutMs = 120_000) =>
    waitFor(`DR phase ${p}`, async () => {
      const s = await dr();
      return s.phase === p && s;
    }, timeoutMs);
  /** The operator's tool: the temporal CLI against the world's server. */
  const temporal = (...args: string[]) =>
    run(w.binary, [...args, '--address', w.config.temporal.address, '--namespace', 'default']);
  /**
   * A wait that timed out says what the DR workflow's activities last reported (their
   * heartbeats carry the reporting service's last answer) and what the processes logged.
   */
  const explained = async <T>(wait: Promise<T>, logs: string[]): Promise<T> => {
    try {
      return await wait;
    } catch (e) {
      const { raw } = await w.client.workflow.getHandle(DR_WORKFLOW_ID).describe();
      const pending = (raw.pendingActivities ?? []).map((a) => ({
        activity: a.activityType?.name,
        attempt: a.attempt,
        lastFailure: a.lastFailure?.message,
        heartbeat: a.heartbeatDetails ? w.client.options.loadedDataConverter.payloadConverter.fromPayload(a.heartbeatDetails.payloads![0]!) : null,
      }));
      const tails = await Promise.all(logs.map((l) => logTail(join(w.state.root, 'logs', `${l}.log`), 15)));
      (e as Error).message += `\npending activities: ${JSON.stringify(pending)}\n${tails.join('\n')}`;
      throw e;
    }
  };
  /** A refusal keeps its type and says why in its message, so a failing step shows the workflow's reason. */
  const update = (name: keyof typeof drUpdates, payload: unknown) =>
    w.client.workflow
      .getHandle(DR_WORKFLOW_ID)
      .executeUpdate(drUpdates[name], { args: [payload] })
      .catch((e: unknown) => {
        if (e instanceof WorkflowUpdateFailedError) e.message = `${name} refused: ${(e.cause as Error | undefined)?.message}`;
        throw e;
      });
  const restartTemporal = async () => {
    await stopTemporal(w.state);
    await startTemporal(w.state, w.binary, silentLogger);
    saveWorld(w.state);
  };
  /** GET on a site's reporting service. */
  const reportingGet = async (site: string, path: string) => {
    const res = await fetch(`http://127.0.0.1:${w.config.sites[site]!.reportingPort}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const offered = async (site: string) => {
    const to = new Date(Date.now() + 3600_000).toISOString();
    const from = new Date(Date.now() - 6 * 3600_000).toISOString();
    const r = await reportingGet(site, `/api/queue-summary?from=${from}&to=${to}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { totals: { offered: number }; rows: { intervalStart: string }[] };
  };
  const restartWorker = async (site: string) => {
    await stopWorker(w.state, site, 'kill');
    startWorker(w.state, site);
  };

  after(async () => {
    traffic.abort();
    await sim?.catch(() => undefined);
    await w?.close();
  });
  before(async () => {
    w = await openWorld('dr', {
      layout: DEV_LAYOUT,
      // A low history limit: every workflow, DR included, continues as new during the test.
      temporalDynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 150 },
    });
    await runSim(w.config, { calls: 300, rate: 20, seed: 21, startTs: new Date(Date.now() - 2 * 3600_000) }, silentLogger);
    // Live traffic throughout; members of a stopped site are skipped by the simulator as by real collectors.
    sim = runSim(w.config, { calls: 20_000, rate: 4, seed: 22 }, silentLogger, traffic.signal);
    await waitFor('both ETLs to have loaded the backfill', async () => {
      for (const s of ['dc1', 'dc2']) if ((await martKeys(w.mart(s))).size < 1000) return false;
      return true;
    });
  });

  it(
    'refuses bad commands with a clear reason and changes nothing',
    step(async () => {
      const before = await dr();
      const refused = async (name: keyof typeof drUpdates, payload: unknown, reason: RegExp) =>
        assert.rejects(update(name, payload), (e: unknown) => {
          assert.ok(e instanceof WorkflowUpdateFailedError);
          assert.match(String((e.cause as Error).message), reason);
          return true;
        });
      await refused('declareSiteFailure', { site: 'dc9' }, /unknown site "dc9"/);
      await refused('declareSiteFailure', { site: 'DC1!' }, /site: a site id/);
      await refused('siteRebuilt', { site: 'dc1' }, /dc1 is active, not failed/);
      await refused('confirmReporting', { site: 'dc2' }, /no reporting confirmation is pending/);
      await refused('failbackReporting', { site: 'dc1' }, /already served from dc1/);
      await refused('retry', {}, /nothing to retry/);
      await temporal('workflow', 'signal', '--workflow-id', DR_WORKFLOW_ID, '--name', 'declareSiteFailure', '--input', '{"sight":"dc1"}');
      const after = await waitFor('the malformed signal recorded', async () => {
        const s = await dr();
        return s.rejected.length >= before.rejected.length + 1 && s;
      });
      // The refused updates got their reasons as answers; validators change no state (replay).
      assert.equal(after.rejected.length, before.rejected.length + 1, 'only the signal is recorded');
      assert.match(after.rejected.at(-1)!.reason, /sight/);
      assert.equal(after.phase, 'normal');
      assert.deepEqual(after.sites, { dc1: 'active', dc2: 'active' });
      assert.equal(after.reporting.active, 'dc1');
    }),
  );

  it(
    'drills a failover of either site without changing anything: ready, and each set with no member at the survivor shown as exposed',
    step(async () => {
      const handle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
      const dc2 = await changesNothing(w, w.client, () => handle.executeUpdate(drillUpdate, { args: [{ site: 'dc2' }] }));
      assert.deepEqual([dc2.ready, dc2.problems, dc2.exposure.map((e) => e.sourceId)], [true, [], ['sw-chat-1']], 'only sw-chat-1 has no member at dc1');
      const printed = await changesNothing(w, w.client, () => twinmartCli(w, ['dr', 'drill', 'dc1']));
      assert.match(printed, /drill of dc1 .*: a failover now would go through/);
      assert.match(printed, /exposed: sw-voice-2 has no member at a survivor/);
      const s = await dr();
      const dc1 = s.lastDrill!;
      assert.equal(dc1.site, 'dc1');
      assert.equal(dc1.ready, true, dc1.problems.join('; '));
      assert.deepEqual(dc1.exposure.map((e) => e.sourceId), ['sw-voice-2']);
      const unread = dc1.exposure[0]!.unreadBy.dc2!;
      assert.deepEqual(Object.keys(unread).sort(), w.config.members.filter((m) => m.sourceId === 'sw-voice-2').map((m) => m.id).sort());
      assert.ok(Object.values(unread).every((n) => n === null || n >= 0), JSON.stringify(unread));
      const [check] = dc1.checks;
      assert.deepEqual([check!.site, check!.reporting.canServe, check!.pollers, check!.temporal.mode], ['dc2', true, { control: true, site: true }, 'shared']);
      assert.equal(s.timeline.filter((t) => t.step === 'drill').length, 2);
      await waitFor('the drill names who ran it', async () => (await dr()).timeline.filter((t) => t.step === 'drill-started').every((t) => t.by));
      await assert.rejects(handle.executeUpdate(drillUpdate, { args: [{ site: 'dc9' }] }), (e: unknown) =>
        e instanceof WorkflowUpdateFailedError && /unknown site "dc9"/.test(String((e.cause as Error).message)));
    }),
  );

  it(
    'fails dc1 over to dc2 (declared with the temporal CLI) through a worker kill and a Temporal restart',
    step(async () => {
      // dc2's probe has measured its lag of every dc1 member (a member dc2 has not begun to read has no cursor to measure from).
      const dc1Ids = w.config.members.filter((m) => m.site === 'dc1').map((m) => m.id);
      await waitFor('dc2 to have measured its lag of every dc1 member', async () =>
        (await w.mart('dc2').query('select 1 from ctl_member_lag where member_id = any($1)', [dc1Ids])).rowCount === dc1Ids.length);
      const stoppedAt = Date.now();
      await failSite(w.state, 'dc1');
      // The health monitor notices, says so, and leaves the decision to the operator.
      const suspected = await waitFor('dc1 suspected', async () => {
        const x = await dr();
        return x.suspected.dc1 && x;
      });
      assert.match(suspected.suspected.dc1!.reason, /no worker of dc1 answered/);
      assert.equal(suspected.phase, 'normal', 'no failover without the operator');
      // A drill of dc2 now waits for dc1's answer; the real failure declared meanwhile goes first.
      const drill = w.client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drillUpdate, { args: [{ site: 'dc2' }] });
      await waitFor('the drill of dc2 running', async () => (await dr()).drilling === 'dc2');
      await temporal('workflow', 'signal', '--workflow-id', DR_WORKFLOW_ID, '--name', 'declareSiteFailure',
        '--input', '{"site":"dc1","reason":"data center 1 lost power"}');
      await assert.rejects(drill, (e: unknown) => e instanceof WorkflowUpdateFailedError && /aborted: a site failure was declared/.test(String((e.cause as Error).message)));
      await restartWorker('dc2');
      await restartTemporal();
      const awaiting = await waitFor('reporting moved to dc2, awaiting confirmation', async () => {
        const s = await dr();
        return s.reporting.awaitingConfirmation === 'dc2' && s;
      }, 120_000);
      assert.equal(awaiting.phase, 'failing-over');
      await assert.rejects(w.client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drillUpdate, { args: [{ site: 'dc2' }] }), (e: unknown) =>
        e instanceof WorkflowUpdateFailedError && /a drill waits until no procedure runs/.test(String((e.cause as Error).message)));
      assert.deepEqual((await readReportingRole(w.mart('dc2')))?.role, 'active');
      await temporal('workflow', 'update', 'execute', '--workflow-id', DR_WORKFLOW_ID, '--name', 'confirmReporting', '--input', '{"site":"dc2"}');
      const s = await phase('degraded');
      const steps = s.timeline.map((t) => t.step);
      for (const expected of ['failure-declared', 'exclusions-confirmed', 'etl-cancelled', 'data-loss-reported', 'reporting-activated', 'reporting-confirmed', 'degraded']) {
        assert.ok(steps.includes(expected), `timeline has ${expected}: ${steps.join(', ')}`);
      }
      assert.equal(steps.filter((x) => x === 'degraded').length, 1, 'the failover completed once');
      assert.deepEqual(s.dataLoss!.potentialLoss, ['sw-voice-2'], 'exactly the set with all members at dc1');
      assert.ok(s.dataLoss!.sets.find((x) => x.sourceId === 'sw-voice-2')!.lastEventBySite!.dc2, 'last event time at dc2 reported');
      // The lost set's collectors' sessions are still open in the dc1 IDBs dc2 last read:
      // dc2 records the outage as a gap open from (about) the failure on; the other sets
      // keep a member, so no open gap.
      const open = s.dataLoss!.gapsBySite.dc2!.filter((g) => g.end === null);
      assert.deepEqual(open.map((g) => g.sourceId), ['sw-voice-2'], JSON.stringify(s.dataLoss!.gapsBySite.dc2));
      const gapStart = Date.parse(open[0]!.start);
      assert.ok(gapStart > stoppedAt - 10_000 && gapStart < Date.parse(s.lastFailover!.declaredAt), `gap from ${open[0]!.start}`);
      // What dc1's members held that dc2 had not read, as dc2 last measured it before the failure.
      const dc1Members = w.config.members.filter((m) => m.site === 'dc1').map((m) => m.id).sort();
      assert.deepEqual(Object.keys(s.dataLoss!.unreadByMember ?? {}).sort(), dc1Members, 'a lag for every failed member');
      for (const id of dc1Members) {
        const lag = s.dataLoss!.unreadByMember![id]!.dc2!;
        assert.ok(lag, `${id}: measured by dc2`);
        assert.ok(Number.isInteger(lag.rowsBehind) && lag.rowsBehind >= 0, `${id}: rows behind ${lag.rowsBehind}`);
        // null only for a member this mart never completed a read of (then every row counts).
        assert.ok(lag.secondsBehind === null ? lag.lastReadAt === null : lag.secondsBehind >= 0, `${id}: seconds behind ${lag.secondsBehind}`);
        assert.ok(Date.parse(lag.measuredAt) <= Date.parse(s.lastFailover!.declaredAt), `${id}: measured before the failure`);
        process.stdout.write(`# unread of ${id} by dc2: ${formatUnread(lag)}\n`);
      }
      assert.match(formatDrStatus(s), /idb-voice-1-dc1: unread by dc2 at most \d+ events, (never read|[\d.]+ s)/);
      const rto = s.lastFailover!.rtoSeconds!;
      process.stdout.write(`# RTO (declareSiteFailure to exclusions confirmed and reporting activated, operator wait excluded): ${rto.toFixed(1)} s\n`);
      assert.ok(rto > 0);
      const etl = await w.client.workflow.getHandle(etlWorkflowId('dc2')).query(etlStatusQuery);
      assert.deepEqual(etl.excludedSites, ['dc1']);
      const dc1Etl = await w.client.workflow.getHandle(etlWorkflowId('dc1')).describe();
      assert.equal(dc1Etl.status.name, 'CANCELLED');
      const health = await reportingGet('dc2', '/health');
      assert.deepEqual([health.body.role, health.body.activeSite], ['active', 'dc2'], 'the survivor serves reports');
    }),
  );

  it(
    'keeps every event recorded at dc2 flowing into the surviving mart',
    step(async () => {
      const dc2Members = w.config.members.filter((m) => m.site === 'dc2').map((m) => m.id);
      const before = (await martKeys(w.mart('dc2'))).size;
      const failedAt = Date.parse((await dr()).lastFailover!.declaredAt);
      const reportBefore = await offered('dc2');
      assert.ok(reportBefore.rows.some((r) => Date.parse(r.intervalStart) < failedAt - 3600_000), 'reports hold data from before the failure');
      const recorded = await unionCallEvents(w.config, w.pools, dc2Members);
      await waitFor('dc2 mart to hold every event recorded at dc2', async () => {
        const keys = await martKeys(w.mart('dc2'));
        return [...recorded.keys()].every((k) => keys.has(k));
      });
      await waitFor('new traffic in the dc2 mart after the failover', async () => (await martKeys(w.mart('dc2'))).size > before);
      await waitFor('the survivor reports traffic after the failure', async () => (await offered('dc2')).totals.offered > reportBefore.totals.offered);
      await assert.rejects(update('declareSiteFailure', { site: 'dc2' }), (e: unknown) =>
        e instanceof WorkflowUpdateFailedError && /would leave no active site/.test(String((e.cause as Error).message)),
      );
      // Waiting degraded (for days, in production) adds nothing to its history: the probes
      // run in a workflow of their own and report changes only. A change is allowed (a
      // site slow to answer on a loaded machine is suspected, then answers again): the
      // window may hold siteHealth signals that each change a site's health, their
      // workflow tasks and the search attributes they update, and nothing else.
      // Measured within one run: a continue-as-new in the window (the test's low history
      // limit) would count the new run's start-up events. Then it is measured again.
      const drHandle = w.client.workflow.getHandle(DR_WORKFLOW_ID);
      for (let attempt = 1; ; attempt++) {
        const before10s = await drHandle.describe();
        await new Promise((r) => setTimeout(r, 10_000));
        const after10s = await drHandle.describe();
        if (after10s.runId !== before10s.runId && attempt < 3) continue;
        assert.equal(after10s.runId, before10s.runId, 'the idle DR workflow keeps its run');
        const events = (await w.client.workflow.getHandle(DR_WORKFLOW_ID, after10s.runId).fetchHistory()).events!;
        const health: Record<string, boolean> = {};
        const unexpected: string[] = [];
        const typeName = (e: (typeof events)[number]) => proto.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType);
        for (const [i, e] of events.entries()) {
          const signal = e.workflowExecutionSignaledEventAttributes;
          const h = signal?.signalName === 'siteHealth' ? (JSON.parse(Buffer.from(signal.input!.payloads![0]!.data!).toString()) as SiteHealth) : null;
          const changed = h !== null && health[h.site] !== h.healthy;
          if (h) health[h.site] = h.healthy;
          if (i < before10s.historyLength || changed || /WORKFLOW_TASK|UPSERT_WORKFLOW_SEARCH_ATTRIBUTES|PROPERTIES_MODIFIED/.test(typeName(e))) continue;
          unexpected.push(signal?.signalName ?? e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name ?? typeName(e));
        }
        assert.deepEqual(unexpected, [], `the idle DR history grew by ${after10s.historyLength - before10s.historyLength} events in 10 s`);
        break;
      }
      assert.equal(await taskTimeoutSeconds(w, DR_WORKFLOW_ID), 3, 'runs with the configured workflow task timeout');
    }),
  );

  it(
    'reintroduces dc1 as a wiped replacement, through a worker kill and a Temporal restart, then fails reporting back',
    step(async () => {
      await restoreSite(w.state, 'dc1', silentLogger, true);
      saveWorld(w.state);
      await update('siteRebuilt', { site: 'dc1' });
      await waitFor('reintroduction under way', async () => (await dr()).timeline.some((t) => t.step === 'mart-seeded'));
      await restartWorker('dc1');
      await restartTemporal();
      const s = await phase('normal', 240_000);
      const steps = s.timeline.map((t) => t.step);
      for (const expected of ['rebuild-declared', 'mart-migrated', 'mart-seeded', 'etl-started', 'caught-up', 'inclusions-confirmed', 'parity-passed', 'normal']) {
        assert.ok(steps.includes(expected), `timeline has ${expected}`);
      }
      assert.equal(steps.filter((x) => x === 'normal').length, 1, 'the reintroduction completed once');
      assert.deepEqual(s.sites, { dc1: 'active', dc2: 'active' });
      const dc2 = await w.client.workflow.getHandle(etlWorkflowId('dc2')).query(etlStatusQuery);
      assert.deepEqual(dc2.excludedSites, [], 'dc2 reads dc1 again');
      // The replacement's collectors record again: the lost set's outage is a closed gap.
      for (const site of ['dc1', 'dc2']) {
        await waitFor(`${site}: the outage of sw-voice-2 closed`, async () => {
          const { rows } = await w.mart(site).query(
            "select gap_start, gap_end from ctl_data_gap where source_id = 'sw-voice-2' order by gap_start",
          );
          return rows.length > 0 && rows.every((r) => r.gap_end !== null);
        });
      }
      const started: number[] = [];
      for await (const r of w.client.workflow.list({ query: `WorkflowId = "${etlWorkflowId('dc1')}"` })) {
        const first = (await w.client.workflow.getHandle(r.workflowId, r.runId).fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!;
        if (first.parentWorkflowExecution?.workflowId === DR_WORKFLOW_ID && !first.continuedExecutionRunId) started.push(Number(first.workflowTaskTimeout?.seconds));
      }
      assert.deepEqual(started, [3], 'the DR workflow started one ETL run, with the configured workflow task timeout');
      assert.equal((await readReportingRole(w.mart('dc1')))?.role, 'standby', 'the rebuilt site starts as standby');
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date(Date.now() - 60_000) });
      assert.equal(report.match, true, JSON.stringify(report.mismatches.slice(0, 2)));

      await update('failbackReporting', { site: 'dc1' });
      // Its activity polls dc1's reporting service for the new role for up to 90 s before it retries.
      await explained(waitFor('failback awaiting confirmation', async () => (await dr()).reporting.awaitingConfirmation === 'dc1', 120_000), ['reporting-dc1', 'worker-dc1']);
      await update('confirmReporting', { site: 'dc1' });
      const done = await waitFor('reporting back at dc1', async () => {
        const x = await dr();
        return x.reporting.active === 'dc1' && !x.reporting.awaitingConfirmation && x;
      });
      assert.equal(done.phase, 'normal');
      assert.equal((await readReportingRole(w.mart('dc1')))?.role, 'active');
      assert.equal((await readReportingRole(w.mart('dc2')))?.role, 'standby');
      const standby = await reportingGet('dc2', `/api/queue-summary?from=${new Date(Date.now() - 3600_000).toISOString()}&to=${new Date().toISOString()}`);
      assert.deepEqual([standby.status, standby.body.activeSite], [503, 'dc1'], 'the old survivor refuses as a standby');
      assert.ok((await offered('dc1')).totals.offered > 0, 'the failed-back site serves its rebuilt mart');
    }),
  );

  it(
    'fails dc1 again and reintroduces it with its databases intact',
    step(async () => {
      await failSite(w.state, 'dc1');
      await update('declareSiteFailure', { site: 'dc1', reason: 'second outage' });
      await waitFor('reporting awaiting confirmation at dc2', async () => (await dr()).reporting.awaitingConfirmation === 'dc2');
      await update('confirmReporting', { site: 'dc2' });
      await phase('degraded');
      await restoreSite(w.state, 'dc1', silentLogger, false);
      saveWorld(w.state);
      // Back intact, its mart still says it serves; its reporting service answers as a
      // standby from its first answer, never with the stale mart.
      assert.equal((await readReportingRole(w.mart('dc1')))?.role, 'active', 'the stale role is still in the returned mart');
      const range = `from=${new Date(Date.now() - 3600_000).toISOString()}&to=${new Date().toISOString()}`;
      const first = await waitFor('the returned dc1 reporting service to answer', () => reportingGet('dc1', `/api/queue-summary?${range}`).catch(() => null));
      assert.deepEqual([first.status, first.body.error, first.body.activeSite], [503, 'standby', 'dc2'], 'dc1 refuses as a standby');
      const health = await reportingGet('dc1', '/health');
      assert.deepEqual([health.body.role, health.body.activeSite], ['standby', 'dc2']);
      // A second failure of dc1 in the middle of its reintroduction: aborted, failed over again.
      await update('siteRebuilt', { site: 'dc1' });
      await waitFor('reintroduction under way', async () => (await dr()).timeline.filter((t) => t.step === 'mart-seeded').length === 2);
      await failSite(w.state, 'dc1');
      await update('declareSiteFailure', { site: 'dc1', reason: 'failed again while rebuilding' });
      const aborted = await waitFor('reintroduction aborted and dc1 failed over', async () => {
        const x = await dr();
        return x.phase === 'degraded' && x.timeline.some((t) => t.step === 'reintroduction-aborted') && x;
      });
      assert.equal(aborted.sites.dc1, 'failed');
      assert.equal(aborted.reporting.active, 'dc2');
      assert.deepEqual((await w.client.workflow.getHandle(etlWorkflowId('dc2')).query(etlStatusQuery)).excludedSites, ['dc1']);
      await restoreSite(w.state, 'dc1', silentLogger, false);
      saveWorld(w.state);
      await update('siteRebuilt', { site: 'dc1' });
      const s = await waitFor('the second reintroduction to complete', async () => {
        const x = await dr();
        return x.phase === 'normal' && x.timeline.filter((t) => t.step === 'normal').length === 2 && x;
      }, 240_000);
      assert.ok(s.timeline.some((t) => t.step === 'mart-seeded' && /from dc2/.test(t.detail ?? '')));
      // The run cancelled by the aborted reintroduction was ended before the new one started.
      assert.equal((await w.client.workflow.getHandle(etlWorkflowId('dc1')).describe()).status.name, 'RUNNING', 'the ETL of dc1 runs');
      traffic.abort();
      await sim;
      // Quiesced: the whole union of every IDB is in both marts, and they agree.
      const union = await unionCallEvents(w.config, w.pools);
      for (const site of ['dc1', 'dc2']) {
        await waitFor(`${site} holds every recorded event`, async () => {
          const keys = await martKeys(w.mart(site));
          return [...union.keys()].every((k) => keys.has(k));
        });
      }
      await waitFor('parity of the quiesced marts', async () =>
        (await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date(Date.now() + 3600_000) })).match,
      );
      // Calls updated over many cycles of live traffic, a seed and two failovers: the
      // aggregates, moved by deltas, still equal what the facts add up to.
      for (const site of ['dc1', 'dc2']) {
        assert.deepEqual(await queueAggregateDiff(w.mart(site), w.config.etl), [], `${site}: ag_queue_15min`);
      }
      // The seed drops keys and indexes while it copies and builds them again: the seeded
      // mart has every one the migrations gave the survivor's.
      const indexes = async (site: string) =>
        (await w.mart(site).query(`select indexname, indexdef from pg_indexes where schemaname = current_schema() order by 1`)).rows;
      const seeded = await indexes('dc1');
      assert.ok(seeded.length > 20, `${seeded.length} indexes`);
      assert.deepEqual(seeded, await indexes('dc2'));
    }),
  );
});
