/**
 * Parity of two twin Info Marts. Each mart is loaded independently from the same
 * sources, so surrogate ids differ by design; the facts must not. The comparison is by
 * natural key, per table ("kind") and closed 15-minute interval: first a row count and
 * an md5 checksum per interval computed on each server, then, only for the intervals
 * whose summaries differ, the natural keys with a per-row hash, diffed here to name
 * examples. Open intervals are left out because the marts may legitimately be at
 * different points of loading them.
 */
import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../db';
import { retentionCutoffs, type RetentionDays } from '../mart/retention';

export type ParityKind = 'interaction_fact' | 'stg_call_event' | 'agent_state_fact' | 'ag_queue_15min';

export interface ParityCounts {
  calls: number;
  events: number;
  agentSpans: number;
  queueRows: number;
}

/** One kind in one interval on one mart; `checksum` is null when the interval has no rows. */
export interface IntervalSummary {
  rows: number;
  checksum: string | null;
}

export interface ParityMismatch {
  kind: ParityKind;
  /** Start of the 15-minute interval, ISO 8601 UTC. */
  interval: string;
  a: IntervalSummary;
  b: IntervalSummary;
  /** How many natural keys of the interval differ, in total (examples are capped). */
  differences: { onlyInA: number; onlyInB: number; changed: number };
  /** Natural keys missing on one side or with different content, sorted, at most maxExamples. */
  examples: string[];
}

export interface ParityReport {
  match: boolean;
  marts: { a: string; b: string };
  closedBefore: string;
  from: string | null;
  /** Distinct closed intervals holding a row of any kind on either mart. */
  intervalsCompared: number;
  counts: { a: ParityCounts; b: ParityCounts };
  mismatches: ParityMismatch[];
}

export interface MartRef {
  name: string;
  pool: Pool;
}

export interface ParityOptions {
  /** Only intervals that ended at or before this instant are compared. */
  closedBefore: Date;
  /** Compare from the interval containing this instant on; default: from the beginning. */
  from?: Date;
  /** Cap on examples per mismatch; default 10. */
  maxExamples?: number;
  /**
   * The marts' retention: intervals either may already have purged are left out, since two
   * marts purge at their own moments (staged events past stagingDays, facts past factDays).
   */
  retention?: RetentionDays;
}

const DEFAULT_MAX_EXAMPLES = 10;

// Interval arithmetic on timestamptz is absolute, so date_bin does not depend on the
// session TimeZone; the origin is the one the ETL bins ag_queue_15min with.
const bin = (ts: string): string => `date_bin('15 minutes', ${ts}, timestamptz '2000-01-01 00:00:00+00')`;

// Example keys and interval labels go through `at time zone 'UTC'`, which gives the same text for
// the same instant whatever the session's TimeZone or DateStyle.
const utcText = (ts: string, fraction: 'MS' | 'US'): string =>
  `to_char(${ts} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.${fraction}"Z"')`;
const instant = (ts: string): string => utcText(ts, 'US');
/** Interval labels have toISOString()'s shape, like the report's closedBefore. */
const intervalLabel = (ts: string): string => utcText(ts, 'MS');

/** Row text and checksums render timestamps with the output function instead: to_char is
 * slow, and these settings, fixed in each snapshot, make that output the same text on
 * both servers whatever their own TimeZone or DateStyle. */
const RENDERING = ["set local timezone = 'UTC'", "set local datestyle = 'ISO, YMD'"];

interface KindSpec {
  kind: ParityKind;
  counter: keyof ParityCounts;
  table: string;
  /** Predicate selecting the rows that are facts (SQL). */
  filter: string;
  /** Column placing a row in an interval. */
  ts: string;
  /** Natural key, as SQL expressions with deterministic text forms. */
  key: string[];
  /** Total order on the natural key for the checksum; text compared bytewise ("C") so
   * that marts created with different collations still agree. */
  orderBy: string;
  /** Content columns, as SQL expressions with deterministic text forms. */
  content: string[];
  /** Which retention cutoff purges this kind. */
  purged: 'stagingBefore' | 'factsBefore';
}

