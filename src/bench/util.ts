/** Small helpers shared by the benchmark stages: progress to stderr, waiting, statistics. */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, type Logger } from '../logger';

export { sleep };
export { waitFor } from '../wait';

/** Progress lines go to stderr; stdout is kept for the result. */
export const log: Logger = createLogger('bench');

export const seconds = (ms: number): number => round(ms / 1000, 3);

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Rounds to `digits` significant digits (for rates spanning orders of magnitude). */
export function sig(n: number | null, digits = 3): number | null {
  if (n === null || !Number.isFinite(n)) return null;
  if (n === 0) return 0;
  const p = Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(n))));
  return round(n, p);
}

export const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : round(a / b, 3));

/** Nearest-rank percentile of an ascending array; null when empty. */
export function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface Distribution {
  samples: number;
  p50Seconds: number | null;
  p95Seconds: number | null;
  p99Seconds: number | null;
  maxSeconds: number | null;
  meanSeconds: number | null;
}

/** p50/p95/p99/max of latencies given in ms, in seconds. */
export function distribution(ms: number[]): Distribution {
  const s = [...ms].sort((a, b) => a - b);
  const sec = (v: number | null) => (v === null ? null : round(v / 1000, 3));
  return {
    samples: s.length,
    p50Seconds: sec(percentile(s, 50)),
    p95Seconds: sec(percentile(s, 95)),
    p99Seconds: sec(percentile(s, 99)),
    maxSeconds: sec(s.length ? s[s.length - 1]! : null),
    meanSeconds: sec(s.length ? s.reduce((a, b) => a + b, 0) / s.length : null),
  };
}

/** Peak resident set (VmHWM) of a live process in MB, from /proc; null when unreadable. */
export function peakRssMb(pid: number | null | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : null;
  } catch {
    return null;
  }
}

/** Runs a stage, timing it; an error is recorded (benchmarks report, they do not stop at the first failure). */
export async function stage<T>(
  name: string,
  errors: { stage: string; message: string }[],
  fn: () => Promise<T>,
): Promise<T | null> {
  const t0 = Date.now();
  log.info(`stage ${name}: start`);
  try {
    const r = await fn();
    log.info(`stage ${name}: done in ${seconds(Date.now() - t0)} s`);
    return r;
  } catch (e) {
    const message = (e as Error).stack ?? String(e);
    log.error(`stage ${name} failed after ${seconds(Date.now() - t0)} s: ${message}`);
    errors.push({ stage: name, message: (e as Error).message ?? String(e) });
    return null;
  }
}
