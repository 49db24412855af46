/**
 * Applies the numbered SQL files in migrations/mart, each in its own transaction with
 * its ledger row, under an advisory lock so concurrent migrators (two workers of one
 * site starting together) serialise. Refuses a database that is ahead of the code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { withClient } from '../db';
import { migrationsDir } from '../paths';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

const LOCK_KEY = 'twinmart-mart-migrate';

export function loadMigrations(dir = migrationsDir('mart')): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ id: Number(f.slice(0, 3)), name: f, sql: readFileSync(join(dir, f), 'utf8') }));
}

export interface MigrateResult {
  applied: string[];
  version: number;
}

export async function migrateMart(pool: Pool, migrations = loadMigrations()): Promise<MigrateResult> {
  return withClient(pool, async (client) => {
    await client.query('select pg_advisory_lock(hashtext($1))', [LOCK_KEY]);
    try {
      await client.query(`create table if not exists twinmart_migration (
        id integer primary key, name text not null, applied_at timestamptz not null default now())`);
      const { rows } = await client.query<{ id: number }>('select id from twinmart_migration order by id');
      const done = new Set(rows.map((r) => r.id));
      const latest = migrations.at(-1)?.id ?? 0;
      const ahead = rows.filter((r) => r.id > latest);
      if (ahead.length) {
        throw new Error(
          `mart database has migration ${ahead.at(-1)!.id} but this code knows only up to ${latest}: ` +
            'upgrade twinmart before running it against this database',
        );
      }
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.id)) continue;
        await client.query('begin');
        try {
          await client.query('insert into twinmart_migration (id, name) values ($1, $2)', [m.id, m.name]);
          await client.query(m.sql);
          await client.query('commit');
        } catch (e) {
          await client.query('rollback');
          throw new Error(`migration ${m.name} failed: ${(e as Error).message}`);
        }
        applied.push(m.name);
      }
      return { applied, version: latest };
    } finally {
      await client.query('select pg_advisory_unlock(hashtext($1))', [LOCK_KEY]);
    }
  });
}