const KINDS: readonly KindSpec[] = [
  {
    kind: 'interaction_fact',
    counter: 'calls',
    table: 'interaction_fact',
    filter: 'true',
    ts: 'start_ts',
    key: ['call_id'],
    orderBy: 'call_id',
    content: [
      'source_id',
      'media',
      'direction',
      'queue',
      'agent_id',
      'start_ts',
      'answer_ts',
      'end_ts',
      'outcome',
      'wait_s',
      'talk_s',
      'event_count',
      'dims::text',
    ],
    purged: 'factsBefore',
  },
  {
    kind: 'stg_call_event',
    counter: 'events',
    table: 'stg_call_event',
    filter: 'discard_reason is null',
    ts: 'event_ts',
    key: ['call_id', 'seq'],
    orderBy: 'call_id, seq',
    content: ['event', 'event_ts'],
    purged: 'stagingBefore',
  },
  {
    kind: 'agent_state_fact',
    counter: 'agentSpans',
    table: 'agent_state_fact',
    filter: 'true',
    ts: 'start_ts',
    key: ['source_id', 'agent_id', 'seq'],
    orderBy: 'source_id collate "C", agent_id collate "C", seq',
    content: ['state', 'reason', 'start_ts', 'end_ts'],
    purged: 'factsBefore',
  },
  {
    kind: 'ag_queue_15min',
    counter: 'queueRows',
    table: 'ag_queue_15min',
    filter: 'true',
    ts: 'interval_start',
    key: ['queue', instant('interval_start')],
    orderBy: 'queue collate "C", interval_start',
    content: ['offered', 'answered', 'abandoned', 'abandoned_short', 'answered_in_sl', 'abandoned_in_sl', 'total_wait_s', 'total_talk_s'],
    purged: 'factsBefore',
  },
];

/** The row as record text, under RENDERING: unambiguous about NULL versus '' (nothing
 * versus "") and about column boundaries (values holding a delimiter are quoted). */
const rowText = (spec: KindSpec): string => `row(${[...spec.key, ...spec.content].join(', ')})::text`;
const keyText = (spec: KindSpec): string => `concat_ws('/', ${spec.key.join(', ')})`;

/** $1 closedBefore, $2 from (nullable). An interval is closed when it ends at or before
 * closedBefore, i.e. every row in it lies before the start of closedBefore's interval. */
function summarySql(spec: KindSpec): string {
  // Labelled once per interval, outside: to_char on every row's bin cost more than the checksum.
  return `select ${intervalLabel('b')} as interval, rows, checksum
            from (select ${bin(spec.ts)} as b,
                         count(*)::int as rows,
                         md5(string_agg(${rowText(spec)}, E'\\n' order by ${spec.orderBy})) as checksum
                    from ${spec.table}
                   where ${spec.filter}
                     and ${spec.ts} >= coalesce(${bin('$2::timestamptz')}, '-infinity')
                     and ${spec.ts} < ${bin('$1::timestamptz')}
                   group by 1) s`;
}

/** $1 interval start. A range on the column rather than date_bin(column) = $1 keeps the index usable. */
function detailSql(spec: KindSpec): string {
  return `select ${keyText(spec)} as key, md5(${rowText(spec)}) as hash
            from ${spec.table}
           where ${spec.filter}
             and ${spec.ts} >= $1::timestamptz
             and ${spec.ts} < $1::timestamptz + interval '15 minutes'`;
}

type Summaries = Map<ParityKind, Map<string, IntervalSummary>>;

/**
 * Where comparing a kind starts: `from`, or past the interval holding the kind's retention
 * cutoff, one interval later still in case the purging worker's clock ran ahead of ours.
 */
