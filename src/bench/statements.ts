/**
 * Where the database time goes: pg_stat_statements on every site instance, reset before
 * a phase and read after it, each statement put in a stage by what it touches. Times
 * are server-side execution times summed over all connections, so with members loaded
 * in parallel they add up to more than the wall-clock time.
 */
import type { BenchWorld } from './world';
import { round } from './util';

/** First match wins; the stage's group is the text before the colon. */
const RULES: [RegExp, string][] = [
  [/^copy \(\s*select .* from idb\.(call|agent)_event/, 'idb read: COPY out of the IDB'],
  [/^copy tmp_/, 'copy in: COPY into the temp table'],
  [/^copy bench_raw_/, 'copy in: raw COPY into a scratch table'],
  [/insert into stg_call_event/, 'merge: call events into staging'],
  [/insert into stg_agent_event/, 'merge: agent events into staging'],
  [/insert into ctl_discard .*from tmp_/, 'merge: row checks (ctl_discard)'],
  [/discard_reason/, 'transform: discards'],
  [/tmp_group_delta|ag_queue_15min/, 'transform: ag_queue_15min'],
  [/interaction_fact/, 'transform: interaction_fact'],
  [/agent_state_fact|tmp_span|tmp_dirty_agent|etl_dirty_agent/, 'transform: agent_state_fact'],
  [/etl_dirty_call|tmp_dirty_call/, 'transform: claim dirty calls'],
  [/stg_dss_session/, 'load bookkeeping: sessions'],
  [/ctl_data_gap|etl_dirty_source/, 'transform: data gaps'],
  [/pg_current_snapshot/, 'idb read: snapshot'],
  [/idb\.dss_session/, 'idb read: sessions'],
  [/set_config\('twinmart\./, 'idb read: parameters'],
  [/ctl_cursor/, 'load bookkeeping: cursor'],
  [/ctl_load_audit/, 'load bookkeeping: audit'],
  [/tmp_(call|agent)_event/, 'load bookkeeping: temp tables'],
  [/^commit/, 'commit'],
  [/^(begin|rollback|start transaction)/, 'transaction control'],
];

export function classify(query: string): string {
  const q = query.toLowerCase().replace(/\s+/g, ' ').trim();
  for (const [re, name] of RULES) if (re.test(q)) return name;
  return 'other';
}

export interface StageTime {
  stage: string;
  group: string;
  ms: number;
  calls: number;
  rows: number;
}

export interface StatementProfile {
  /** Sum of server execution time over the phase, all connections and databases. */
  totalMs: number;
  /** Per database role (mart, idb, scratch) and stage. */
  byDatabase: Record<string, { totalMs: number; stages: StageTime[] }>;
  /** Per stage group over every database, largest first. */
  groups: { group: string; ms: number; share: number }[];
  /** The most expensive statements, abbreviated. */
  top: { stage: string; database: string; ms: number; calls: number; query: string }[];
}

export async function resetStatements(w: BenchWorld): Promise<void> {
  if (!w.statements) return;
  await Promise.all(Object.keys(w.config.sites).map((s) => w.admin(s).query('select pg_stat_statements_reset()')));
}

/**
 * Reads the statements since the last reset. `roleOf` names a database's role (its
 * name otherwise); statements of the `postgres` database (the bench's own reads) are left out.
 */
export async function readStatements(
  w: BenchWorld,
  roleOf: (database: string, site: string) => string = worldRoles(w),
): Promise<StatementProfile | null> {
  if (!w.statements) return null;
  const rows: { datname: string; query: string; calls: string; ms: number; rows: string; site: string }[] = [];
  for (const site of Object.keys(w.config.sites)) {
    const r = await w.admin(site).query<{ datname: string; query: string; calls: string; ms: number; rows: string }>(
      `select d.datname, s.query, s.calls::text, s.total_exec_time::float8 as ms, s.rows::text
         from pg_stat_statements s join pg_database d on d.oid = s.dbid
        where d.datname <> 'postgres'`,
    );
    rows.push(...r.rows.map((x) => ({ ...x, site })));
  }
  const byDatabase: StatementProfile['byDatabase'] = {};
  const groups = new Map<string, number>();
  let totalMs = 0;
  for (const r of rows) {
    const role = roleOf(r.datname, r.site);
    const stage = classify(r.query);
    const group = stage.split(':')[0]!;
    const db = (byDatabase[role] ??= { totalMs: 0, stages: [] });
    let st = db.stages.find((x) => x.stage === stage);
    if (!st) db.stages.push((st = { stage, group, ms: 0, calls: 0, rows: 0 }));
    st.ms += r.ms;
    st.calls += Number(r.calls);
    st.rows += Number(r.rows);
    db.totalMs += r.ms;
    groups.set(group, (groups.get(group) ?? 0) + r.ms);
    totalMs += r.ms;
  }
  for (const db of Object.values(byDatabase)) {
    db.totalMs = round(db.totalMs, 1);
    db.stages.sort((a, b) => b.ms - a.ms);
    for (const s of db.stages) s.ms = round(s.ms, 1);
  }
  const top = rows
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 8)
    .map((r) => ({
      stage: classify(r.query),
      database: roleOf(r.datname, r.site),
      ms: round(r.ms, 1),
      calls: Number(r.calls),
      query: r.query.replace(/\s+/g, ' ').trim().slice(0, 140),
    }));
  return {
    totalMs: round(totalMs, 1),
    byDatabase,
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, ms]) => ({ group, ms: round(ms, 1), share: totalMs ? round(ms / totalMs, 3) : 0 })),
    top,
  };
}

