/**
 * An IDB that is not the database the cursor was read from. A base-backup restore keeps
 * idb.meta's incarnation and rewinds the xid counter, so the xids the collectors use next
 * fall inside what the cursor counts as read; a hot standby's pg_current_snapshot() lists
 * no running xids, so transactions open at extraction time count as read. Both lost rows
 * without a word. Real servers: pg_basebackup, a server stop, a streaming standby.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { baseBackup, initInstance, removeInstance, restoreInstance, startInstance } from '../src/dev/postgres';
import { startWorker, stopWorker, type Layout } from '../src/dev/world';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { etlWorkflowId } from '../src/workflows/names';
import { openWorld, step, waitFor, type TestWorld } from './helpers/world';

const LAYOUT: Layout = {
  // One member, so nothing its partner holds hides what this one lost.
  'sw-r': [{ site: 'dc1', db: 'idb_r', instance: 'r1' }],
  'sw-s': [
    { site: 'dc1', db: 'idb_s', instance: 's1' },
    { site: 'dc2', db: 'idb_s', instance: 's2' },
  ],
};

describe('an IDB restored or replaced by a standby', { timeout: 600_000 }, () => {
  let w: TestWorld;
  after(async () => w?.close());
  before(async () => {
    w = await openWorld('idb-identity', { layout: LAYOUT });
  });

  const written: string[] = [];
  /** `n` calls, each committed in its own transaction (one xid each), all in one statement. */
  const writeCalls = async (n: number) => {
    const ids = Array.from({ length: n }, () => randomUUID());
    await w.db('r1', 'idb_r').query(
      `do $$ declare c uuid; begin
         foreach c in array $1::uuid[] loop
           insert into idb.call_event (call_id, seq, source_id, event, event_ts, media, direction)
           values (c, 1, 'sw-r', 'created', now(), 'voice', 'inbound');
           commit;
         end loop; end $$`.replace('$1', `'{${ids.join(',')}}'`),
    );
    written.push(...ids);
  };
  const missingAt = async (site: string) => {
    const { rows } = await w.mart(site).query<{ n: number }>(
      `select count(*)::int as n from unnest($1::uuid[]) c where not exists (select 1 from stg_call_event s where s.call_id = c)`,
      [written],
    );
    return rows[0]!.n;
  };
  const allStaged = (what: string) =>
    waitFor(what, async () => {
      const missing = { dc1: await missingAt('dc1'), dc2: await missingAt('dc2') };
      if (missing.dc1 || missing.dc2) throw new Error(`calls missing: ${JSON.stringify(missing)}`);
      return true;
    }, 60_000);

  it(
    'reads what the collectors write after a base-backup restore, whose xids the cursor had counted as read',
    step(async () => {
      await writeCalls(5);
      await allStaged('the first calls staged at both sites');
      const backup = join(w.state.root, 'backup-r1');
      await baseBackup(w.state.pg.r1!, backup);
      await writeCalls(30); // after the backup: lost with the restore, their xids used again
      await allStaged('the calls written after the backup staged at both sites');

      // The ETL is down while the DBA restores and the collector writes: its first look
      // at the IDB is after the xid counter passed the cursor again.
      for (const site of ['dc1', 'dc2']) await stopWorker(w.state, site);
      await restoreInstance(w.state.pg.r1!, backup);
      await writeCalls(60);
      for (const site of ['dc1', 'dc2']) startWorker(w.state, site);
      await allStaged('every call written after the restore staged at both sites');

      const { rows } = await w.mart('dc1').query<{ reset_reason: string }>(
        `select reset_reason from ctl_load_audit where member_id = 'idb-r-dc1' and reset_reason is not null`,
      );
      assert.equal(rows.length, 1, 'one reset, when the restore was first seen');
      assert.match(rows[0]!.reset_reason, /restored/);
    }),
  );

  it(
    'refuses a hot standby with an error naming the member, and goes on with the rest',
    step(async () => {
      const standby = w.state.pg.s2!;
      await removeInstance(standby);
      await baseBackup(w.state.pg.s1!, standby.dataDir, { standby: true });
      await initInstance(standby); // the copy carries its primary's port
      await startInstance(standby);
      const handle = w.client.workflow.getHandle(etlWorkflowId('dc1'));
      const status = await waitFor('idb-s-dc2 reported as a hot standby', async () => {
        const s = await handle.query(etlStatusQuery);
        return s.members['idb-s-dc2']?.state === 'error' && s;
      }, 60_000);
      assert.match(status.members['idb-s-dc2']!.lastError ?? '', /idb-s-dc2 is a hot standby.*primary/);
      assert.equal(status.members['idb-s-dc1']?.state, 'ok');
      await writeCalls(3);
      await allStaged('the other set still staged at both sites');
    }),
  );
});
