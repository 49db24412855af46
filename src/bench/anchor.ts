/**
 * The push-based anchor of the freshness benchmark: PostgreSQL's own logical replication
 * of one member's call events into a subscriber database on the other site's mart
 * server, what a team would run if the collectors granted replication rights (and what
 * CDC tools build on). The freshness probes written into that member are watched in the
 * subscriber as in the marts, so twinmart's lag and the push-based lag of the same rows,
 * under the same load, come out of one run as a ratio.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Member } from '../config';
import { withPgClient as asSuperuser } from '../db';
import { instanceUrl } from '../dev/postgres';
import { layoutEntry, memberInstance } from '../dev/world';
import { repoRoot } from '../paths';
import type { BenchWorld } from './world';

const NAME = 'twinmart_anchor';

export interface Anchor {
  member: Member;
  /** The site whose mart server holds the subscriber. */
  site: string;
  /** Which of the given call ids the subscriber holds. */
  holds(callIds: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Publishes the first member's call events and subscribes to them from the other site's
 * mart instance (copy_data off: only what is committed from now on crosses, as for the
 * ETLs in the window). The member's instance must run with wal_level logical.
 */
export async function startAnchor(w: BenchWorld): Promise<Anchor> {
  const member = w.config.members[0]!;
  const site = Object.keys(w.config.sites).find((s) => s !== member.site) ?? member.site;
  const publisher = instanceUrl(w.state.pg[memberInstance(w.state, member.id)]!, layoutEntry(w.state, member.id).db);
  const admin = instanceUrl(w.state.pg[site]!, 'postgres');
  const subscriberUrl = instanceUrl(w.state.pg[site]!, NAME);
  await asSuperuser(publisher, (c) => c.query(`create publication ${NAME} for table idb.call_event`));
  await asSuperuser(admin, (c) => c.query(`create database ${NAME}`));
  await asSuperuser(subscriberUrl, async (c) => {
    await c.query(readFileSync(join(repoRoot, 'migrations', 'idb', '001_idb.sql'), 'utf8'));
    await c.query(`create subscription ${NAME} connection ${c.escapeLiteral(publisher)} publication ${NAME} with (copy_data = false)`);
  });
  const pool = w.db(site, NAME);
  // The subscription's worker starts asynchronously: ready once its slot streams.
  for (let i = 0; ; i++) {
    const { rows } = await pool.query<{ ok: boolean }>(`select exists (select 1 from pg_stat_subscription where subname = $1 and pid is not null) as ok`, [NAME]);
    if (rows[0]!.ok) break;
    if (i > 100) throw new Error(`the logical replication anchor's subscription did not start within 20 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    member,
    site,
    async holds(callIds) {
      const { rows } = await pool.query<{ call_id: string }>('select distinct call_id::text from idb.call_event where call_id = any($1::uuid[])', [callIds]);
      return rows.map((r) => r.call_id);
    },
    async stop() {
      await asSuperuser(subscriberUrl, (c) => c.query(`drop subscription if exists ${NAME}`)).catch(() => undefined);
      await asSuperuser(admin, (c) => c.query(`drop database if exists ${NAME} with (force)`)).catch(() => undefined);
      await asSuperuser(publisher, (c) => c.query(`drop publication if exists ${NAME}`)).catch(() => undefined);
    },
  };
}
