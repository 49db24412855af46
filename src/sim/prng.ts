/**
 * Seeded randomness. A simulation run is reproducible from its seed: every random draw
 * comes from a mulberry32 stream derived from (seed, purpose), never from Math.random.
 */

/** A uniform draw in [0, 1). */
export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An independent stream per purpose, so that drawing more numbers for one purpose
 * (say, traffic details) does not shift another (the arrival times that fault windows
 * are computed from).
 */
export function rngStream(seed: number, purpose: string): Rng {
  let h = 0x811c9dc5; // FNV-1a over the purpose name, then mixed with the seed
  for (let i = 0; i < purpose.length; i++) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193);
  return mulberry32(Math.imul(h ^ (seed >>> 0), 0x9e3779b1) ^ (seed >>> 0));
}

export function uniform(rng: Rng, min: number, max: number): number {
  return min + (max - min) * rng();
}

export function exponential(rng: Rng, mean: number): number {
  return -Math.log(1 - rng()) * mean;
}

/** Sum of two exponentials: a handling time with few implausibly short values. */
export function erlang2(rng: Rng, mean: number): number {
  return exponential(rng, mean / 2) + exponential(rng, mean / 2);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

export function pickWeighted<T extends { weight: number }>(rng: Rng, items: readonly T[]): T {
  const total = items.reduce((s, i) => s + i.weight, 0);
  let u = rng() * total;
  for (const item of items) {
    u -= item.weight;
    if (u < 0) return item;
  }
  return items[items.length - 1]!;
}

export function digits(rng: Rng, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) s += Math.floor(rng() * 10);
  return s;
}

/** A version-4-format UUID whose 122 random bits come from the stream. */
export function uuidV4(rng: Rng): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = Math.floor(rng() * 4294967296);
    bytes.push(word >>> 24, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff);
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
