/**
 * The chaos run's fault schedule (docs/chaos.md): a pure function of the seed, so a run
 * is repeated by its seed alone. Faults that can overlap do (a member paused while a
 * worker is killed); a whole site's loss and return runs alone, since the DR procedure
 * it exercises admits one procedure at a time.
 */
import { rngStream, type Rng } from '../sim/prng';

export const FAULT_KINDS = [
  'worker-kill', // SIGKILL of one site's worker
  'workers-kill', // both sites' workers at once
  'temporal-restart', // the Temporal server stopped and started again
  'member-stop', // a member IDB's PostgreSQL stopped immediate, started later
  'member-pause', // a member IDB's PostgreSQL paused with SIGSTOP (a network dropping packets), resumed
  'member-replace', // a member replaced by an empty database (a new incarnation)
  'member-restore', // a member restored from a base backup taken earlier (reused xids)
  'long-transaction', // a collector transaction open for a while, then committed
  'rollback', // a collector transaction that rolls back
  'site-loss', // a whole site stopped, failed over, back (intact, then wiped), reintroduced, failed back
  'twin-workers', // a second worker for the same site, then one of the two killed
  'mart-stop', // a mart's PostgreSQL stopped immediate while it loads, started again
  'hostile', // malformed IDB rows, malformed signals and updates to both workflows
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A whole site's loss holds the run for itself: nothing else starts until it settled. */
const EXCLUSIVE: ReadonlySet<FaultKind> = new Set(['site-loss']);

export interface Fault {
  /** Seconds from the start of the run. */
  at: number;
  kind: FaultKind;
  site: string;
  /** The member a member fault is about. */
  member?: string;
  /** How long the fault lasts before the system is let recover (a stop, a pause, an open transaction). */
  holdSeconds: number;
  /** site-loss: whether the site comes back wiped (a replacement) or intact. */
  wipe?: boolean;
}

export interface ScheduleInput {
  seed: number;
  /** Length of the faulty part of the run, in seconds. */
  seconds: number;
  sites: string[];
  members: { id: string; site: string }[];
  /** Kinds to draw from (default all); each appears at least once when the run is long enough. */
  kinds?: readonly FaultKind[];
  /** Mean seconds between fault starts (default 6). */
  meanGapSeconds?: number;
  /**
   * Draw kinds in shuffled rounds until each has come this many times, however long that
   * takes (`seconds` is then no limit): the shortest schedule that holds N of every kind.
   */
  perKind?: number;
}

/** How long a fault keeps the world busy after it starts (its hold plus what it needs to settle). */
export function faultSpan(f: Fault): number {
  return f.kind === 'site-loss' ? f.holdSeconds + 60 : f.holdSeconds + 3;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

function draw(rng: Rng, kind: FaultKind, at: number, input: ScheduleInput, wipeNext: boolean): Fault {
  const site = pick(rng, input.sites);
  const hold = (min: number, max: number) => Math.round((min + rng() * (max - min)) * 10) / 10;
  const member = pick(rng, input.members).id;
  switch (kind) {
    case 'member-stop':
    case 'member-pause':
      return { at, kind, site: input.members.find((m) => m.id === member)!.site, member, holdSeconds: hold(2, 12) };
    case 'member-replace':
    case 'member-restore':
    case 'rollback':
      return { at, kind, site: input.members.find((m) => m.id === member)!.site, member, holdSeconds: hold(1, 4) };
    case 'long-transaction':
      return { at, kind, site: input.members.find((m) => m.id === member)!.site, member, holdSeconds: hold(10, 40) };
    case 'site-loss':
      return { at, kind, site, holdSeconds: hold(5, 15), wipe: wipeNext };
    case 'temporal-restart':
      return { at, kind, site, holdSeconds: hold(1, 5) };
    default:
      return { at, kind, site, holdSeconds: hold(1, 6) };
  }
}

/**
 * The faults of a run, in start order. Kinds first come in a shuffled round (so a short
 * run holds each kind), then at random (with perKind: in shuffled rounds throughout). A fault that would overlap an exclusive one is
 * moved after it; an exclusive one waits until everything before it has settled.
 */
export function planFaults(input: ScheduleInput): Fault[] {
  const rng = rngStream(input.seed, 'chaos-schedule');
  const kinds = [...(input.kinds ?? FAULT_KINDS)];
  const gap = input.meanGapSeconds ?? 6;
  const shuffled = (): FaultKind[] => {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    return round;
  };
  let round = shuffled();
  const faults: Fault[] = [];
  let t = 5;
  let busyUntil = 0; // the end of the last fault
  let exclusiveUntil = 0;
  let wipeNext = false;
  const limit = input.perKind === undefined ? input.seconds : Infinity;
  while (t < limit) {
    if (input.perKind !== undefined && !round.length) {
      if (faults.length >= kinds.length * input.perKind) break;
      round = shuffled();
    }
    const kind = round.shift() ?? pick(rng, kinds);
    const exclusive = EXCLUSIVE.has(kind);
    const at = Math.round(Math.max(t, exclusiveUntil, exclusive ? busyUntil : 0) * 10) / 10;
    if (at >= limit) break;
    const f = draw(rng, kind, at, input, wipeNext);
    if (kind === 'site-loss') wipeNext = !wipeNext; // intact one time, wiped the next
    faults.push(f);
    busyUntil = Math.max(busyUntil, at + faultSpan(f));
    if (exclusive) exclusiveUntil = at + faultSpan(f);
    t = at + Math.max(0.5, -Math.log(1 - rng()) * gap);
  }
  return faults;
}

/** One line per fault, printed at the start of a run. */
export function formatSchedule(faults: Fault[]): string {
  return faults
    .map((f) => `  ${f.at.toFixed(1).padStart(7)} s  ${f.kind.padEnd(16)} ${f.member ?? f.site}  hold ${f.holdSeconds} s${f.wipe === undefined ? '' : f.wipe ? ' (wiped)' : ' (intact)'}`)
    .join('\n');
}

/** The collectors' own troubles in a run's traffic (SimOptions gaps and lateCommits), counted in calls. */
export interface TrafficFaults {
  gaps: { memberId: string; afterCalls: number; calls: number }[];
  lateCommits: { memberId: string; afterCalls: number; calls: number; holdMs: number }[];
}

/**
 * Each collector loses its data source now and then (a gap of 1 to 5 s) and commits a
 * window late (held 5 to 30 s), a mean of 45 s apart per member and kind; partners'
 * gaps overlap at times, which makes a real data gap. A pure function of the seed.
 * `offsetCalls`: calls of the traffic's history, written before the run starts.
 */
export function planTraffic(input: { seed: number; seconds: number; rate: number; members: string[]; offsetCalls: number }): TrafficFaults {
  const rng = rngStream(input.seed, 'chaos-traffic');
  const out: TrafficFaults = { gaps: [], lateCommits: [] };
  const calls = (s: number) => Math.max(1, Math.round(s * input.rate));
  for (const memberId of input.members) {
    for (const kind of ['gaps', 'lateCommits'] as const) {
      let t = 10 + rng() * 30;
      while (t < input.seconds) {
        const length = kind === 'gaps' ? 1 + rng() * 4 : 2 + rng() * 6;
        const w = { memberId, afterCalls: input.offsetCalls + calls(t), calls: calls(length) };
        if (kind === 'gaps') out.gaps.push(w);
        else out.lateCommits.push({ ...w, holdMs: Math.round(5000 + rng() * 25_000) });
        t += length + 5 + -Math.log(1 - rng()) * 40;
      }
    }
  }
  return out;
}
