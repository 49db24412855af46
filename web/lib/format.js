/** Numbers, durations and times as the dashboard shows them; times on the wall clock of the chosen zone. */

const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const pad2 = (n) => String(n).padStart(2, '0');

export const fmtInt = (n) => (n == null ? '—' : nf0.format(n));
export const fmtPct = (n) => (n == null ? '—' : nf1.format(n));
export const fmtOne = (n) => (n == null ? '—' : nf1.format(n));

/** Seconds -> m:ss (under an hour) or h:mm:ss. */
export function fmtDuration(s) {
  if (s == null || Number.isNaN(Number(s))) return '—';
  const total = Math.round(Number(s));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  return hh > 0 ? hh + ':' + pad2(mm) + ':' + pad2(ss) : mm + ':' + pad2(ss);
}

/** Axis ticks: whole hours as "2 h", else minutes or h:mm. */
export function fmtHours(s) {
  const m = Math.round(Number(s) / 60);
  if (m === 0) return '0';
  if (m % 60 === 0) return m / 60 + ' h';
  return m < 60 ? m + ' min' : Math.floor(m / 60) + ':' + pad2(m % 60);
}

// 24-hour clock: compact, and what contact-center reports use.
const H23 = { hourCycle: 'h23' };
const cache = new Map();

/** Formatters for one time zone. */
export function timeFormats(tz) {
  let f = cache.get(tz);
  if (f) return f;
  const make = (o) => new Intl.DateTimeFormat(undefined, { timeZone: tz, ...o });
  const time = make({ hour: '2-digit', minute: '2-digit', ...H23 });
  const timeSec = make({ hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const dayTime = make({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', ...H23 });
  const daySec = make({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const full = make({ year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const date = make({ weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' });
  const month = make({ year: 'numeric', month: 'long' });
  const dayKey = make({ year: 'numeric', month: '2-digit', day: '2-digit' });
  const year = make({ year: 'numeric' });
  f = {
    time: (ms) => time.format(new Date(ms)),
    timeSec: (ms) => timeSec.format(new Date(ms)),
    dayTime: (ms) => dayTime.format(new Date(ms)),
    full: (ms) => full.format(new Date(ms)),
    /** A bucket's start as its granularity names it; 15 minutes and hours with the day when the range spans days. */
    bucket(ms, granularity, multiDay) {
      if (granularity === 'month') return month.format(new Date(ms));
      if (granularity === 'day') return date.format(new Date(ms));
      return multiDay ? dayTime.format(new Date(ms)) : time.format(new Date(ms));
    },
    sameDay: (a, b) => dayKey.format(new Date(a)) === dayKey.format(new Date(b)),
    /** A timestamp: the time alone when it is today, else with the day (the year only when not this year). */
    ts(iso) {
      if (!iso) return '—';
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return String(iso);
      if (dayKey.format(d) === dayKey.format(new Date())) return timeSec.format(d);
      return year.format(d) === year.format(new Date()) ? daySec.format(d) : full.format(d);
    },
  };
  cache.set(tz, f);
  return f;
}

export function fmtAgo(iso, tz) {
  if (!iso) return 'never';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min ago';
  return timeFormats(tz).full(d.getTime());
}
