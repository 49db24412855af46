/**
 * Ranges and buckets in a time zone, with Intl alone: a day is midnight to midnight on
 * that zone's wall clock, so a DST day has 23 or 25 hours.
 */

export const RELATIVE_RANGES = {
  '15m': 'Last 15 minutes',
  '1h': 'Last hour',
  '24h': 'Last 24 hours',
  today: 'Today',
  yesterday: 'Yesterday',
  week: 'This week',
};
export const GRANULARITIES = { '15min': '15 minutes', hour: 'Hour', day: 'Day', month: 'Month' };

const partsFormats = new Map();
function partsFormat(tz) {
  let f = partsFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short',
    });
    partsFormats.set(tz, f);
  }
  return f;
}

const WEEKDAYS = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** The wall clock of instant `ms` in `tz`. */
function wallClock(ms, tz) {
  const p = {};
  for (const { type, value } of partsFormat(tz).formatToParts(new Date(ms))) p[type] = value;
  return { year: +p.year, month: +p.month, day: +p.day, hour: +p.hour, minute: +p.minute, second: +p.second, weekday: WEEKDAYS[p.weekday] };
}

export function isValidZone(tz) {
  try {
    partsFormat(tz);
    return true;
  } catch {
    return false;
  }
}

/** The instant a wall-clock time has in `tz` (a time that does not exist, in a spring-forward gap, moves forward). */
function fromWallClock(w, tz) {
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour || 0, w.minute || 0, w.second || 0);
  let t = asUtc;
  // Two rounds settle the offset also right after a transition.
  for (let i = 0; i < 2; i++) {
    const seen = wallClock(t, tz);
    t = asUtc - (Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute, seen.second) - t);
  }
  return t;
}

function startOfDay(ms, tz, addDays = 0) {
  const w = wallClock(ms, tz);
  return fromWallClock({ year: w.year, month: w.month, day: w.day + addDays }, tz);
}

/** [from, to) of a relative range at `now`. */
export function resolveRelative(name, tz, now) {
  switch (name) {
    case '15m':
      return { from: now - 15 * 60_000, to: now };
    case '1h':
      return { from: now - 3600_000, to: now };
    case '24h':
      return { from: now - 24 * 3600_000, to: now };
    case 'today':
      return { from: startOfDay(now, tz), to: startOfDay(now, tz, 1) };
    case 'yesterday':
      return { from: startOfDay(now, tz, -1), to: startOfDay(now, tz) };
    case 'week': {
      const monday = -wallClock(now, tz).weekday;
      return { from: startOfDay(now, tz, monday), to: startOfDay(now, tz, monday + 7) };
    }
  }
  return null;
}

/** The start of the bucket after the one starting at `ms`. */
export function bucketEnd(ms, granularity, tz) {
  if (granularity === '15min') return ms + 15 * 60_000;
  if (granularity === 'hour') return ms + 3600_000;
  const w = wallClock(ms, tz);
  return granularity === 'day'
    ? fromWallClock({ year: w.year, month: w.month, day: w.day + 1 }, tz)
    : fromWallClock({ year: w.year, month: w.month + 1, day: 1 }, tz);
}

const pad2 = (n) => String(n).padStart(2, '0');

/** An instant as the value of <input type="datetime-local"> on the wall clock of `tz`. */
export function toZonedInput(ms, tz) {
  const w = wallClock(ms, tz);
  return w.year + '-' + pad2(w.month) + '-' + pad2(w.day) + 'T' + pad2(w.hour) + ':' + pad2(w.minute);
}

export function fromZonedInput(value, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || '');
  return m ? fromWallClock({ year: +m[1], month: +m[2], day: +m[3], hour: +m[4], minute: +m[5] }, tz) : null;
}
