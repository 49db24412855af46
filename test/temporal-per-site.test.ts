/**
 * Temporal that survives the site (docs/architecture.md, "Temporal per site"): a real
 * Temporal cluster per site, its databases in the site's PostgreSQL, one global
 * namespace replicated between them and active at the primary. The site that hosts
 * the active cluster is stopped for real (its Temporal server, PostgreSQL and workers
 * killed); `twinmart dr fail` moves the namespace to the survivor's cluster and the DR
 * procedure runs there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { failSite, restoreSite, type Layout } from '../src/dev/world';
import { clusterUiUrl } from '../src/dev/temporal-cluster';
import { connectClient } from '../src/temporal/connection';
import { activeCluster, locally, replicationAt } from '../src/temporal/namespace';
import { drillUpdate } from '../src/workflows/drill';
import { formatDrill } from '../src/cli/dr';
import { changesNothing } from './helpers/drill';
import { drStatusQuery } from '../src/workflows/dr-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../src/workflows/names';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { openWorld, settled, step, twinmartCli, waitFor, type TestWorld } from './helpers/world';
import { unionCallEvents } from './helpers/truth';

const LAYOUT: Layout = {
  'sw-a': [
    { site: 'dc1', db: 'idb_a' },
    { site: 'dc2', db: 'idb_a' },
  ],
  'sw-b': [
    { site: 'dc2', db: 'idb_b' },
    { site: 'dc1', db: 'idb_b' },
  ],
};

describe('a Temporal cluster per site', { timeout: 480_000 }, () => {
  let w: TestWorld;
  let dc2: Client | undefined;
  after(async () => {
    await dc2?.connection.close();
    await w?.close();
  });
  before(async () => {
    w = await openWorld('temporal-per-site', { layout: LAYOUT, temporal: 'per-site' });
  });
  /** The workflow ids the site's cluster's Web UI lists, through the UI server's own API. */
  const uiWorkflows = async (site: string): Promise<string[]> => {
    const url = clusterUiUrl(w.state.temporal.clusters![site]!)!;
    const res = await fetch(`${url}/api/v1/namespaces/twinmart/workflows`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { executions?: { execution: { workflowId: string } }[] };
    return (body.executions ?? []).map((e) => e.execution.workflowId);
  };

  it(
    'replicates the namespace: the workflows started at the primary show at the other cluster',
    step(async () => {
      assert.equal(await activeCluster(w.client), 'dc1');
      dc2 = await connectClient(w.config, 'dc2');
      assert.equal(await activeCluster(dc2), 'dc1', 'dc2 sees the namespace active at dc1');
      await runSim(w.config, { calls: 40, rate: 20, seed: 61, startTs: new Date(Date.now() - 900_000) }, silentLogger);
      for (const site of ['dc1', 'dc2']) await waitFor(`${site} settled`, () => settled(w, site), 90_000);
      // Read from dc2's own cluster: its workers poll there, the calls are forwarded to dc1.
      const d = await dc2.workflow.getHandle(DR_WORKFLOW_ID).describe();
      assert.equal(d.status.name, 'RUNNING');
      // Each cluster serves its Web UI; the UI's API lists the replicated workflows at either.
      for (const site of ['dc1', 'dc2']) {
        const listed = await uiWorkflows(site);
        assert.ok(listed.includes(DR_WORKFLOW_ID) && listed.includes(etlWorkflowId('dc2')), `${site}'s Web UI lists ${listed.join(', ')}`);
      }
    }),
  );

  it(
    'measures the replication lag under steady traffic: how long the standby cluster takes to hold what the active one has',
    step(async () => {
      const traffic = new AbortController();
      const sim = runSim(w.config, { calls: 2000, rate: 10, seed: 62 }, silentLogger, traffic.signal);
      try {
        const seconds: number[] = [];
        const events: number[] = [];
        const until = Date.now() + 20_000;
        while (Date.now() < until) {
          for (const id of [etlWorkflowId('dc1'), etlWorkflowId('dc2')]) {
            const h = dc2!.workflow.getHandle(id);
            const here = (await locally(dc2!, () => h.describe())).historyLength;
            const active = (await h.describe()).historyLength; // forwarded to dc1, the active cluster
            events.push(Math.max(0, active - here));
            const t0 = Date.now();
            await waitFor(`dc2 to hold ${id}'s ${active} events`, async () => (await locally(dc2!, () => h.describe())).historyLength >= active, 30_000, 25);
            seconds.push((Date.now() - t0) / 1000);
          }
        }
        const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
        process.stdout.write(
          `# replication lag under traffic (10 calls/s, ${seconds.length} samples of the ETL workflows over 20 s): ` +
            `events behind p50 ${q(events, 0.5)} max ${Math.max(...events)}; time to catch up p50 ${q(seconds, 0.5).toFixed(2)} s max ${Math.max(...seconds).toFixed(2)} s\n`,
        );
        assert.ok(seconds.length > 4);
        assert.ok(Math.max(...seconds) < 30, 'the standby cluster keeps up');
      } finally {
        traffic.abort();
        await sim.catch(() => undefined);
      }
    }),
  );

  it(
    'drills a failover of the site with the active cluster: ready, the namespace replicated to dc2, nothing changed',
    step(async () => {
      const r = await changesNothing(w, w.client, () => w.client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drillUpdate, { args: [{ site: 'dc1' }] }));
      assert.equal(r.ready, true, r.problems.join('; '));
      assert.deepEqual(r.exposure, [], 'every set has a member at dc2');
      const t = r.checks[0]!.temporal;
      assert.ok(t.mode === 'per-site');
      assert.deepEqual([t.cluster, t.activeCluster, t.replicated], ['dc2', 'dc1', true]);
      for (const [id, n] of Object.entries(t.lagEvents)) assert.ok(n !== null && n >= 0, `${id}: lag ${n}`);
      assert.match(formatDrill(r), /Temporal cluster dc2: namespace replicated, active at dc1; replication lag in history events: twinmart-dr \d+/);
    }),
  );

  it(
    'fails over with the site that hosts the active cluster: the namespace moves, the DR procedure runs at the survivor, nothing is lost',
    step(async () => {
      // What a forced failover may lose at Temporal's level: the history dc2 does not hold yet (the marts lose nothing).
      const { lagEvents } = await replicationAt(dc2!, w.config, 'dc2', [DR_WORKFLOW_ID, etlWorkflowId('dc1'), etlWorkflowId('dc2')]);
      await failSite(w.state, 'dc1');
      process.stdout.write(`# history events not yet replicated to dc2 just before dc1 was killed: ${JSON.stringify(lagEvents)}\n`);
      const started = Date.now();
      const stdout = await twinmartCli(w, ['dr', 'fail', 'dc1', '--reason', 'test']);
      assert.match(stdout, /namespace twinmart is now active at cluster dc2/);
      assert.match(stdout, /declareSiteFailure dc1 accepted/);
      assert.equal(await activeCluster(dc2!), 'dc2');
      const dr = dc2!.workflow.getHandle(DR_WORKFLOW_ID);
      await waitFor('reporting at dc2 awaiting the operator', async () => (await dr.query(drStatusQuery)).reporting.awaitingConfirmation === 'dc2', 120_000);
      const confirmed = await twinmartCli(w, ['dr', 'confirm-reporting', 'dc2']);
      assert.match(confirmed, /confirmReporting dc2 accepted/);
      const s = await waitFor('the failover degraded at dc2', async () => {
        const st = await dr.query(drStatusQuery);
        return st.phase === 'degraded' && st;
      }, 60_000);
      process.stdout.write(
        `# per-site failover: dr fail (namespace failover included) to degraded ${((Date.now() - started) / 1000).toFixed(1)} s with the operator's ` +
          `confirmation; the workflow's RTO (operator wait excluded) ${s.lastFailover?.rtoSeconds?.toFixed(1)} s\n`,
      );
      assert.equal(s.reporting.active, 'dc2');
      assert.deepEqual(s.sites, { dc1: 'failed', dc2: 'active' });
      await assert.rejects(uiWorkflows('dc1'), 'the Web UI of the failed site is gone with it');
      assert.ok((await uiWorkflows('dc2')).includes(DR_WORKFLOW_ID), "the survivor's Web UI shows the DR workflow");

      // Every event committed at a surviving member is in the survivor's mart, once (natural keys).
      const survivors = w.config.members.filter((m) => m.site === 'dc2').map((m) => m.id);
      const events = await unionCallEvents(w.config, w.pools, survivors);
      const { rows } = await w.mart('dc2').query<{ k: string }>(`select call_id || '/' || seq as k from stg_call_event`);
      const staged = new Set(rows.map((r) => r.k));
      assert.equal(rows.length, staged.size);
      const missing = [...events.keys()].filter((k) => !staged.has(k));
      assert.equal(missing.length, 0, `${missing.length} events of the surviving members missing at dc2`);
    }),
  );

  it(
    'reintroduces the site as a wiped replacement: its empty cluster rejoins the namespace, parity passes',
    step(async () => {
      await restoreSite(w.state, 'dc1', silentLogger, true);
      const stdout = await twinmartCli(w, ['dr', 'rebuilt', 'dc1']);
      assert.match(stdout, /cluster dc1 of dc1 is connected and holds the namespace twinmart again/);
      assert.match(stdout, /siteRebuilt dc1 accepted/);
      const dr = dc2!.workflow.getHandle(DR_WORKFLOW_ID);
      const s = await waitFor('the reintroduction of dc1 done', async () => {
        const st = await dr.query(drStatusQuery);
        if (st.lastError) throw new Error(st.lastError);
        return st.phase === 'normal' && st;
      }, 180_000);
      assert.deepEqual(s.sites, { dc1: 'active', dc2: 'active' });
      assert.match(s.reintroduction?.parity ?? '', /^match/);
      const rebuilt = await connectClient(w.config, 'dc1');
      try {
        assert.equal(await activeCluster(rebuilt), 'dc2', 'the namespace stays at the survivor until the operator moves it');
      } finally {
        await rebuilt.connection.close();
      }
    }),
  );

  it(
    'hands the namespace back to the primary on the operator\'s word, gracefully, and the workflows go on there',
    step(async () => {
      const stdout = await twinmartCli(w, ['dr', 'handover', 'dc1']);
      assert.match(stdout, /handed over to cluster dc1/);
      assert.equal(await activeCluster(dc2!), 'dc1');
      await waitFor('dc1 sees its cluster active', async () => (await activeCluster(w.client)) === 'dc1', 30_000);
      const before = (await w.client.workflow.getHandle(etlWorkflowId('dc1')).query(etlStatusQuery)).cycle;
      await waitFor("dc1's ETL cycling at its own cluster", async () => (await w.client.workflow.getHandle(etlWorkflowId('dc1')).query(etlStatusQuery)).cycle > before + 2, 60_000);
      const st = await w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
      assert.equal(st.phase, 'normal');
    }),
  );
});

