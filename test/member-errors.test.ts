/**
 * A member whose IDB answers with an error that no retry mends (here a revoked grant,
 * 42501) is reported with that error and skipped for the cycle, like an unreachable one;
 * the rest of the site goes on. Retried as a crash, it held back its site's transform.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { IDB_READER } from '../src/dev/roles';
import { configFile, startWorker, stopWorker, type Layout } from '../src/dev/world';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { etlWorkflowId } from '../src/workflows/names';
import { openWorld, step, waitFor, type TestWorld } from './helpers/world';
import { unionCallEvents } from './helpers/truth';

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
const BROKEN = 'idb-b-dc2';

describe('a member with a permanent error', { timeout: 420_000 }, () => {
  let w: TestWorld;
  after(async () => w?.close());
  before(async () => {
    w = await openWorld('member-errors', { layout: LAYOUT });
  });

  /** Calls with a fact in dc1's mart, against the calls its members recorded. */
  const factsOf = async (memberIds: string[]) => {
    const calls = new Set([...(await unionCallEvents(w.config, w.pools, memberIds)).values()].map((r) => r.call_id));
    const { rows } = await w.mart('dc1').query<{ call_id: string }>('select call_id::text from interaction_fact');
    const have = new Set(rows.map((r) => r.call_id));
    return { calls: calls.size, missing: [...calls].filter((c) => !have.has(c)).length };
  };

  it(
    'is reported with its error and skipped, while the site loads and transforms the rest',
    step(async () => {
      const idb = w.db('dc2', 'idb_b');
      await idb.query(`revoke select on idb.call_event from ${IDB_READER}`);
      await runSim(w.config, { calls: 60, rate: 20, seed: 41, startTs: new Date(Date.now() - 1800_000) }, silentLogger);
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const status = await waitFor(`${BROKEN} reported with its error`, async () => {
        const s = await handle.query(etlStatusQuery);
        return s.members[BROKEN]?.state === 'error' && s;
      }, 60_000);
      assert.match(status.members[BROKEN]!.lastError ?? '', /42501/);
      assert.doesNotMatch(status.members[BROKEN]!.lastError ?? '', /postgres:\/\//, 'no URL in the error');
      const others = w.config.members.filter((m) => m.id !== BROKEN).map((m) => m.id);
      await waitFor('every call of the other members transformed at dc1', async () => {
        const f = await factsOf(others);
        return f.calls > 0 && f.missing === 0;
      }, 90_000);

      await idb.query(`grant select on idb.call_event to ${IDB_READER}`);
      await waitFor(`${BROKEN} read again once its grant is back`, async () => {
        const s = await handle.query(etlStatusQuery);
        return s.members[BROKEN]?.state === 'ok';
      }, 60_000);
    }),
  );

  it(
    'removed from the config, is dropped by the next run instead of failing every cycle',
    step(async () => {
      // dc1's worker restarts with sw-b's dc2 member gone from its file; its ETL run still names it.
      const doc = parse(readFileSync(configFile(w.state), 'utf8'));
      doc.sources['sw-b'] = doc.sources['sw-b'].filter((m: { id: string }) => m.id !== BROKEN);
      const file = join(w.state.root, 'dc1-without-member.yaml');
      writeFileSync(file, stringify(doc));
      await stopWorker(w.state, 'dc1');
      startWorker(w.state, 'dc1', process.env, file);
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const status = await waitFor(`dc1's ETL running without ${BROKEN}`, async () => {
        const s = await handle.query(etlStatusQuery);
        return !(BROKEN in s.members) && s;
      }, 60_000);
      await waitFor('dc1 cycling on', async () => (await handle.query(etlStatusQuery)).cycle > status.cycle + 3, 30_000);
      await runSim(w.config, { calls: 10, rate: 20, seed: 42, startTs: new Date(Date.now() - 900_000) }, silentLogger);
      await waitFor('the new calls transformed at dc1', async () => {
        const f = await factsOf(w.config.members.filter((m) => m.id !== BROKEN).map((m) => m.id));
        return f.missing === 0;
      }, 90_000);
    }),
  );
});
