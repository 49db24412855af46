/**
 * A site worker's metrics (docs/operations.md lists them): what its activities count as
 * they run (rows extracted, cycle and transform durations, facts written), and what is
 * read from its mart and its ETL workflow when Prometheus scrapes (member state, cursor
 * age, rows behind, discards by reason, open data gaps, freshness). Labels are bounded:
 * the config's member and source ids, fixed states and reasons; every series carries `site`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Pool } from 'pg';
import type { Config } from '../config';
import type { EtlStatus } from '../workflows/etl-messages';
import type { ExtractResult } from '../etl/extract-member';

/** What the activities report as they go. */
export interface EtlMetrics {
  extracted(member: string, counts: Pick<ExtractResult, 'callRows' | 'agentRows' | 'bytes'>): void;
  cycle(seconds: number): void;
  transformed(seconds: number, facts: number): void;
}

/** What retention reports as it purges (src/activities/retention.ts). */
export interface RetentionMetrics {
  purged(table: string, rows: number): void;
  /** A batch gave way to the ETL's transform lock and its run stopped. */
  busy(): void;
}

export const MEMBER_STATES = ['ok', 'unreachable', 'error', 'excluded', 'pending', 'superseded', 'removed'] as const;

/** A discard's reason holds the row's values; its kind (the label) is the phrase it starts with. */
const DISCARD_KIND = `case
    when reason like 'unknown event%' then 'unknown_event'
    when reason like 'unknown media%' then 'unknown_media'
    when reason like 'unknown direction%' then 'unknown_direction'
    when reason like 'seq %' then 'bad_seq'
    when reason like 'event_ts % in the future%' then 'future_event_ts'
    when reason like 'out of order%' then 'out_of_order'
    when reason like 'absurd duration%' then 'absurd_duration'
    else 'other' end`;

interface MartView {
  cursors: { member: string; age: number | null }[];
  lag: { member: string; rows: number }[];
  discards: { reason: string; n: number }[];
  gaps: { source: string; n: number }[];
  freshness: number | null;
}

async function readMart(mart: Pool): Promise<MartView> {
  const { rows } = await mart.query<MartView>(
    `select
       (select coalesce(json_agg(json_build_object('member', member_id, 'age', extract(epoch from now() - last_extract_at))), '[]') from ctl_cursor) as cursors,
       (select coalesce(json_agg(json_build_object('member', member_id, 'rows', rows_behind)), '[]') from ctl_member_lag) as lag,
       (select coalesce(json_agg(json_build_object('reason', k, 'n', n)), '[]')
          from (select ${DISCARD_KIND} as k, count(*) as n from ctl_discard group by 1) d) as discards,
       (select coalesce(json_agg(json_build_object('source', source_id, 'n', n)), '[]')
          from (select source_id, count(*) as n from ctl_data_gap where gap_end is null group by 1) g) as gaps,
       (select extract(epoch from now() - max(greatest(start_ts, answer_ts, end_ts)))::float8
          from interaction_fact where start_ts > now() - interval '1 day') as freshness`,
  );
  return rows[0]!;
}

export interface WorkerMetricsDeps {
  config: Config;
  site: string;
  /** The site's mart as the ETL's role. */
  mart: () => Pool;
  /** The site's ETL workflow status, null when Temporal does not answer. */
  etlStatus: () => Promise<EtlStatus | null>;
}