describe("a Temporal cluster per site, the standby cluster's site failed", { timeout: 300_000 }, () => {
  let w: TestWorld;
  after(async () => w?.close());
  before(async () => {
    w = await openWorld('temporal-per-site-standby', { layout: LAYOUT, temporal: 'per-site' });
  });

  it(
    'leaves the namespace where it is active and fails the site over there',
    step(async () => {
      await runSim(w.config, { calls: 20, rate: 20, seed: 62, startTs: new Date(Date.now() - 900_000) }, silentLogger);
      for (const site of ['dc1', 'dc2']) await waitFor(`${site} settled`, () => settled(w, site), 90_000);
      await failSite(w.state, 'dc2');
      const stdout = await twinmartCli(w, ['dr', 'fail', 'dc2']);
      assert.doesNotMatch(stdout, /now active at cluster/, 'nothing to move: the namespace is active at dc1');
      assert.match(stdout, /declareSiteFailure dc2 accepted/);
      assert.equal(await activeCluster(w.client), 'dc1');
      const s = await waitFor('the failover degraded', async () => {
        const st = await w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
        return st.phase === 'degraded' && st;
      }, 90_000);
      assert.equal(s.reporting.active, 'dc1', 'reporting stays at the primary');
      const survivors = w.config.members.filter((m) => m.site === 'dc1').map((m) => m.id);
      const events = await unionCallEvents(w.config, w.pools, survivors);
      const { rows } = await w.mart('dc1').query<{ k: string }>(`select call_id || '/' || seq as k from stg_call_event`);
      const staged = new Set(rows.map((r) => r.k));
      assert.equal([...events.keys()].filter((k) => !staged.has(k)).length, 0, 'every event of the surviving members at dc1');
    }),
  );
});
