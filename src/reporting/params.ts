/**
 * Query parameters of the reports, validated with zod. A bad request gets one message
 * in the contract's form `<param>: <what was wrong>, got <value>`, naming the first
 * problem found; parameters the endpoint does not know are refused, not ignored.
 */
import { z } from 'zod';
import { GRANULARITIES, type Bucketing, type Granularity } from './buckets';
import type { InteractionLookup, Range } from './queries';

/** Every value of every query parameter, in order; a parameter may repeat. */
export type RawParams = Record<string, string[]>;

export const MAX_RANGE_DAYS = 31;
/** Day and month buckets keep a year's rows few (MAX_REPORT_ROWS bounds them all the same). */
export const MAX_LONG_RANGE_DAYS = 366;
const LONG_RANGE_GRANULARITIES: readonly Granularity[] = ['day', 'month'];
/** Bounds on repeatable names (queue, agent), so a request cannot become an unbounded SQL array. */
const MAX_NAMES = 100;
const MAX_NAME_LENGTH = 200;
/** Echoed values are cut here: the message is for a person reading it, not a copy of the request. */
const MAX_ECHO = 80;

const TIMESTAMP_HINT = 'an ISO-8601 UTC timestamp such as 2024-03-01T10:00:00Z (or a date, 2024-03-01)';
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * A date (midnight UTC) or a date and time with `Z` or an offset. A time without a zone
 * is refused: it would mean the server's time zone, which the dashboard cannot know.
 * Fields that `Date` would roll over (February 30, 24:00) are refused, not shifted.
 */
export function parseTimestamp(text: string): Date | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((v) => Number(v ?? 0)) as [number, number, number, number, number, number];
  const ms = m[7] ? Number(m[7].slice(1).padEnd(3, '0')) : 0;
  const wall = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
  const rolledOver =
    wall.getUTCFullYear() !== year ||
    wall.getUTCMonth() !== month - 1 ||
    wall.getUTCDate() !== day ||
    wall.getUTCHours() !== hour ||
    wall.getUTCMinutes() !== minute ||
    wall.getUTCSeconds() !== second;
  if (rolledOver) return null;
  const zone = m[8] ?? 'Z';
  if (zone === 'Z') return wall;
  const [offsetHours, offsetMinutes] = zone.slice(1).split(':').map(Number) as [number, number];
  if (offsetHours > 23 || offsetMinutes > 59) return null;
  const offsetMs = (zone.startsWith('-') ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  return new Date(wall.getTime() - offsetMs);
}

const timestamp = z.string().transform((text, ctx) => {
  const at = parseTimestamp(text);
  if (at === null) {
    ctx.addIssue({ code: 'custom', message: `expected ${TIMESTAMP_HINT}` });
    return z.NEVER;
  }
  return at;
});

const callId = z.guid('expected a UUID such as 0b6f3c2e-8d1a-4c5e-9f00-1a2b3c4d5e6f');

// `+` in a query string means a space: an unencoded +15551234 arrives as " 15551234".
const ani = z.string().regex(/^\+?[0-9]{2,20}$/, 'expected a caller number: 2 to 20 digits, optionally after + (sent as %2B)');

const name = z
  .string()
  .min(1, 'empty, expected a name')
  .max(MAX_NAME_LENGTH, `longer than ${MAX_NAME_LENGTH} characters`);

/** A parameter given exactly once, its value checked by `value`. */
function once<T>(value: z.ZodType<T, string>, expected: string) {
  return z
    .array(z.string(), { error: `missing, expected ${expected}` })
    .refine((values) => values.length === 1, 'given more than once, expected once')
    .transform((values) => values[0]!)
    .pipe(value);
}

/** A repeatable parameter, each value checked by `name`. */
const names = z.array(name).max(MAX_NAMES, `more than ${MAX_NAMES} values`);

const rangeFields = {
  from: once(timestamp, TIMESTAMP_HINT),
  to: once(timestamp, TIMESTAMP_HINT),
};

