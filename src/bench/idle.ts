/**
 * What a cycle costs when nothing is new. Without Temporal: extractMember for every
 * member and transformSite in a loop on a fully loaded, idle mart (wall time and the
 * servers' execution time per cycle). With Temporal: one site's ETL left running idle
 * (the other site's ETL paused, so the IDBs serve it alone) for a window; history
 * events and bytes per cycle, cycle period and database time per cycle.
 */
import { etlWorkflowId } from '../workflows/names';
import { pauseUpdate, resumeUpdate, etlStatusQuery, type EtlStatus } from '../workflows/etl-messages';
import { plainCycle, type PlainMart } from './catchup';
import { historyGrowth, historyPoint, type HistoryGrowth } from './footprint';
import { readStatements, resetStatements } from './statements';
import type { BenchWorld } from './world';
import { log, percentile, round, sleep, waitFor } from './util';

export interface PlainIdle {
  cycles: number;
  msPerCycle: number;
  p50Ms: number | null;
  maxMs: number | null;
  extractMsPerCycle: number;
  transformMsPerCycle: number;
  /** Server execution time per cycle, mart and IDBs together (pg_stat_statements). */
  dbMsPerCycle: number | null;
  statementsPerCycle: number | null;
}

export async function plainIdle(w: BenchWorld, pm: PlainMart, cycles: number): Promise<PlainIdle> {
  for (let i = 0; i < 2; i++) await plainCycle(w.config, pm); // warm pools and plans
  await resetStatements(w);
  const ms: number[] = [];
  let extract = 0;
  let transform = 0;
  for (let i = 0; i < cycles; i++) {
    const t0 = Date.now();
    const c = await plainCycle(w.config, pm);
    ms.push(Date.now() - t0);
    extract += c.extractMs;
    transform += c.transformMs;
    if (c.rows) log.warn(`idle plain cycle extracted ${c.rows} rows: the mart was not idle`);
  }
  const st = await readStatements(w);
  const db = st ? (st.byDatabase.scratch?.totalMs ?? 0) + (st.byDatabase.idb?.totalMs ?? 0) : null;
  const calls = st
    ? [...(st.byDatabase.scratch?.stages ?? []), ...(st.byDatabase.idb?.stages ?? [])].reduce((a, s) => a + s.calls, 0)
    : null;
  const sorted = [...ms].sort((a, b) => a - b);
  const r: PlainIdle = {
    cycles,
    msPerCycle: round(ms.reduce((a, b) => a + b, 0) / cycles, 1),
    p50Ms: percentile(sorted, 50),
    maxMs: sorted.at(-1) ?? null,
    extractMsPerCycle: round(extract / cycles, 1),
    transformMsPerCycle: round(transform / cycles, 1),
    dbMsPerCycle: db === null ? null : round(db / cycles, 2),
    statementsPerCycle: calls === null ? null : round(calls / cycles, 1),
  };
  log.info(`idle without Temporal: ${r.msPerCycle} ms per cycle (database ${r.dbMsPerCycle} ms, ${r.statementsPerCycle} statements)`);
  return r;
}

export interface TemporalIdle extends HistoryGrowth {
  site: string;
  windowSeconds: number;
  /** Server execution time per cycle: the site's mart and every IDB (pg_stat_statements). */
  dbMsPerCycle: number | null;
  martDbMsPerCycle: number | null;
  idbDbMsPerCycle: number | null;
  /** Cycle period minus the configured sleep: extraction, transform and Temporal round trips. */
  busyMsPerCycle: number | null;
}

type LastCycle = NonNullable<EtlStatus['lastCycle']>;

/**
 * A poller of the site's ETL status: each call returns how many cycles in a row, up to
 * the latest, satisfied `ok` (each cycle counted once, however often it is polled).
 */
export function cyclesInRow(w: BenchWorld, site: string, ok: (c: LastCycle) => boolean): () => Promise<number> {
  const handle = w.client.workflow.getHandle(etlWorkflowId(site));
  let seen = -1;
  let inRow = 0;
  return async () => {
    const s = await handle.query(etlStatusQuery);
    if (s.cycle !== seen) {
      seen = s.cycle;
      inRow = s.lastCycle && ok(s.lastCycle) ? inRow + 1 : 0;
    }
    return inRow;
  };
}

/** Waits until the site's ETL ran `n` cycles in a row that extracted nothing. */
export async function waitIdle(w: BenchWorld, site: string, timeoutMs: number, n = 2): Promise<void> {
  const quiet = cyclesInRow(w, site, (c) => c.rows === 0 && c.facts === 0);
  await waitFor(`${site} to run idle cycles`, async () => (await quiet()) >= n, timeoutMs, 200);
}

export async function temporalIdle(w: BenchWorld, site: string, windowSeconds: number): Promise<TemporalIdle> {
  const others = Object.keys(w.config.sites).filter((s) => s !== site);
  for (const o of others) await w.client.workflow.getHandle(etlWorkflowId(o)).executeUpdate(pauseUpdate, { args: [{}] });
  try {
    await waitIdle(w, site, 120_000);
    await resetStatements(w);
    const a = await historyPoint(w.client, etlWorkflowId(site));
    await sleep(windowSeconds * 1000);
    const b = await historyPoint(w.client, etlWorkflowId(site));
    const st = await readStatements(w);
    const g = await historyGrowth(w.client, etlWorkflowId(site), a, b);
    const per = (v: number | undefined) => (g.cycles > 0 && v !== undefined ? round(v / g.cycles, 2) : null);
    const mart = st?.byDatabase[`mart ${site}`]?.totalMs;
    const idb = st?.byDatabase.idb?.totalMs;
    const r: TemporalIdle = {
      site,
      windowSeconds,
      ...g,
      dbMsPerCycle: st ? per((mart ?? 0) + (idb ?? 0)) : null,
      martDbMsPerCycle: st ? per(mart ?? 0) : null,
      idbDbMsPerCycle: st ? per(idb ?? 0) : null,
      busyMsPerCycle: g.secondsPerCycle === null ? null : round(g.secondsPerCycle * 1000 - w.config.etl.cycleSeconds * 1000, 1),
    };
    log.info(
      `idle on Temporal (${site}): ${r.cycles} cycles in ${windowSeconds} s, ${r.eventsPerCycle} history events and ` +
        `${r.bytesPerCycle} bytes per cycle, database ${r.dbMsPerCycle} ms per cycle`,
    );
    return r;
  } finally {
    for (const o of others) await w.client.workflow.getHandle(etlWorkflowId(o)).executeUpdate(resumeUpdate, { args: [{}] });
  }
}
