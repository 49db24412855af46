/**
 * The mart's control rows the DR workflow reads and writes: the reporting role, and
 * what the data-loss report needs to know about each source.
 */
import type { Queryable } from '../db';

export type ReportingRole = 'active' | 'standby';

export async function setReportingRole(db: Queryable, role: ReportingRole, activeSite: string): Promise<void> {
  await db.query(
    `insert into ctl_reporting (role, active_site) values ($1, $2)
     on conflict (singleton) do update set role = excluded.role, active_site = excluded.active_site, changed_at = now()
     where (ctl_reporting.role, ctl_reporting.active_site) is distinct from (excluded.role, excluded.active_site)`,
    [role, activeSite],
  );
}

/** A mart's first role: the configured primary serves, the others wait. Never overrides a role the DR set. */
export async function initReportingRole(db: Queryable, site: string, primary: string): Promise<void> {
  await db.query(
    `insert into ctl_reporting (role, active_site) values ($1, $2) on conflict (singleton) do nothing`,
    [site === primary ? 'active' : 'standby', primary],
  );
}

export async function readReportingRole(db: Queryable): Promise<{ role: ReportingRole; activeSite: string } | null> {
  const { rows } = await db.query<{ role: ReportingRole; active_site: string }>('select role, active_site from ctl_reporting');
  return rows[0] ? { role: rows[0].role, activeSite: rows[0].active_site } : null;
}

export interface SourceFacts {
  sourceId: string;
  lastEventTs: string | null;
  gaps: { start: string; end: string | null }[];
}

/** Per source: the newest event time this mart extracted (from its cursors) and the data gaps it recorded. */
export async function sourceFacts(db: Queryable, sourceIds: string[]): Promise<SourceFacts[]> {
  const { rows } = await db.query<{ source_id: string; last: Date | null; gaps: { start: string; end: string | null }[] }>(
    `select s.source_id,
            (select max(c.last_event_ts) from ctl_cursor c where c.source_id = s.source_id) as last,
            coalesce((select json_agg(json_build_object('start', g.gap_start, 'end', g.gap_end) order by g.gap_start)
                        from ctl_data_gap g where g.source_id = s.source_id), '[]') as gaps
       from unnest($1::text[]) as s (source_id)`,
    [sourceIds],
  );
  return rows.map((r) => ({ sourceId: r.source_id, lastEventTs: r.last?.toISOString() ?? null, gaps: r.gaps }));
}

/** Whether the transform has nothing left to do (calls, agents, sources whose data gaps to refresh) and no chunked load is half committed. */
export async function loadBacklog(db: Queryable): Promise<{ dirty: number; pendingChunks: number }> {
  const { rows } = await db.query<{ dirty: string; pending: string }>(
    `select (select count(*) from etl_dirty_call) + (select count(*) from etl_dirty_agent) + (select count(*) from etl_dirty_source) as dirty,
            (select count(*) from ctl_cursor where pending_snapshot is not null) as pending`,
  );
  return { dirty: Number(rows[0]!.dirty), pendingChunks: Number(rows[0]!.pending) };
}

export interface MemberLag {
  memberId: string;
  /** Rows on the member's IDB this mart had not read. */
  rowsBehind: number;
  /** How old this mart's last read of the member was when measured (0 with nothing unread, null if never read). */
  secondsBehind: number | null;
  lastReadAt: string | null;
  measuredAt: string;
}

/** Records the lag of every member measured now; a member not measured (unreachable) keeps its last row. */
export async function recordMemberLag(db: Queryable, lags: { memberId: string; rows: number; lastReadAt: Date | null }[]): Promise<void> {
  if (!lags.length) return;
  await db.query(
    `insert into ctl_member_lag (member_id, rows_behind, last_read_at, measured_at)
     select * , now() from unnest($1::text[], $2::bigint[], $3::timestamptz[])
     on conflict (member_id) do update
       set rows_behind = excluded.rows_behind, last_read_at = excluded.last_read_at, measured_at = excluded.measured_at`,
    [lags.map((l) => l.memberId), lags.map((l) => l.rows), lags.map((l) => l.lastReadAt)],
  );
}

/** The last measured lag of each of these members (absent: never measured). */
export async function readMemberLag(db: Queryable, memberIds: string[]): Promise<MemberLag[]> {
  const { rows } = await db.query<{ member_id: string; rows_behind: string; seconds: number | null; last_read_at: Date | null; measured_at: Date }>(
    `select member_id, rows_behind::text, last_read_at, measured_at,
            case when rows_behind = 0 then 0
                 else extract(epoch from measured_at - last_read_at)::float8 end as seconds
       from ctl_member_lag where member_id = any($1::text[]) order by member_id`,
    [memberIds],
  );
  return rows.map((r) => ({
    memberId: r.member_id,
    rowsBehind: Number(r.rows_behind),
    secondsBehind: r.seconds,
    lastReadAt: r.last_read_at?.toISOString() ?? null,
    measuredAt: r.measured_at.toISOString(),
  }));
}
