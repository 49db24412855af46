/**
 * CPU per event, for capacity planning per core: CPU seconds (user + system, from
 * /proc/<pid>/stat) of each component's process tree over a window, per 1,000 events the
 * data sources committed in it. A process tree counts its live processes and the children
 * they reaped (cutime, cstime), so a backend that exits within the window still counts.
 *
 * In the dev layout a site's mart and IDBs share one PostgreSQL instance: its backends are
 * told apart by database and application_name (pg_stat_activity), sampled at both ends of
 * the window; what no live backend accounts for (background processes: checkpointer, WAL
 * writer, autovacuum; sessions that ended in the window) is `postgresBackground`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MART_DB } from '../dev/world';
import type { BenchWorld } from './world';
import { round } from './util';

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture twinmart runs on. */
const TICKS_PER_SECOND = 100;

export const CPU_COMPONENTS = [
  'martEtl',
  'martOther',
  'idbEtlReads',
  'idbCollectors',
  'postgresBackground',
  'postgresTotal',
  'workers',
  'temporal',
  'simulator',
] as const;
export type CpuComponent = (typeof CPU_COMPONENTS)[number];

export interface CpuCost {
  windowSeconds: number;
  /** Distinct events the data sources committed in the window; each lands in both marts. */
  events: number;
  /** CPU seconds per 1,000 events, by component (both sites together). */
  cpuSecondsPer1000Events: Record<CpuComponent, number | null>;
  /** Cores each component kept busy on average over the window. */
  cores: Record<CpuComponent, number | null>;
  note: string;
}

const NOTE =
  "both sites together on one machine; martEtl: the mart sessions of the ETL's loads and transforms; martOther: other mart " +
  "sessions (reporting, the workers' metric reads, the bench's probe watcher); idbEtlReads: the ETL's extraction sessions " +
  "on the IDBs; idbCollectors: the simulator's writes and the bench's probes; postgresBackground: the rest of each " +
  'instance (checkpointer, WAL writer, autovacuum, sessions that ended in the window, other databases); postgresTotal: ' +
  'the instances whole';

interface Stat {
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
  /** utime + stime only. */
  own: number;
}

function readStats(): Map<number, Stat> {
  const out = new Map<number, Stat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(join('/proc', entry, 'stat'), 'utf8');
      // Fields after the command name, which is in parentheses and may hold spaces: state is field 3.
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number) as [number, number, number, number];
      out.set(Number(entry), { ppid: Number(f[1]), ticks: utime + stime + cutime + cstime, own: utime + stime });
    } catch {
      // exited while listed
    }
  }
  return out;
}

function treeTicks(stats: Map<number, Stat>, root: number | null | undefined): number {
  if (!root || !stats.has(root)) return 0;
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  let sum = 0;
  for (const todo = [root]; todo.length; ) {
    const pid = todo.pop()!;
    sum += stats.get(pid)?.ticks ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  return sum;
}

/** The postmaster's pid: the first line of postmaster.pid in the data directory. */
function postmaster(dataDir: string): number | null {
  try {
    return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
  } catch {
    return null;
  }
}

type SessionKind = 'martEtl' | 'martOther' | 'idbEtlReads' | 'idbCollectors';

async function sessions(w: BenchWorld): Promise<Map<number, SessionKind>> {
  const out = new Map<number, SessionKind>();
  const idbs = new Set(Object.values(w.state.layout).flatMap((ms) => ms.map((m) => m.db)));
  for (const name of Object.keys(w.state.pg)) {
    const { rows } = await w.admin(name).query<{ pid: number; datname: string; app: string }>(
      `select pid, datname, coalesce(application_name, '') as app from pg_stat_activity
        where backend_type = 'client backend' and datname is not null and pid <> pg_backend_pid()`,
    );
    for (const r of rows) {
      const etl = /^twinmart-(load|transform|extract)-/.test(r.app);
      if (r.datname === MART_DB) out.set(r.pid, etl ? 'martEtl' : 'martOther');
      else if (idbs.has(r.datname)) out.set(r.pid, etl ? 'idbEtlReads' : 'idbCollectors');
    }
  }
  return out;
}

interface Sample {
  at: number;
  stats: Map<number, Stat>;
  sessions: Map<number, SessionKind>;
}

async function sample(w: BenchWorld): Promise<Sample> {
  const s = await sessions(w);
  return { at: Date.now(), stats: readStats(), sessions: s };
}

/**
 * Starts a window; `stop(simulatorPid)` ends it and returns what prices the events
 * committed in it (counted after the end, so the window is not stretched by counting).
 */
export async function cpuWindow(w: BenchWorld): Promise<{ stop(simulatorPid: number | null): Promise<(events: number) => CpuCost> }> {
  const first = await sample(w);
  return {
    async stop(simulatorPid) {
      const last = await sample(w);
      const ticks: Record<CpuComponent, number> = Object.fromEntries(CPU_COMPONENTS.map((c) => [c, 0])) as Record<CpuComponent, number>;
      const tree = (s: Sample, pid: number | null | undefined) => treeTicks(s.stats, pid);
      const both = (pid: number | null | undefined) => tree(last, pid) - tree(first, pid);
      for (const inst of Object.values(w.state.pg)) ticks.postgresTotal += both(postmaster(inst.dataDir));
      for (const pid of Object.values(w.state.workers)) ticks.workers += both(pid);
      ticks.temporal = both(w.state.temporal.pid);
      for (const c of Object.values(w.state.temporal.clusters ?? {})) ticks.temporal += both(c.pid);
      ticks.simulator = both(simulatorPid);
      // A session seen at the end counts from the window's start, or from its own if it began later.
      for (const [pid, kind] of last.sessions) {
        const end = last.stats.get(pid)?.own;
        if (end !== undefined) ticks[kind] += end - (first.sessions.has(pid) ? (first.stats.get(pid)?.own ?? 0) : 0);
      }
      ticks.postgresBackground = ticks.postgresTotal - ticks.martEtl - ticks.martOther - ticks.idbEtlReads - ticks.idbCollectors;
      const windowSeconds = (last.at - first.at) / 1000;
      const cores = (c: CpuComponent) => (windowSeconds ? round(ticks[c] / TICKS_PER_SECOND / windowSeconds, 3) : null);
      return (events) => {
        const per = (c: CpuComponent) => (events ? round((ticks[c] / TICKS_PER_SECOND / events) * 1000, 3) : null);
        return {
          windowSeconds: round(windowSeconds, 1),
          events,
          cpuSecondsPer1000Events: Object.fromEntries(CPU_COMPONENTS.map((c) => [c, per(c)])) as Record<CpuComponent, number | null>,
          cores: Object.fromEntries(CPU_COMPONENTS.map((c) => [c, cores(c)])) as Record<CpuComponent, number | null>,
          note: NOTE,
        };
      };
    },
  };
}
