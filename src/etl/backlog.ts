/**
 * How far a mart is behind each member IDB: its cursor snapshot from the mart, and the
 * rows on the IDB not visible in it (an index range on xid). Unreachable: null.
 */
import type { Config, Member } from '../config';
import { withClient, type Pools } from '../db';
import { idbProbeSession, type SessionLimits } from '../db/sessions';
import { countBehind } from '../sources/idb';

export interface MemberCursor {
  member_id: string;
  snapshot: string;
  age: number | null;
  last_extract_at: Date | null;
  rows_total: string;
}

export async function martCursors(config: Config, pools: Pools, site: string): Promise<Map<string, MemberCursor>> {
  const { rows } = await pools.get(config.sites[site]!.mart, { connectionTimeoutMillis: 2000 }).query<MemberCursor>(
    `select member_id, snapshot::text, extract(epoch from now() - last_extract_at)::float8 as age, last_extract_at,
            rows_total::text
       from ctl_cursor`,
  );
  return new Map(rows.map((r) => [r.member_id, r]));
}

/** The count has a pool of its own (`applicationName`), so it never waits behind the ETL's loads. */
export async function rowsBehind(
  pools: Pools,
  limits: SessionLimits,
  memberUrl: string,
  snapshot: string,
  applicationName = 'twinmart-backlog',
): Promise<number | null> {
  try {
    const pool = pools.get(memberUrl, idbProbeSession({ ...limits, connectTimeoutSeconds: 2 }, applicationName));
    return await withClient(pool, (c) => countBehind(c, snapshot));
  } catch {
    return null;
  }
}

/**
 * Every configured member with the site's cursor of it (null: never extracted) and the
 * rows its IDB holds beyond that cursor (null: never extracted, or unreachable).
 */
export async function membersBehind(
  config: Config,
  pools: Pools,
  site: string,
): Promise<{ member: Member; cursor: MemberCursor | null; rows: number | null }[]> {
  const cursors = await martCursors(config, pools, site);
  // At once: an unreachable member costs its connect timeout, not the others' too.
  return Promise.all(
    config.members.map(async (member) => {
      const cursor = cursors.get(member.id) ?? null;
      return { member, cursor, rows: cursor && (await rowsBehind(pools, config.etl, member.url, cursor.snapshot)) };
    }),
  );
}
