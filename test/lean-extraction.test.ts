/**
 * Lean extraction (etl.extraction: lean) on a real two-site world: each site reads its
 * own member of a set in full and the partner across the WAN as keys and checksums. With
 * members that disagree on some events, collector gaps, a member stopped and restarted,
 * late commits and malformed rows, both marts stage what the IDBs say the best-quality
 * rule keeps, with the right facts, and each member but the one read in full costs under
 * half a copy of each event.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { compareMarts } from '../src/parity';
import { byteCounter } from '../src/db';
import { startInstance, stopInstance } from '../src/dev/postgres';
import { siteBandwidth } from '../src/etl/bandwidth';
import { copyAllSql, EVENT_TABLES } from '../src/sources/idb';
import { etlStatusQuery, pauseUpdate, resumeUpdate } from '../src/workflows/etl-messages';
import { etlWorkflowId } from '../src/workflows/names';
import { openWorld, settled, step, waitFor, type TestWorld } from './helpers/world';
import {
  auditedRows,
  diffFacts,
  expectedFacts,
  idbRows,
  keptVersions,
  martFacts,
  martKeys,
  stagedVersions,
  unionCallEvents,
  unusableRows,
} from './helpers/truth';

const SITES = ['dc1', 'dc2'];
const LAYOUT = {
  // idb_a at dc1 has a PostgreSQL server of its own, so it can stop without its site.
  'sw-a': [
    { site: 'dc1', db: 'idb_a', instance: 'm-a-dc1' },
    { site: 'dc2', db: 'idb_a' },
  ],
  // Best at dc2: dc1 loads its own worse copy first, then takes the better one over by checksum.
  'sw-b': [
    { site: 'dc2', db: 'idb_b' },
    { site: 'dc1', db: 'idb_b' },
  ],
  // Wholly at dc2: dc1 reads one member in full across the WAN and the other lean.
  'sw-c': [
    { site: 'dc2', db: 'idb_c1' },
    { site: 'dc2', db: 'idb_c2' },
  ],
};

const status = (w: TestWorld, site: string) => w.client.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery);

/** Every event of the IDBs the marts may stage is staged in both. */
async function allStaged(w: TestWorld): Promise<boolean> {
  const union = await unionCallEvents(w.config, w.pools);
  const unusable = unusableRows(union.values());
  const stageable = [...union.keys()].filter((k) => !['unknown event', 'in the future'].includes(unusable.get(k)!));
  for (const site of SITES) {
    const keys = await martKeys(w.mart(site));
    if (keys.size !== stageable.length || stageable.some((k) => !keys.has(k))) return false;
  }
  return true;
}

/** COPY bytes of one full copy of an event, as the full extraction reads it: every row of one member over its rows. */
async function fullRowBytes(w: TestWorld, memberId: string): Promise<number> {
  const member = w.config.members.find((m) => m.id === memberId)!;
  const client = await w.pools.get(member.url).connect();
  try {
    let bytes = 0;
    let rows = 0;
    for (const table of EVENT_TABLES) {
      const counter = byteCounter();
      await pipeline(client.query(copyTo(copyAllSql(table))), counter.stream, new Writable({ write: (_c, _e, done) => done() }));
      bytes += counter.bytes();
      rows += Number((await client.query<{ n: string }>(`select count(*) as n from idb.${table}`)).rows[0]!.n);
    }
    return bytes / rows;
  } finally {
    client.release();
  }
}

async function settle(w: TestWorld): Promise<void> {
  await waitFor('both marts to stage every event', () => allStaged(w), 60_000);
  for (const site of SITES) await waitFor(`${site} to settle`, () => settled(w, site));
}

