/**
 * A backlog in the IDBs before any ETL runs: the simulator in backfill mode (event times
 * in the past, rows written as fast as the IDBs take them), then VACUUM ANALYZE of the
 * event tables so every reader that follows (raw COPY, the plain loop, the ETL on
 * Temporal) finds them in the same state.
 */
import { runSim } from '../sim';
import { silentLogger } from '../logger';
import type { BenchWorld } from './world';
import { log, round, seconds } from './util';

/** Call events per call the simulator emits on average (measured; sizes are approximate). */
export const CALL_EVENTS_PER_CALL = 5.5;

export interface Backlog {
  /** Distinct events the data sources emitted (each member of a set holds all of them). */
  calls: number;
  callEvents: number;
  agentEvents: number;
  /** Rows over every member IDB: what one site's ETL extracts. */
  memberRows: number;
  memberCallRows: number;
  memberAgentRows: number;
  sets: number;
  members: number;
  simSeconds: number;
  simRowsPerSecond: number;
  vacuumSeconds: number;
  eventSpan: { start: string; end: string };
}

export async function loadBacklog(
  w: BenchWorld,
  callEvents: number,
  options: { callsPerSecond: number; batch: number; seed: number },
): Promise<Backlog> {
  const calls = Math.max(1, Math.round(callEvents / CALL_EVENTS_PER_CALL));
  // Event times end well before now: calls last minutes, and nothing may look like the future.
  const spanMs = (calls / options.callsPerSecond) * 1000 + 3_600_000;
  const startTs = new Date(Date.now() - spanMs - 3_600_000);
  log.info(`loading about ${callEvents} call events (${calls} calls) into ${w.config.members.length} member IDBs`);
  let lastLog = Date.now();
  const t0 = Date.now();
  const r = await runSim(
    w.config,
    {
      calls,
      rate: options.callsPerSecond,
      seed: options.seed,
      startTs,
      batchSize: options.batch,
      onProgress: (p) => {
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log.info(`  sim: ${p.calls}/${calls} calls, ${p.events} events`);
        }
      },
    },
    silentLogger,
  );
  const simMs = Date.now() - t0;
  const skipped = r.members.filter((m) => m.skippedGap + m.skippedUnreachable > 0);
  if (skipped.length) throw new Error(`the simulator skipped rows in ${skipped.map((m) => m.memberId).join(', ')}`);
  const t1 = Date.now();
  for (const m of w.config.members) {
    await w.idb(m).query('vacuum analyze idb.call_event, idb.agent_event, idb.dss_session');
  }
  const memberCallRows = r.members.reduce((a, m) => a + m.callEvents, 0);
  const memberAgentRows = r.members.reduce((a, m) => a + m.agentEvents, 0);
  const b: Backlog = {
    calls: r.calls,
    callEvents: r.sources.reduce((a, s) => a + s.callEvents, 0),
    agentEvents: r.sources.reduce((a, s) => a + s.agentEvents, 0),
    memberRows: memberCallRows + memberAgentRows,
    memberCallRows,
    memberAgentRows,
    sets: r.sources.length,
    members: r.members.length,
    simSeconds: seconds(simMs),
    simRowsPerSecond: round(((memberCallRows + memberAgentRows) * 1000) / simMs, 0),
    vacuumSeconds: seconds(Date.now() - t1),
    eventSpan: { start: r.simStart.toISOString(), end: r.simEnd.toISOString() },
  };
  log.info(
    `loaded ${b.callEvents} call + ${b.agentEvents} agent events (${b.memberRows} member rows) in ${b.simSeconds} s ` +
      `(${b.simRowsPerSecond} rows/s), vacuum ${b.vacuumSeconds} s`,
  );
  return b;
}