function kindsFrom(from: string | null, retention: RetentionDays | undefined): Map<ParityKind, string | null> {
  const cutoffs = retention && retentionCutoffs(retention);
  return new Map(
    KINDS.map((spec) => {
      if (!cutoffs) return [spec.kind, from];
      const kept = new Date(Date.parse(cutoffs[spec.purged]) + 15 * 60_000).toISOString();
      return [spec.kind, from && from > kept ? from : kept];
    }),
  );
}

async function summarise(client: PoolClient, closedBefore: string, from: Map<ParityKind, string | null>): Promise<Summaries> {
  const result: Summaries = new Map();
  for (const spec of KINDS) {
    const { rows } = await client.query<{ interval: string } & IntervalSummary>(summarySql(spec), [closedBefore, from.get(spec.kind)]);
    result.set(spec.kind, new Map(rows.map((r) => [r.interval, { rows: r.rows, checksum: r.checksum }])));
  }
  return result;
}

async function rowHashes(client: PoolClient, spec: KindSpec, interval: string): Promise<Map<string, string>> {
  const { rows } = await client.query<{ key: string; hash: string }>(detailSql(spec), [interval]);
  return new Map(rows.map((r) => [r.key, r.hash]));
}

/** Diffs one interval of one kind row by row. Done per interval so memory stays bounded
 * by one interval's keys even when a whole mart differs (e.g. one still rebuilding). */
async function diffInterval(
  spec: KindSpec,
  ca: PoolClient,
  cb: PoolClient,
  interval: string,
  maxExamples: number,
): Promise<Pick<ParityMismatch, 'differences' | 'examples'>> {
  const [ha, hb] = await Promise.all([rowHashes(ca, spec, interval), rowHashes(cb, spec, interval)]);
  const differing: string[] = [];
  let onlyInA = 0;
  let changed = 0;
  for (const [key, hash] of ha) {
    const other = hb.get(key);
    if (other === hash) continue;
    if (other === undefined) onlyInA++;
    else changed++;
    differing.push(key);
  }
  const missingInA = [...hb.keys()].filter((key) => !ha.has(key));
  differing.push(...missingInA);
  return {
    differences: { onlyInA, onlyInB: missingInA.length, changed },
    examples: differing.sort().slice(0, maxExamples),
  };
}

const EMPTY: IntervalSummary = { rows: 0, checksum: null };

const same = (x: IntervalSummary, y: IntervalSummary): boolean => x.rows === y.rows && x.checksum === y.checksum;

function totals(summaries: Summaries): ParityCounts {
  const counts: ParityCounts = { calls: 0, events: 0, agentSpans: 0, queueRows: 0 };
  for (const spec of KINDS) {
    for (const s of summaries.get(spec.kind)!.values()) counts[spec.counter] += s.rows;
  }
  return counts;
}

function intervalsOf(...sides: Summaries[]): Set<string> {
  const all = new Set<string>();
  for (const side of sides) for (const byInterval of side.values()) for (const i of byInterval.keys()) all.add(i);
  return all;
}

/** One consistent point of a mart that may be loading while it is read. */
const inSnapshot = <T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> =>
  withTransaction(
    pool,
    async (client) => {
      for (const setting of RENDERING) await client.query(setting);
      return fn(client);
    },
    { begin: 'begin transaction isolation level repeatable read read only' },
  );

function checkOptions(options: ParityOptions): number {
  const maxExamples = options.maxExamples ?? DEFAULT_MAX_EXAMPLES;
  if (!Number.isInteger(maxExamples) || maxExamples < 0) {
    throw new RangeError(`maxExamples must be a non-negative integer, got ${maxExamples}`);
  }
  if (Number.isNaN(options.closedBefore.getTime())) throw new RangeError('closedBefore is not a valid date');
  if (options.from && Number.isNaN(options.from.getTime())) throw new RangeError('from is not a valid date');
  return maxExamples;
}