export function createWorkerMetrics({ config, site, mart, etlStatus }: WorkerMetricsDeps): {
  registry: Registry;
  etl: EtlMetrics;
  retention: RetentionMetrics;
} {
  const registry = new Registry();
  registry.setDefaultLabels({ site });
  const registers = [registry];
  const members = config.members.map((m) => m.id);
  // A member's locality is fixed by the config, so each member has one series.
  const locality = (id: string) => (config.members.find((m) => m.id === id)?.site === site ? 'local' : 'remote');

  // One reading of the mart and the workflow serves every gauge of a scrape.
  let view: Promise<{ mart: MartView | null; etl: EtlStatus | null }> | null = null;
  const current = () =>
    (view ??= (async () => {
      const [m, e] = await Promise.all([readMart(mart()).catch(() => null), etlStatus().catch(() => null)]);
      setTimeout(() => (view = null), 500).unref();
      return { mart: m, etl: e };
    })());

  const rowsExtracted = new Counter({
    name: 'twinmart_member_rows_extracted_total',
    help: 'Rows this worker loaded from a member IDB into its mart.',
    labelNames: ['member', 'table'],
    registers,
  });
  const bytesRead = new Counter({
    name: 'twinmart_member_bytes_read_total',
    help: 'COPY data bytes this worker read from a member IDB; locality "remote" when the member is at another site (crossed the WAN).',
    labelNames: ['member', 'locality'],
    registers,
  });
  const cycleSeconds = new Histogram({
    name: 'twinmart_cycle_duration_seconds',
    help: 'Seconds from the start of an ETL cycle to the end of its transform.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers,
  });
  const transformSeconds = new Histogram({
    name: 'twinmart_transform_duration_seconds',
    help: 'Seconds one transform took.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const facts = new Counter({ name: 'twinmart_facts_written_total', help: 'Interaction facts written by transforms.', registers });
  for (const m of members) {
    for (const table of ['call_event', 'agent_event']) rowsExtracted.labels(m, table).inc(0);
    bytesRead.labels(m, locality(m)).inc(0);
  }
  const rowsPurged = new Counter({
    name: 'twinmart_retention_rows_purged_total',
    help: 'Rows retention deleted from the site mart, by table.',
    labelNames: ['table'],
    registers,
  });
  const retentionBusy = new Counter({
    name: 'twinmart_retention_skipped_total',
    help: 'Retention runs that gave way to the ETL: the transform lock stayed taken.',
    registers,
  });

  new Gauge({
    name: 'twinmart_mart_up',
    help: '1 when the site mart answered the scrape, else 0.',
    registers,
    async collect() {
      this.set((await current()).mart ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_etl_workflow_up',
    help: '1 when the site ETL workflow answered its status query through Temporal, else 0.',
    registers,
    async collect() {
      this.set((await current()).etl ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_member_state',
    help: 'The member state in the site ETL (1 for its state, 0 for the others).',
    labelNames: ['member', 'state'],
    registers,
    async collect() {
      const etl = (await current()).etl;
      this.reset();
      if (!etl) return;
      for (const m of members) for (const s of MEMBER_STATES) this.labels(m, s).set(etl.members[m]?.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinmart_member_cursor_age_seconds',
    help: 'Seconds since the site mart last read the member.',
    labelNames: ['member'],
    registers,
    async collect() {
      const v = (await current()).mart;
      this.reset();
      for (const c of v?.cursors ?? []) if (c.age !== null && members.includes(c.member)) this.labels(c.member).set(c.age);
    },
  });
  new Gauge({
    name: 'twinmart_member_rows_behind',
    help: 'Rows on the member IDB beyond the site mart cursor, as the last DR probe measured.',
    labelNames: ['member'],
    registers,
    async collect() {
      const v = (await current()).mart;
      this.reset();
      for (const l of v?.lag ?? []) if (members.includes(l.member)) this.labels(l.member).set(Number(l.rows));
    },
  });
  new Gauge({
    name: 'twinmart_discarded_rows',
    help: 'Rows the site mart keeps in ctl_discard, by kind of reason.',
    labelNames: ['reason'],
    registers,
    async collect() {
      const v = (await current()).mart;
      this.reset();
      for (const d of v?.discards ?? []) this.labels(d.reason).set(Number(d.n));
    },
  });
  new Gauge({
    name: 'twinmart_data_gaps_open',
    help: 'Open data gaps of a data source in the site mart: no member has a session now.',
    labelNames: ['source'],
    registers,
    async collect() {
      const v = (await current()).mart;
      this.reset();
      if (!v) return;
      for (const source of Object.keys(config.sources)) this.labels(source).set(Number(v.gaps.find((g) => g.source === source)?.n ?? 0));
    },
  });
  new Gauge({
    name: 'twinmart_freshness_seconds',
    help: 'Seconds from the newest event time the facts hold (within a day) to now; NaN when none.',
    registers,
    async collect() {
      const v = (await current()).mart;
      this.set(v?.freshness ?? NaN);
    },
  });

  return {
    registry,
    etl: {
      extracted(member, { callRows, agentRows, bytes }) {
        rowsExtracted.labels(member, 'call_event').inc(callRows);
        rowsExtracted.labels(member, 'agent_event').inc(agentRows);
        bytesRead.labels(member, locality(member)).inc(bytes);
      },
      cycle: (seconds) => cycleSeconds.observe(seconds),
      transformed(seconds, n) {
        transformSeconds.observe(seconds);
        facts.inc(n);
      },
    },
    retention: {
      purged: (table, rows) => rowsPurged.labels(table).inc(rows),
      busy: () => retentionBusy.inc(),
    },
  };
}
