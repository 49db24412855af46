/**
 * Three sites: the design says it must not break with three, so a world with three
 * data centers runs the ETL (every site loads every set) and one failover of a site
 * whose sets each keep a member elsewhere; the two survivors stay complete and agree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { compareMarts } from '../src/parity';
import { failSite, type Layout } from '../src/dev/world';
import { drStatusQuery, drUpdates, type DrStatus } from '../src/workflows/dr-messages';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../src/workflows/names';
import { openWorld, step, waitFor, type TestWorld } from './helpers/world';
import { martKeys, unionCallEvents } from './helpers/truth';
import { loadBacklog } from '../src/mart/control';

/** Each set has its members at two of the three sites, so any one site may fail. */
const LAYOUT: Layout = {
  'sw-a': [
    { site: 'dc1', db: 'idb_a' },
    { site: 'dc2', db: 'idb_a' },
  ],
  'sw-b': [
    { site: 'dc2', db: 'idb_b' },
    { site: 'dc3', db: 'idb_b' },
  ],
  'sw-c': [
    { site: 'dc3', db: 'idb_c' },
    { site: 'dc1', db: 'idb_c' },
  ],
};
const SITES = ['dc1', 'dc2', 'dc3'];

describe('a three-site world', { timeout: 600_000 }, () => {
  let w: TestWorld;
  const dr = (): Promise<DrStatus> => w.client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
  /** Every event recorded by the given members is in each of the given marts. */
  const complete = async (memberIds: string[], sites: string[]) => {
    const recorded = await unionCallEvents(w.config, w.pools, memberIds);
    assert.ok(recorded.size > 0);
    for (const site of sites) {
      await waitFor(`the ${site} mart to hold every event recorded by ${memberIds.length} members`, async () => {
        const keys = await martKeys(w.mart(site));
        return [...recorded.keys()].every((k) => keys.has(k));
      });
      await waitFor(`the ${site} transform to have caught up`, async () => {
        const { dirty, pendingChunks } = await loadBacklog(w.mart(site));
        return dirty === 0 && pendingChunks === 0;
      });
    }
  };

  after(async () => w?.close());
  before(async () => {
    w = await openWorld('three-sites', { layout: LAYOUT });
  });

  it(
    'loads every set into all three marts, which agree',
    step(async () => {
      assert.deepEqual(Object.keys(w.config.sites).sort(), SITES);
      await runSim(w.config, { calls: 150, rate: 20, seed: 31, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
      await complete(w.config.members.map((m) => m.id), SITES);
      for (const other of ['dc2', 'dc3']) {
        const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: other, pool: w.mart(other) }, { closedBefore: new Date() });
        assert.equal(report.match, true, `dc1 and ${other} agree: ${JSON.stringify(report).slice(0, 400)}`);
      }
    }),
  );

  it(
    'fails dc2 over: both survivors exclude it, confirm, and stay complete',
    step(async () => {
      await failSite(w.state, 'dc2');
      await w.client.workflow.getHandle(DR_WORKFLOW_ID).executeUpdate(drUpdates.declareSiteFailure, { args: [{ site: 'dc2', reason: 'test' }] });
      const s = await waitFor('DR phase degraded', async () => {
        const x = await dr();
        return x.phase === 'degraded' && x;
      }, 120_000);
      assert.deepEqual(s.sites, { dc1: 'active', dc2: 'failed', dc3: 'active' });
      assert.equal(s.reporting.active, 'dc1', 'reporting stays at the primary, which survived');
      assert.deepEqual(s.dataLoss!.potentialLoss, [], 'every set keeps a member');
      for (const site of ['dc1', 'dc3']) {
        const etl = await w.client.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery);
        assert.deepEqual(etl.excludedSites, ['dc2'], `${site} excluded dc2`);
        assert.ok(etl.recentCycles!.length > 1 && etl.recentCycles!.length <= 20, `${site} lists its last cycles`);
        assert.deepEqual(etl.recentCycles!.at(-1), etl.lastCycle, 'the newest of them is the last cycle');
      }
      // Cancelling it is requested by the failover; it completes once a control worker runs the ETL's next task.
      await waitFor("dc2's ETL cancelled", async () => (await w.client.workflow.getHandle(etlWorkflowId('dc2')).describe()).status.name === 'CANCELLED', 30_000);
      // New traffic lands only in the survivors' members; both marts take it all.
      await runSim(w.config, { calls: 60, rate: 30, seed: 32, startTs: new Date(Date.now() - 1800_000) }, silentLogger);
      const survivors = w.config.members.filter((m) => m.site !== 'dc2').map((m) => m.id);
      await complete(survivors, ['dc1', 'dc3']);
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc3', pool: w.mart('dc3') }, { closedBefore: new Date() });
      assert.equal(report.match, true, `the survivors agree: ${JSON.stringify(report).slice(0, 400)}`);
    }),
  );
});