/** `to` after `from`, at most `maxDays` apart; reported against `to`, with `hint` after the limit. */
function checkRange(range: { from?: Date; to?: Date }, ctx: z.RefinementCtx, maxDays = MAX_RANGE_DAYS, hint = ''): void {
  const { from, to } = range;
  // A value already refused has no date to compare; its own issue says why.
  if (!(from instanceof Date) || !(to instanceof Date)) return;
  if (to.getTime() <= from.getTime()) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: `must be later than from (${from.toISOString()})` });
  } else if (to.getTime() - from.getTime() > maxDays * 86_400_000) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: `range longer than ${maxDays} days from ${from.toISOString()}${hint}` });
  }
}

const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/**
 * An IANA zone name as Intl spells it (`europe/paris` is `Europe/Paris`), or null. Names
 * only: an offset such as `+01:00` is refused, since PostgreSQL reads POSIX offsets with
 * the opposite sign.
 */
export function canonicalZone(text: string): string | null {
  if (!ZONE_NAME.test(text)) return null;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: text }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

const zone = z.string().transform((text, ctx) => {
  const canonical = canonicalZone(text);
  if (canonical === null) {
    ctx.addIssue({ code: 'custom', message: 'expected an IANA time zone such as Europe/Paris or UTC' });
    return z.NEVER;
  }
  return canonical;
});

export const FORMATS = ['json', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

const formatField = { format: once(z.enum(FORMATS, { error: `expected ${FORMATS.join(' or ')}` }), FORMATS.join(' or ')).optional() };
const tzField = { tz: once(zone, 'an IANA time zone').optional() };
const bucketFields = {
  ...rangeFields,
  granularity: once(z.enum(GRANULARITIES, { error: `expected one of ${GRANULARITIES.join(', ')}` }), GRANULARITIES.join(', ')).optional(),
  ...tzField,
  ...formatField,
};

/** The input of a summary: range, buckets (default 15min in UTC, as before these existed) and format. */
export interface SummaryInput {
  range: Range;
  bucketing: Bucketing;
  format: Format;
}

const bucketed = <P extends { from: Date; to: Date; granularity?: Granularity; tz?: string; format?: Format }>(p: P): SummaryInput => ({
  range: { from: p.from, to: p.to },
  bucketing: { granularity: p.granularity ?? '15min', tz: p.tz ?? 'UTC' },
  format: p.format ?? 'json',
});

/** The range limit depends on the buckets: a year of days, a month of 15-minute intervals. */
function checkBucketRange(p: { from?: Date; to?: Date; granularity?: Granularity }, ctx: z.RefinementCtx): void {
  if (p.granularity && LONG_RANGE_GRANULARITIES.includes(p.granularity)) checkRange(p, ctx, MAX_LONG_RANGE_DAYS);
  else checkRange(p, ctx, MAX_RANGE_DAYS, ` (${MAX_LONG_RANGE_DAYS} with granularity day or month)`);
}

export const queueSummaryParams = z
  .strictObject({ ...bucketFields, queue: names.optional() })
  .superRefine(checkBucketRange)
  .transform((p): SummaryInput & { queues: string[] | null } => ({ ...bucketed(p), queues: p.queue ?? null }));

export const agentSummaryParams = z
  .strictObject({ ...bucketFields, agent: names.optional() })
  .superRefine(checkBucketRange)
  .transform((p): SummaryInput & { agents: string[] | null } => ({ ...bucketed(p), agents: p.agent ?? null }));

export const agentStatesParams = z
  .strictObject({ ...rangeFields, agent: once(name, 'an agent id'), ...tzField, ...formatField })
  .superRefine((p, ctx) => checkRange(p, ctx))
  .transform((p) => ({ range: { from: p.from, to: p.to }, agent: p.agent, tz: p.tz ?? 'UTC', format: p.format ?? 'json' }));

/** The values of the dimensions in a range: as long a range as the longest report's, since it fills that report's filters. */
export const dimensionValuesParams = z
  .strictObject({ ...rangeFields, queue: names.optional(), ...formatField })
  .superRefine((p, ctx) => checkRange(p, ctx, MAX_LONG_RANGE_DAYS))
  .transform((p) => ({ range: { from: p.from, to: p.to }, queues: p.queue ?? null, format: p.format ?? 'json' }));

const LOOKUP_KEYS = ['callId', 'ani', 'queue'] as const;

export const interactionsParams = z
  .strictObject({
    callId: once(callId, 'a UUID').optional(),
    ani: once(ani, 'a caller number').optional(),
    queue: once(name, 'a queue name').optional(),
    from: rangeFields.from.optional(),
    to: rangeFields.to.optional(),
    ...formatField,
  })
  .superRefine((p, ctx) => {
    const keys = LOOKUP_KEYS.filter((k) => p[k] !== undefined);
    if (!keys.length) {
      ctx.addIssue({ code: 'custom', path: ['callId'], message: 'missing, expected callId=UUID, ani=NUMBER or queue=NAME with from and to' });
    } else if (keys.length > 1) {
      ctx.addIssue({ code: 'custom', path: [keys[1]!], message: `not with ${keys[0]}: look calls up by one of callId, ani or queue` });
    } else if (p.callId !== undefined) {
      for (const key of ['from', 'to'] as const) {
        if (p[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only with ani or queue, not with callId' });
      }
    } else if (p.queue !== undefined && p.from === undefined) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'missing: queue needs from and to' });
    } else if ((p.from === undefined) !== (p.to === undefined)) {
      const missing = p.from === undefined ? 'from' : 'to';
      ctx.addIssue({ code: 'custom', path: [missing], message: 'missing: from and to go together' });
    } else {
      checkRange(p, ctx);
    }
  })
  .transform((p): { lookup: InteractionLookup; format: Format } => {
    const range = p.from && p.to ? { from: p.from, to: p.to } : null;
    const lookup: InteractionLookup =
      p.callId !== undefined ? { callId: p.callId } : p.ani !== undefined ? { ani: p.ani, range } : { queue: p.queue!, range: range! };
    return { lookup, format: p.format ?? 'json' };
  });

