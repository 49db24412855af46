/**
 * Query parameters of the reports, validated with zod. A bad request gets one message
 * in the contract's form `<param>: <what was wrong>, got <value>`, naming the first
 * problem found; parameters the endpoint does not know are refused, not ignored.
 */
import { z } from 'zod';
import type { InteractionLookup, Range } from './queries';

/** Every value of every query parameter, in order; a parameter may repeat. */
export type RawParams = Record<string, string[]>;

export const MAX_RANGE_DAYS = 31;
const MAX_RANGE_MS = MAX_RANGE_DAYS * 86_400_000;
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

/** `to` after `from`, at most MAX_RANGE_DAYS apart; reported against `to`. */
function checkRange(range: { from?: Date; to?: Date }, ctx: z.RefinementCtx): void {
  const { from, to } = range;
  // A value already refused has no date to compare; its own issue says why.
  if (!(from instanceof Date) || !(to instanceof Date)) return;
  if (to.getTime() <= from.getTime()) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: `must be later than from (${from.toISOString()})` });
  } else if (to.getTime() - from.getTime() > MAX_RANGE_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['to'],
      message: `range longer than ${MAX_RANGE_DAYS} days from ${from.toISOString()}`,
    });
  }
}

export const queueSummaryParams = z
  .strictObject({ ...rangeFields, queue: names.optional() })
  .superRefine(checkRange)
  .transform((p): { range: Range; queues: string[] | null } => ({ range: { from: p.from, to: p.to }, queues: p.queue ?? null }));

export const agentSummaryParams = z
  .strictObject({ ...rangeFields, agent: names.optional() })
  .superRefine(checkRange)
  .transform((p): { range: Range; agents: string[] | null } => ({ range: { from: p.from, to: p.to }, agents: p.agent ?? null }));

export const interactionsParams = z
  .strictObject({
    callId: once(callId, 'a UUID').optional(),
    ani: once(ani, 'a caller number').optional(),
    from: rangeFields.from.optional(),
    to: rangeFields.to.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.callId === undefined && p.ani === undefined) {
      ctx.addIssue({ code: 'custom', path: ['callId'], message: 'missing, expected callId=UUID or ani=NUMBER' });
    } else if (p.callId !== undefined && p.ani !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['ani'], message: 'not with callId: look a call up by callId or by ani' });
    } else if (p.callId !== undefined) {
      for (const key of ['from', 'to'] as const) {
        if (p[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only with ani, not with callId' });
      }
    } else if ((p.from === undefined) !== (p.to === undefined)) {
      const missing = p.from === undefined ? 'from' : 'to';
      ctx.addIssue({ code: 'custom', path: [missing], message: 'missing: from and to go together' });
    } else {
      checkRange(p, ctx);
    }
  })
  .transform((p): InteractionLookup =>
    p.callId !== undefined
      ? { callId: p.callId }
      : { ani: p.ani!, range: p.from && p.to ? { from: p.from, to: p.to } : null },
  );

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

export function parseParams<T>(schema: ParamSchema<T>, raw: RawParams): ParseResult<T> {
  const result = schema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: describeIssue(result.error.issues[0]!, raw, Object.keys(schema.in.shape)) };
}

/** One value as a JSON string, several as a JSON array. */
function echo(values: string[]): string {
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
