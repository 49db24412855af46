/**
 * Seeds a rebuilt mart from a surviving one: staging, facts, work queues, cursors, gaps
 * and discards read in one REPEATABLE READ snapshot of the survivor and written in one
 * transaction of the target, so the copy is consistent and a crash leaves the target as
 * it was. Identity columns are left out, so the target draws surrogate keys of its own.
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

export async function seedMart(source: Pool, target: Pool): Promise<Record<string, number>> {
  return withClient(source, async (src) => {
    await src.query('begin isolation level repeatable read read only');
    try {
      return await withTransaction(target, async (dst) => {
        await dst.query(`truncate ${SEEDED_TABLES.join(', ')} restart identity`);
        const copied: Record<string, number> = {};
        for (const table of SEEDED_TABLES) {
          const columns = await copyColumns(dst, table);
          const sink = dst.query(copyFrom(`copy ${table} (${columns}) from stdin ${COPY_FORMAT}`));
          await pipeline(src.query(copyTo(`copy (select ${columns} from ${table}) to stdout ${COPY_FORMAT}`)), sink);
          copied[table] = Number(sink.rowCount ?? 0);
        }
        return copied;
      });
    } finally {
      await src.query('rollback').catch(() => {});
    }
  });
}