/** The schemas above: a strict object of string arrays, refined and turned into a report's input. */
export type ParamSchema<T> = z.ZodPipe<z.ZodObject<z.ZodRawShape, z.core.$strict>, z.ZodTransform<T, unknown>>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Without a prototype: a parameter named `toString`, `__proto__` or `constructor` is a
 * parameter like any other (an unknown one), never the object's own method.
 */
export function rawParams(search: URLSearchParams): RawParams {
  const raw: RawParams = Object.create(null) as RawParams;
  for (const [key, value] of search) (raw[key] ??= []).push(value);
  return raw;
}

/** `also`: parameters taken out before the schema (the dimensions), named among the expected ones. */
export function parseParams<T>(schema: ParamSchema<T>, raw: RawParams, also: string[] = []): ParseResult<T> {
  const result = schema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: describeIssue(result.error.issues[0]!, raw, [...Object.keys(schema.in.shape), ...also]) };
}

/** One value as a JSON string, several as a JSON array. */
export function echo(values: string[]): string {
  const text = JSON.stringify(values.length === 1 ? values[0] : values);
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text;
}

/** `<param>: <what was wrong>, got <value>`; a missing parameter has no value to show. */
function describeIssue(issue: z.core.$ZodIssue, raw: RawParams, allowed: string[]): string {
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    return `${key}: unknown parameter, expected one of ${allowed.join(', ')}, got ${echo(raw[key] ?? [])}`;
  }
  const [key, index] = issue.path;
  const values = raw[String(key)] ?? [];
  if (!values.length) return `${String(key)}: ${issue.message}`;
  return `${String(key)}: ${issue.message}, got ${echo(typeof index === 'number' ? [values[index]!] : values)}`;
}