/** Role of a database in a bench world: its mart, a scratch database of the bench, or an IDB. */
export function worldRoles(w: BenchWorld): (database: string, site: string) => string {
  const idbs = new Set(w.config.members.map((m) => decodeURIComponent(new URL(m.url).pathname.slice(1))));
  return (db, site) => (db === 'twinmart_mart' ? `mart ${site}` : idbs.has(db) ? 'idb' : db.startsWith('bench_') ? 'scratch' : db);
}

/** Server execution time of one role's statements since the last reset, in ms (null without pg_stat_statements). */
export async function databaseMs(w: BenchWorld, roles: string[]): Promise<number | null> {
  const p = await readStatements(w);
  if (!p) return null;
  return round(
    roles.reduce((a, r) => a + (p.byDatabase[r]?.totalMs ?? 0), 0),
    1,
  );
}

export interface WaitProfile {
  /** Samples of active backends per database role. */
  samples: Record<string, number>;
  /** Per role: share of active-backend samples by wait ("running" = on CPU or not waiting), largest first. */
  waits: Record<string, { wait: string; share: number }[]>;
}

/**
 * Samples pg_stat_activity of every site instance every `everyMs` until stopped: what the
 * active backends of each database role wait on (Lock: another transaction's rows or keys;
 * ClientRead: the client, as in COPY FROM STDIN; IO; nothing: running).
 */
export function sampleWaits(w: BenchWorld, everyMs = 50): { stop(): Promise<WaitProfile> } {
  const roleOf = worldRoles(w);
  const counts = new Map<string, Map<string, number>>();
  let running = true;
  const loops = Object.keys(w.config.sites).map(async (site) => {
    const pool = w.admin(site);
    while (running) {
      const t = Date.now();
      try {
        const { rows } = await pool.query<{ datname: string; wait: string | null }>(
          `select datname, wait_event_type || ':' || wait_event as wait
             from pg_stat_activity
            where state = 'active' and backend_type = 'client backend' and pid <> pg_backend_pid() and datname <> 'postgres'`,
        );
        for (const r of rows) {
          const role = roleOf(r.datname, site);
          const m = counts.get(role) ?? new Map<string, number>();
          const k = r.wait ?? 'running';
          m.set(k, (m.get(k) ?? 0) + 1);
          counts.set(role, m);
        }
      } catch {
        // a sample lost; the profile is statistical anyway
      }
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - t))));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const samples: WaitProfile['samples'] = {};
      const waits: WaitProfile['waits'] = {};
      for (const [role, m] of counts) {
        const n = [...m.values()].reduce((a, b) => a + b, 0);
        samples[role] = n;
        waits[role] = [...m.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 6)
          .map(([wait, c]) => ({ wait, share: round(c / n, 3) }));
      }
      return { samples, waits };
    },
  };
}
