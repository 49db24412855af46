/**
 * A member IDB whose server is paused, not stopped (SIGSTOP on its postmaster and every
 * backend: what a network that silently drops packets looks like to a client). Its
 * kernel still accepts connections and acknowledges packets, so only the ETL's own
 * timeouts can tell. Without them the extraction waited for ever, and with it the site's
 * transform.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Layout } from '../src/dev/world';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { etlWorkflowId } from '../src/workflows/names';
import { openWorld, step, waitFor, type TestWorld } from './helpers/world';

const LAYOUT: Layout = {
  'sw-p': [
    { site: 'dc1', db: 'idb_p', instance: 'p1' },
    { site: 'dc2', db: 'idb_p', instance: 'p2' },
  ],
  'sw-q': [
    { site: 'dc1', db: 'idb_q' },
    { site: 'dc2', db: 'idb_q' },
  ],
};
const PAUSED = 'idb-p-dc1';

describe('a paused IDB server', { timeout: 420_000 }, () => {
  let w: TestWorld;
  let paused: number[] = [];
  const signal = (sig: 'STOP' | 'CONT') => {
    if (paused.length) execFileSync('kill', [`-${sig}`, ...paused.map(String)]);
  };
  after(async () => {
    signal('CONT');
    await w?.close();
  });
  before(async () => {
    w = await openWorld('idb-paused', { layout: LAYOUT, etl: { idbTimeoutSeconds: 3 } });
  });

  /** Writes one call to each named (instance, database) and returns its id. */
  const writeCall = async (where: [string, string][], sourceId: string) => {
    const id = randomUUID();
    for (const [instance, db] of where) {
      await w.db(instance, db).query(
        `insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
         values ($1, 1, $2, 'created', now(), 'voice', 'inbound')`,
        [id, sourceId],
      );
    }
    return id;
  };
  const transformedAt = (site: string, ids: string[], what: string) =>
    waitFor(what, async () => {
      const { rows } = await w.mart(site).query<{ n: number }>(
        'select count(*)::int as n from interaction_fact where call_id = any($1::uuid[])',
        [ids],
      );
      if (rows[0]!.n !== ids.length) throw new Error(`${rows[0]!.n} of ${ids.length} calls transformed at ${site}`);
      return true;
    }, 45_000);

  it(
    'lets the site go on without it, and reads it again once it is resumed',
    step(async () => {
      const first = [await writeCall([['p1', 'idb_p'], ['p2', 'idb_p']], 'sw-p')];
      await transformedAt('dc1', first, 'a first call transformed at dc1');

      const postmaster = Number(readFileSync(join(w.state.pg.p1!.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' });
      paused = [postmaster, ...children.split('\n').map((s) => Number(s.trim())).filter(Boolean)];
      signal('STOP');

      const meanwhile = [
        await writeCall([['dc1', 'idb_q'], ['dc2', 'idb_q']], 'sw-q'),
        await writeCall([['p2', 'idb_p']], 'sw-p'),
      ];
      for (const site of ['dc1', 'dc2']) await transformedAt(site, meanwhile, `the other members' calls transformed at ${site}`);
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const status = await handle.query(etlStatusQuery);
      assert.equal(status.members[PAUSED]?.state, 'unreachable', `${PAUSED}: ${JSON.stringify(status.members[PAUSED])}`);
      assert.match(status.members[PAUSED]!.lastError ?? '', /did not answer within 3 s|timed out|timeout/);

      signal('CONT');
      paused = [];
      const later = [await writeCall([['p1', 'idb_p']], 'sw-p')];
      for (const site of ['dc1', 'dc2']) await transformedAt(site, later, `a call only ${PAUSED} holds transformed at ${site} after SIGCONT`);
      await waitFor(`${PAUSED} ok again`, async () => (await handle.query(etlStatusQuery)).members[PAUSED]?.state === 'ok', 30_000);
    }),
  );
});
