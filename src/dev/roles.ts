/**
 * The database roles of a dev or test instance (README, Security): nothing twinmart runs
 * connects as the superuser. The instance trusts loopback connections (initdb --auth=trust),
 * so the boundary is what each role may do, not a password.
 */
import type { Client } from 'pg';
import { withPgClient } from '../db';
import { instanceUrl, type PgInstance } from './postgres';

/** Owns the mart and runs its migrations (and the DR seed, which rebuilds its keys). */
export const MART_OWNER = 'twinmart_owner';
/** Loads and transforms the mart. */
export const ETL_ROLE = 'twinmart_etl';
/** Reads the public mart tables, for the reporting service. */
export const REPORTING_ROLE = 'twinmart_reporting';
/** Reads the IDBs: USAGE on schema idb, SELECT on its tables. */
export const IDB_READER = 'twinmart_idb_reader';

const LOGIN_ROLES = [MART_OWNER, ETL_ROLE, REPORTING_ROLE, IDB_READER];

const asSuperuser = <T>(inst: PgInstance, db: string, fn: (c: Client) => Promise<T>): Promise<T> => withPgClient(instanceUrl(inst, db), fn);

/** Creates the login roles unless they exist; safe to call concurrently. */
export async function createRoles(inst: PgInstance): Promise<void> {
  await asSuperuser(inst, 'postgres', async (c) => {
    // Roles are cluster-wide: two creators racing serialise on this lock.
    await c.query('begin');
    await c.query(`select pg_advisory_xact_lock(hashtext('twinmart roles'))`);
    for (const role of LOGIN_ROLES) {
      const { rowCount } = await c.query('select 1 from pg_roles where rolname = $1', [role]);
      // Names from the constant list above; LOGIN in case migration 008 made one NOLOGIN.
      await c.query(rowCount ? `alter role ${role} login` : `create role ${role} login`);
    }
    await c.query('commit');
  });
}

/** Lets the IDB reader read an IDB database and nothing more (PUBLIC keeps CONNECT only). */
export async function grantIdbReader(inst: PgInstance, db: string): Promise<void> {
  await asSuperuser(inst, db, async (c) => {
    await c.query(`revoke temporary on database "${db}" from public`);
    await c.query(`grant usage on schema idb to ${IDB_READER}`);
    await c.query(`grant select on all tables in schema idb to ${IDB_READER}`);
    await c.query(`alter default privileges in schema idb grant select on tables to ${IDB_READER}`);
  });
}
