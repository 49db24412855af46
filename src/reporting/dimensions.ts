/**
 * Report dimensions (etl.dimensions): the attached data the transform keeps in
 * interaction_fact.dims. A request filters by `dim.<key>=<value>` (repeated: any of the
 * values; several keys: all of them) and a queue summary groups by `groupBy=<key>`. Only
 * configured keys are accepted, and keys and values reach SQL as bind parameters only.
 */
import { MAX_DIMENSION_VALUE } from '../mart/facts';
import type { Queryable } from '../db';
import { echo, type RawParams } from './params';
import type { Range } from './queries';

/** Per key, the values any of which a call must have; every key must match. */
export type DimensionFilters = Record<string, string[]>;

export interface DimensionParams {
  filters: DimensionFilters;
  groupBy: string | null;
}

const PREFIX = 'dim.';
/** As for queue and agent names: a request cannot become an unbounded SQL array. */
const MAX_VALUES = 100;

/**
 * Takes the dimension parameters out of `raw` (`groupBy` too when `grouping`), checked
 * against the configured keys; the rest is left for the report's own schema.
 */
export function takeDimensionParams(
  raw: RawParams,
  keys: readonly string[],
  grouping: boolean,
): { ok: true; value: DimensionParams; rest: RawParams } | { ok: false; error: string } {
  const expected = keys.length ? `expected one of ${keys.join(', ')}` : 'no dimensions are configured (etl.dimensions)';
  const rest: RawParams = Object.create(null) as RawParams;
  const filters: DimensionFilters = {};
  let groupBy: string | null = null;
  for (const [param, values] of Object.entries(raw)) {
    if (grouping && param === 'groupBy') {
      if (values.length > 1) return { ok: false, error: `groupBy: given more than once, expected once, got ${echo(values)}` };
      if (!keys.includes(values[0]!)) return { ok: false, error: `groupBy: not a configured dimension, ${expected}, got ${echo(values)}` };
      groupBy = values[0]!;
    } else if (param.startsWith(PREFIX)) {
      const key = param.slice(PREFIX.length);
      if (!keys.includes(key)) return { ok: false, error: `${param}: not a configured dimension, ${expected}, got ${echo(values)}` };
      if (values.length > MAX_VALUES) return { ok: false, error: `${param}: more than ${MAX_VALUES} values, got ${echo(values)}` };
      const bad = values.find((v) => v.length === 0 || v.length > MAX_DIMENSION_VALUE);
      if (bad !== undefined) {
        const what = bad.length ? `longer than ${MAX_DIMENSION_VALUE} characters` : 'empty, expected a value';
        return { ok: false, error: `${param}: ${what}, got ${echo([bad])}` };
      }
      filters[key] = values;
    } else {
      rest[param] = values;
    }
  }
  return { ok: true, value: { filters, groupBy }, rest };
}

/**
 * SQL condition on the facts `f` for `filters`, each key's values one bind parameter
 * appended to `params`: containment tests the GIN index of dims serves.
 */
export function dimensionCondition(filters: DimensionFilters, params: unknown[]): string {
  const terms = Object.entries(filters).map(([key, values]) => {
    params.push(values.map((value) => JSON.stringify({ [key]: value })));
    return `f.dims @> any($${params.length}::jsonb[])`;
  });
  return terms.length ? terms.join(' and ') : 'true';
}

/** The dimension parameters an endpoint takes, as an unknown parameter's error lists them. */
export const dimensionParamNames = (keys: readonly string[], grouping: boolean): string[] =>
  keys.length ? [...keys.map((k) => `${PREFIX}${k}`), ...(grouping ? ['groupBy'] : [])] : [];

/** The filters as file-name parts: `<key>=<value>` each. */
export const filterParts = (filters: DimensionFilters): string[] =>
  Object.entries(filters).flatMap(([key, values]) => values.map((v) => `${key}=${v}`));

export interface DimensionValue {
  key: string;
  value: string;
  /** Calls that started in the range with this value. */
  calls: number;
}

export interface DimensionValues {
  keys: string[];
  /** Per key, most calls first, at most MAX_VALUES of them. */
  rows: DimensionValue[];
  /** The keys that have more values than the answer lists. */
  truncated: string[];
}

/**
 * The values each configured dimension takes among the calls that started in the range
 * (of `queues`, all when null), most calls first: what a dashboard offers as filters. A
 * value absent from every call of the range is not listed, so it cannot be offered.
 */
export async function dimensionValues(db: Queryable, range: Range, queues: string[] | null, keys: readonly string[]): Promise<DimensionValues> {
  if (!keys.length) return { keys: [], rows: [], truncated: [] };
  const { rows } = await db.query<DimensionValue & { rank: string }>(
    `select key, value, calls, rank
       from (select key, value, calls, row_number() over (partition by key order by calls desc, value collate "C") as rank
               from (select k.key, f.dims ->> k.key as value, count(*)::integer as calls
                       from interaction_fact f cross join unnest($3::text[]) as k(key)
                      where f.start_ts >= $1::timestamptz and f.start_ts < $2::timestamptz
                        and ($4::text[] is null or f.queue = any($4::text[]))
                        and f.dims ? k.key
                      group by k.key, f.dims ->> k.key) c) v
      where rank <= $5::integer + 1
      order by array_position($3::text[], key), rank`,
    [range.from, range.to, keys, queues, MAX_VALUES],
  );
  const listed = rows.filter((r) => Number(r.rank) <= MAX_VALUES).map(({ key, value, calls }) => ({ key, value, calls }));
  const truncated = [...new Set(rows.filter((r) => Number(r.rank) > MAX_VALUES).map((r) => r.key))];
  return { keys: [...keys], rows: listed, truncated };
}
