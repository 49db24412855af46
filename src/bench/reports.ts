/**
 * What the supervisors' widest views cost, to decide whether the mart needs rollups beyond
 * ag_queue_15min: a mart database of its own on the main world's dc1 instance, filled
 * with a year of queue intervals and a month of agent state spans, then the queue summary
 * over the year and the agent summary over the month timed at every granularity, in a
 * zone with DST, as the reporting service runs them.
 */
import type { Pool } from 'pg';
import { migrateMart } from '../mart/migrate';
import { GRANULARITIES, type Granularity } from '../reporting/buckets';
import { agentSummary, queueSummary } from '../reporting/queries';
import type { Profile } from './profile';
import { log, round } from './util';
import type { BenchWorld } from './world';

const DB = 'twinmart_reports_bench';
const TZ = 'Europe/Paris';
const RUNS = 3;

export interface ReportTimings {
  tz: string;
  queues: number;
  queueDays: number;
  /** ag_queue_15min rows the year's queue summary reads. */
  queueRows: number;
  agents: number;
  agentDays: number;
  spanMinutes: number;
  agentSpans: number;
  /** Median of RUNS, per granularity. */
  queueSummaryMs: Record<Granularity, number>;
  agentSummaryMs: Record<Granularity, number>;
}

/** Deterministic counts per queue and interval (no randomness to seed): what matters is the row count. */
async function fill(pool: Pool, p: Profile['reports'], to: Date): Promise<void> {
  await pool.query(
    `insert into ag_queue_15min (queue, interval_start, offered, answered, abandoned, abandoned_short, answered_in_sl, abandoned_in_sl, total_wait_s, total_talk_s)
     select 'queue-' || q, t, 10 + (q + n) % 7, 8 + (q + n) % 5, 2, (q + n) % 2, 6 + (q + n) % 3, 1, 120.5, 1800.25
       from generate_series(1, $1::integer) q,
            generate_series($2::timestamptz - make_interval(days => $3::integer), $2::timestamptz - interval '15 minutes', interval '15 minutes') with ordinality as i(t, n)`,
    [p.queues, to, p.queueDays],
  );
  await pool.query(
    `insert into agent_state_fact (source_id, agent_id, seq, state, reason, start_ts, end_ts)
     select 'sw-voice-1', 'agent-' || a, n::integer, (array['ready', 'not_ready', 'after_call_work', 'logged_in'])[1 + (a + n) % 4],
            case when (a + n) % 4 = 1 then 'break' end, t, t + make_interval(mins => $4::integer)
       from generate_series(1, $1::integer) a,
            generate_series($2::timestamptz - make_interval(days => $3::integer), $2::timestamptz - make_interval(mins => $4::integer), make_interval(mins => $4::integer))
              with ordinality as i(t, n)`,
    [p.agents, to, p.agentDays, p.spanMinutes],
  );
  await pool.query('analyze ag_queue_15min, agent_state_fact');
}

async function median(fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return round(ms.sort((a, b) => a - b)[Math.floor(RUNS / 2)]!, 1);
}

export async function reportTimings(w: BenchWorld, p: Profile['reports']): Promise<ReportTimings> {
  await w.admin('dc1').query(`drop database if exists ${DB} with (force)`);
  await w.admin('dc1').query(`create database ${DB}`);
  try {
    const pool = w.db('dc1', DB);
    await migrateMart(pool);
    const to = new Date(Date.UTC(2026, 11, 1));
    await fill(pool, p, to);
    const [queueRows, agentSpans] = await Promise.all(
      ['ag_queue_15min', 'agent_state_fact'].map(async (t) => Number((await pool.query<{ n: string }>(`select count(*)::text as n from ${t}`)).rows[0]!.n)),
    );
    const year = { from: new Date(to.getTime() - p.queueDays * 86_400_000), to };
    const month = { from: new Date(to.getTime() - p.agentDays * 86_400_000), to };
    const queueSummaryMs = {} as Record<Granularity, number>;
    const agentSummaryMs = {} as Record<Granularity, number>;
    for (const granularity of GRANULARITIES) {
      queueSummaryMs[granularity] = await median(() => queueSummary(pool, year, null, { granularity, tz: TZ }, 'answered-over-handled'));
      agentSummaryMs[granularity] = await median(() => agentSummary(pool, month, null, { granularity, tz: TZ }));
    }
    log.info(`reports: queue summary of ${queueRows} intervals ${JSON.stringify(queueSummaryMs)} ms; agent summary of ${agentSpans} spans ${JSON.stringify(agentSummaryMs)} ms`);
    return { tz: TZ, ...p, queueRows, agentSpans, queueSummaryMs, agentSummaryMs };
  } finally {
    await w.admin('dc1').query(`drop database if exists ${DB} with (force)`);
  }
}