export async function compareMarts(a: MartRef, b: MartRef, options: ParityOptions): Promise<ParityReport> {
  const maxExamples = checkOptions(options);
  const closedBefore = options.closedBefore.toISOString();
  const from = options.from?.toISOString() ?? null;

  // Both snapshots stay open until the row-level diff is done, so the examples describe
  // the same states of the marts as the checksums that flagged them.
  return inSnapshot(a.pool, (ca) =>
    inSnapshot(b.pool, async (cb) => {
      const kinds = kindsFrom(from, options.retention);
      const [sa, sb] = await Promise.all([summarise(ca, closedBefore, kinds), summarise(cb, closedBefore, kinds)]);
      const intervals = [...intervalsOf(sa, sb)].sort();

      const mismatches: ParityMismatch[] = [];
      for (const interval of intervals) {
        for (const spec of KINDS) {
          const sumA = sa.get(spec.kind)!.get(interval) ?? EMPTY;
          const sumB = sb.get(spec.kind)!.get(interval) ?? EMPTY;
          if (same(sumA, sumB)) continue;
          const diff = await diffInterval(spec, ca, cb, interval, maxExamples);
          mismatches.push({ kind: spec.kind, interval, a: sumA, b: sumB, ...diff });
        }
      }

      return {
        match: mismatches.length === 0,
        marts: { a: a.name, b: b.name },
        closedBefore,
        from,
        intervalsCompared: intervals.length,
        counts: { a: totals(sa), b: totals(sb) },
        mismatches,
      };
    }),
  );
}

const COUNT_LABELS: Record<keyof ParityCounts, string> = {
  calls: 'calls',
  events: 'call events',
  agentSpans: 'agent spans',
  queueRows: 'queue rows',
};

function formatCounts(report: ParityReport): string[] {
  const { a, b } = report.marts;
  const keys = Object.keys(COUNT_LABELS) as (keyof ParityCounts)[];
  const labelWidth = Math.max(...keys.map((k) => COUNT_LABELS[k].length));
  const width = (side: 'a' | 'b', name: string) =>
    Math.max(name.length, ...keys.map((k) => String(report.counts[side][k]).length));
  const wa = width('a', a);
  const wb = width('b', b);
  return [
    `  ${''.padEnd(labelWidth)}  ${a.padStart(wa)}  ${b.padStart(wb)}`,
    ...keys.map(
      (k) =>
        `  ${COUNT_LABELS[k].padEnd(labelWidth)}  ${String(report.counts.a[k]).padStart(wa)}  ` +
        `${String(report.counts.b[k]).padStart(wb)}${report.counts.a[k] === report.counts.b[k] ? '' : '  *'}`,
    ),
  ];
}

function formatMismatch(m: ParityMismatch, names: { a: string; b: string }): string[] {
  const d = m.differences;
  const total = d.onlyInA + d.onlyInB + d.changed;
  const lines = [
    `  ${m.interval}  ${m.kind}: ${m.a.rows} vs ${m.b.rows} rows; ` +
      `${d.onlyInA} only in ${names.a}, ${d.onlyInB} only in ${names.b}, ${d.changed} changed`,
    ...m.examples.map((key) => `    ${key}`),
  ];
  if (total > m.examples.length) lines.push(`    … and ${total - m.examples.length} more`);
  return lines;
}

/** A short human-readable rendering of a report, for the CLI. */
export function formatParityReport(report: ParityReport): string {
  const { a, b } = report.marts;
  const range = report.from ? `from ${report.from} ` : '';
  const lines = [
    `parity ${a} vs ${b}: ${report.match ? 'MATCH' : 'MISMATCH'}`,
    `  ${report.intervalsCompared} closed 15-minute intervals compared ${range}before ${report.closedBefore}`,
    ...formatCounts(report),
  ];
  if (report.mismatches.length) {
    lines.push(`mismatches (${report.mismatches.length}):`);
    for (const m of report.mismatches) lines.push(...formatMismatch(m, report.marts));
  }
  return lines.join('\n');
}
