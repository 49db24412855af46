/**
 * Seeds a rebuilt mart from a surviving one: staging, facts, work queues, cursors, gaps
 * and discards read in one REPEATABLE READ snapshot of the survivor and written in one
 * transaction of the target, so the copy is consistent and a crash leaves the target as
 * it was. Identity columns are left out, so the target draws surrogate keys of its own.
 * Like a restore, the keys and indexes are built once the rows are in, not row by row.
 */
import { pipeline } from 'node:stream/promises';
import type { Pool, PoolClient } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { COPY_FORMAT, withClient, withTransaction } from '../db';

/** What a mart holds that a survivor can give; the load audit and reporting role stay the target's own. */
export const SEEDED_TABLES = [
  'ctl_cursor',
  'ctl_data_gap',
  'ctl_discard',
  'stg_dss_session',
  'stg_call_event',
  'stg_agent_event',
  'etl_dirty_call',
  'etl_dirty_agent',
  'etl_dirty_source',
  'interaction_fact',
  'agent_state_fact',
  'ag_queue_15min',
  // What retention purged decides how the transform treats late events (migration 011).
  'ctl_purged_call',
  'ctl_purged_agent',
  // The keys the copied facts were computed with, so the target recomputes them if its own differ.
  'ctl_fact_dimensions',
] as const;

/** Column list from the catalog, without identity columns, quoted. */
async function copyColumns(client: PoolClient, table: string): Promise<string> {
  const { rows } = await client.query<{ name: string }>(
    `select quote_ident(column_name) as name from information_schema.columns
      where table_schema = current_schema() and table_name = $1 and is_identity = 'NO'
      order by ordinal_position`,
    [table],
  );
  if (!rows.length) throw new Error(`mart table ${table} not found`);
  return rows.map((r) => r.name).join(', ');
}

/**
 * The key constraints and indexes of the seeded tables, as the statements that drop them
 * and those that build them again (in that order: keys before the indexes, dropped the
 * other way round). Names and definitions come from the catalog of the migrated mart.
 */
async function keysAndIndexes(client: PoolClient): Promise<{ drop: string[]; build: string[] }> {
  const tables = [...SEEDED_TABLES];
  const keys = await client.query<{ tbl: string; name: string; def: string }>(
    `select conrelid::regclass::text as tbl, quote_ident(conname) as name, pg_get_constraintdef(oid) as def
       from pg_constraint where contype in ('p', 'u') and conrelid = any($1::regclass[]) order by conname`,
    [tables],
  );
  const indexes = await client.query<{ name: string; def: string }>(
    `select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as def
       from pg_index i where indrelid = any($1::regclass[])
        and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
      order by 1`,
    [tables],
  );
  return {
    drop: [
      ...indexes.rows.map((i) => `drop index ${i.name}`),
      ...keys.rows.map((k) => `alter table ${k.tbl} drop constraint ${k.name}`),
    ],
    build: [...keys.rows.map((k) => `alter table ${k.tbl} add constraint ${k.name} ${k.def}`), ...indexes.rows.map((i) => i.def)],
  };
}

export async function seedMart(source: Pool, target: Pool): Promise<Record<string, number>> {
  return withClient(source, async (src) => {
    await src.query('begin isolation level repeatable read read only');
    try {
      return await withTransaction(target, async (dst) => {
        await dst.query(`truncate ${SEEDED_TABLES.join(', ')} restart identity`);
        const { drop, build } = await keysAndIndexes(dst);
        for (const sql of drop) await dst.query(sql);
        const copied: Record<string, number> = {};
        for (const table of SEEDED_TABLES) {
          const columns = await copyColumns(dst, table);
          const sink = dst.query(copyFrom(`copy ${table} (${columns}) from stdin ${COPY_FORMAT}`));
          await pipeline(src.query(copyTo(`copy (select ${columns} from ${table}) to stdout ${COPY_FORMAT}`)), sink);
          copied[table] = Number(sink.rowCount ?? 0);
        }
        for (const sql of build) await dst.query(sql);
        return copied;
      });
    } finally {
      await src.query('rollback').catch(() => {});
    }
  });
}
