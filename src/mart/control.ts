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

/** Whether the transform has nothing left to do and no chunked load is half committed. */
export async function loadBacklog(db: Queryable): Promise<{ dirty: number; pendingChunks: number }> {
  const { rows } = await db.query<{ dirty: string; pending: string }>(
    `select (select count(*) from etl_dirty_call) + (select count(*) from etl_dirty_agent) as dirty,
            (select count(*) from ctl_cursor where pending_snapshot is not null) as pending`,
  );
  return { dirty: Number(rows[0]!.dirty), pendingChunks: Number(rows[0]!.pending) };
}
