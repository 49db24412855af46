/**
 * No twinmart process is the superuser: on a real world, the ETL loads as twinmart_etl,
 * reporting reads as twinmart_reporting, the IDBs are read as twinmart_idb_reader, the
 * migrations ran as the mart's owner, and each role does its job and cannot do more.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DatabaseError } from 'pg';
import { martOwnerUrl } from '../src/config';
import { silentLogger } from '../src/logger';
import { runSim } from '../src/sim';
import { openWorld, settled, step, waitFor, type TestWorld } from './helpers/world';
import { withPgClient } from './helpers/pg';

const insufficientPrivilege = (e: unknown) => e instanceof DatabaseError && e.code === '42501';

describe('database roles', { timeout: 180_000 }, () => {
  let w: TestWorld;
  after(() => w?.close());
  before(async () => {
    w = await openWorld('privilege', {
      layout: { 'sw-1': [{ site: 'dc1', db: 'idb_1a' }, { site: 'dc1', db: 'idb_1b' }] },
    });
    await runSim(w.config, { calls: 40, rate: 1000, seed: 3, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
    await waitFor('dc1 settled', () => settled(w, 'dc1'));
  });

  const site = () => w.config.sites.dc1!;
  const member = () => w.config.members[0]!;
  const refused = (url: string, sql: string) =>
    assert.rejects(withPgClient(url, (c) => c.query(sql)), insufficientPrivilege, `${sql} as ${new URL(url).username}`);

  it(
    'the ETL and the migrations ran as their own roles, none of them a superuser',
    step(async () => {
      const users = await w.mart('dc1').query<{ usename: string; application_name: string }>(
        `select distinct usename, application_name from pg_stat_activity where application_name like 'twinmart-%-dc1'`,
      );
      const byApp = new Map(users.rows.map((r) => [r.application_name, r.usename]));
      assert.equal(byApp.get('twinmart-load-dc1'), 'twinmart_etl');
      assert.equal(byApp.get('twinmart-transform-dc1'), 'twinmart_etl');
      const owner = await w.mart('dc1').query(`select tableowner from pg_tables where tablename = 'interaction_fact'`);
      assert.equal(owner.rows[0].tableowner, 'twinmart_owner');
      const supers = await w.mart('dc1').query(
        `select rolname from pg_roles where rolsuper and rolname like 'twinmart%'`,
      );
      assert.deepEqual(supers.rows, []);
      assert.equal((await w.mart('dc1').query('select count(*)::int as n from interaction_fact')).rows[0].n, 40);
    }),
  );

  it(
    'the reporting role reads the reports and cannot write, run programs or read the ETL\'s control tables',
    step(async () => {
      const url = site().reportingMart!;
      const range = `from=${new Date(Date.now() - 2 * 3600_000).toISOString()}&to=${new Date().toISOString()}`;
      const reply = await fetch(`http://127.0.0.1:${site().reportingPort}/api/queue-summary?${range}`);
      assert.equal(reply.status, 200, await reply.text());
      await withPgClient(url, (c) => c.query('select count(*) from interaction_fact, ctl_reporting'));
      await refused(url, `delete from interaction_fact`);
      await refused(url, `update ctl_reporting set role = 'active'`);
      await refused(url, `copy (select 1) to program 'true'`);
      await refused(url, `create table stolen (x int)`);
      await refused(url, `create temp table scratch (x int)`);
      await refused(url, `select * from ctl_cursor`);
      // A read-only session default is not the boundary: switching it off changes nothing.
      await refused(url, `set default_transaction_read_only = off; insert into ctl_discard default values`);
    }),
  );

  it(
    'the ETL role writes the mart but not its schema, programs or migrations',
    step(async () => {
      const url = site().mart;
      await refused(url, `create table stolen (x int)`);
      await refused(url, `copy (select 1) to program 'true'`);
      await refused(url, `delete from twinmart_migration`);
      await refused(url, `alter table interaction_fact add column x int`);
      await withPgClient(url, (c) => c.query(`select pg_advisory_lock(42), pg_advisory_unlock(42)`));
      assert.notEqual(url, martOwnerUrl(w.config, 'dc1'));
    }),
  );

  it(
    'the IDB reader reads the idb schema and cannot write an IDB',
    step(async () => {
      const url = member().url;
      const n = await withPgClient(url, (c) => c.query('select count(*)::int as n from idb.call_event'));
      assert.ok(n.rows[0].n > 0);
      await refused(url, `delete from idb.call_event`);
      await refused(url, `insert into idb.meta default values`);
      await refused(url, `create table public.stolen (x int)`);
      await refused(url, `create temp table scratch (x int)`);
      await refused(url, `copy (select 1) to program 'true'`);
    }),
  );
});
