/**
 * Identical configuration across sites (the vendor design requires it). Each site's
 * worker reads its own file; when the parts that decide what a mart keeps differ (the
 * members of a set or their order, the fact rules), the marts keep different facts and
 * parity can never match. The difference shows in the DR status, `twinmart status` and
 * the operations view, naming the keys, and a reintroduction refuses to start until the
 * files agree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { silentLogger } from '../src/logger';
import { configFile, failSite, startSiteDatabases, startWorker, stopWorker, type Layout } from '../src/dev/world';
import { drStatusQuery, drUpdates } from '../src/workflows/dr-messages';
import { DR_WORKFLOW_ID } from '../src/workflows/names';
import { openWorld, step, twinmartCli, waitFor, type TestWorld } from './helpers/world';

const LAYOUT: Layout = {
  'sw-a': [
    { site: 'dc1', db: 'idb_a' },
    { site: 'dc2', db: 'idb_a' },
  ],
  'sw-b': [
    { site: 'dc1', db: 'idb_b' },
    { site: 'dc2', db: 'idb_b' },
  ],
};
const DIFFERING = ['etl.maxCallSeconds', 'sources.sw-b'];

describe('configuration that differs between sites', { timeout: 420_000 }, () => {
  let w: TestWorld;
  let other: string;
  after(async () => w?.close());
  before(async () => {
    w = await openWorld('config-match', { layout: LAYOUT });
    // dc2's own file: sw-b's members in the other order, another fact rule, other tuning.
    const doc = parse(readFileSync(configFile(w.state), 'utf8'));
    doc.sources['sw-b'].reverse();
    doc.etl = { ...doc.etl, maxCallSeconds: 3600, chunkRows: 7_000 };
    other = join(w.state.root, 'dc2-own.yaml');
    writeFileSync(other, stringify(doc));
  });

  const dr = () => w.client.workflow.getHandle(DR_WORKFLOW_ID);
  const update = (name: keyof typeof drUpdates, payload: unknown) => dr().executeUpdate(drUpdates[name], { args: [payload] });

  it(
    'shows in the DR status, `twinmart status` and the operations view, naming the keys',
    step(async () => {
      await stopWorker(w.state, 'dc2');
      startWorker(w.state, 'dc2', process.env, other);
      const s = await waitFor('the DR status naming the differing keys', async () => {
        const st = await dr().query(drStatusQuery);
        return st.configuration?.differing.length ? st : false;
      }, 60_000);
      assert.deepEqual(s.configuration!.differing, DIFFERING, 'tuning (chunkRows) and URLs may differ');
      assert.notEqual(s.configuration!.digests.dc1, s.configuration!.digests.dc2);
      assert.ok(s.timeline.some((t) => t.step === 'configuration-differs'));

      const stdout = await twinmartCli(w, ['status']);
      assert.match(stdout, /ERROR: configuration differs between dc1, dc2 in etl\.maxCallSeconds, sources\.sw-b/);

      const res = await fetch(`http://127.0.0.1:${w.config.sites.dc1!.reportingPort}/api/ops`);
      const ops = (await res.json()) as { dr: { configuration?: { differing: string[] } } };
      assert.deepEqual(ops.dr.configuration?.differing, DIFFERING);
    }),
  );

  it(
    'makes a reintroduction refuse to start until the files agree',
    step(async () => {
      await failSite(w.state, 'dc2');
      await update('declareSiteFailure', { site: 'dc2', reason: 'test' });
      await waitFor('failover of dc2 complete', async () => (await dr().query(drStatusQuery)).phase === 'degraded', 90_000);

      await startSiteDatabases(w.state, 'dc2', silentLogger);
      startWorker(w.state, 'dc2', process.env, other);
      await update('siteRebuilt', { site: 'dc2' });
      const refused = await waitFor('the reintroduction refused', async () => {
        const st = await dr().query(drStatusQuery);
        return st.lastError ? st : false;
      }, 60_000);
      assert.match(refused.lastError!, /configuration of dc2 differs from dc1's in etl\.maxCallSeconds, sources\.sw-b/);
      assert.equal(refused.sites.dc2, 'failed', 'nothing of the rebuilt site was touched');
      assert.equal(refused.phase, 'degraded');
      assert.ok(!refused.timeline.some((t) => t.step === 'rebuild-declared'));

      await stopWorker(w.state, 'dc2');
      startWorker(w.state, 'dc2');
      await update('retry', {});
      await waitFor('the reintroduction done once the files agree', async () => {
        const st = await dr().query(drStatusQuery);
        if (st.lastError) throw new Error(st.lastError);
        return st.phase === 'normal' && st.sites.dc2 === 'active';
      }, 180_000);
    }),
  );
});