describe('lean extraction on a real two-site world', { timeout: 150_000 }, () => {
  let w: TestWorld;
  const simStart = new Date(Date.now() - 10 * 86_400_000);

  after(() => w?.close());
  before(async () => {
    w = await openWorld('lean-extraction', { layout: LAYOUT, etl: { extraction: 'lean' } });
  });

  it(
    'reads one member of a set in full, the local one where there is one, and the others under half a copy per event',
    step(async (t: { diagnostic: (message: string) => void }) => {
      // The ETLs wait while the traffic is written, so the marts catch up on what both
      // partners hold: a partner's rows that its local member has not staged yet (its IDB
      // ahead of the other's) are read in full, which is right but not what this measures.
      // Paused, not stopped: a worker stopped between the two reads of a cycle has the
      // partner's read retried after the traffic, when the local one read nothing of it.
      const etl = (site: string) => w.client.workflow.getHandle(etlWorkflowId(site));
      for (const site of SITES) await etl(site).executeUpdate(pauseUpdate, { args: [{}] });
      await runSim(
        w.config,
        {
          calls: 400,
          rate: 2,
          seed: 31,
          startTs: simStart,
          divergent: 0.05,
          gaps: [
            { memberId: 'idb-a-dc2', afterCalls: 60, calls: 40 },
            { memberId: 'idb-b-dc1', afterCalls: 150, calls: 40 },
          ],
          lateCommits: [{ memberId: 'idb-b-dc2', afterCalls: 200, calls: 30, holdMs: 1500 }],
          malformed: { unknownEvent: 3, outOfOrder: 3, absurdDuration: 3 },
        },
        silentLogger,
      );
      for (const site of SITES) await etl(site).executeUpdate(resumeUpdate, { args: [{}] });
      await settle(w);
      const full = await fullRowBytes(w, 'idb-a-dc1');
      for (const site of SITES) {
        const members = Object.entries((await status(w, site)).members);
        for (const sourceId of new Set(members.map(([, m]) => m.sourceId))) {
          const set = members.filter(([, m]) => m.sourceId === sourceId);
          const local = set.filter(([, m]) => m.site === site).length;
          const b = siteBandwidth(site, Object.fromEntries(set));
          const detail = `${site}, ${sourceId}: ${JSON.stringify(b)}, full copy ${full.toFixed(1)} B`;
          t.diagnostic(detail);
          // One member in full (the local one where there is one; COPY framing aside), each other one
          // as keys and checksums plus the rows that differ: under half a copy.
          const lean = (n: number) => (n * full) / 2;
          const first = full * 1.05;
          assert.ok(b.localBytesPerEvent! <= (local ? first + lean(local - 1) : 0), `local bytes: ${detail}`);
          assert.ok(b.remoteBytesPerEvent! <= (local ? lean(set.length - local) : first + lean(set.length - 1)), `remote bytes: ${detail}`);
        }
      }
    }),
  );

  it(
    'keeps, in both marts, the version the best-quality rule picks from the IDBs, through a member stopped and restarted',
    step(async () => {
      const inst = w.state.pg['m-a-dc1']!;
      await stopInstance(inst, 'immediate');
      await runSim(w.config, { calls: 100, rate: 2, seed: 32, startTs: new Date(simStart.getTime() + 86_400_000), divergent: 0.05 }, silentLogger);
      for (const site of SITES) {
        await waitFor(`${site} sees idb-a-dc1 down`, async () => (await status(w, site)).members['idb-a-dc1']?.state === 'unreachable');
      }
      await startInstance(inst);
      await runSim(w.config, { calls: 100, rate: 2, seed: 33, startTs: new Date(simStart.getTime() + 2 * 86_400_000), divergent: 0.05 }, silentLogger);
      await settle(w);

      const union = await unionCallEvents(w.config, w.pools);
      const unusable = unusableRows(union.values());
      const expected = expectedFacts(union.values(), new Set(unusable.keys()));
      const kept = await keptVersions(w.config, w.pools);
      for (const site of SITES) {
        const staged = await stagedVersions(w.mart(site));
        const wrong = [...staged].filter(([k, v]) => kept.get(k)?.member !== v.member || kept.get(k)?.hash !== v.hash);
        assert.deepEqual(wrong.slice(0, 3), [], `${site}: staged the version the IDBs say is kept (${wrong.length} not)`);
        assert.deepEqual(diffFacts(expected, await martFacts(w.mart(site))), [], `${site}: facts match the IDBs`);
        for (const m of w.config.members) {
          assert.equal(await auditedRows(w.mart(site), m.id), await idbRows(w.config, w.pools, m.id), `${site}: ${m.id} loaded once`);
        }
      }
      assert.ok([...kept.values()].some((v) => v.member.endsWith('dc2')) && [...kept.values()].some((v) => v.member.endsWith('dc1')));
      const divergent = await w.mart('dc1').query<{ n: string }>(`select count(*) as n from stg_call_event where attrs ? 'recordedBy'`);
      assert.ok(Number(divergent.rows[0]!.n) > 0, 'the members disagreed on some events');
      const agents = await Promise.all(SITES.map((site) => w.mart(site).query(
        `select source_id, agent_id, seq, event, event_ts, reason, member_id, quality from stg_agent_event order by 1, 2, 3`,
      )));
      const agentKeys = new Set<string>();
      for (const m of w.config.members) {
        const { rows } = await w.pools.get(m.url).query<{ k: string }>(`select source_id || '/' || agent_id || '/' || seq as k from idb.agent_event`);
        for (const r of rows) agentKeys.add(r.k);
      }
      assert.ok(agentKeys.size > 0);
      assert.equal(agents[0]!.rows.length, agentKeys.size, 'every agent event of the IDBs staged once');
      assert.deepEqual(agents[0]!.rows, agents[1]!.rows, 'both marts keep the same agent events');
      const report = await compareMarts({ name: 'dc1', pool: w.mart('dc1') }, { name: 'dc2', pool: w.mart('dc2') }, { closedBefore: new Date() });
      assert.equal(report.match, true, JSON.stringify(report.mismatches.slice(0, 3)));
    }),
  );
});
