/**
 * Whether the sites run identical configuration where it decides what their marts hold
 * (the vendor design requires it; docs/architecture.md, "Identical configuration").
 * Free of Node imports: the DR workflow compares with it.
 */

/** A hash per configuration key that must match across sites; ids and hashes only, so it may travel in history. */
export interface ConfigFingerprint {
  digest: string;
  keys: Record<string, string>;
}

/** The keys whose hash differs between any two of the sites given (a key one site lacks differs), sorted. */
export function differingKeys(bySite: Record<string, ConfigFingerprint>): string[] {
  const prints = Object.values(bySite);
  if (prints.length < 2 || prints.every((p) => p.digest === prints[0]!.digest)) return [];
  const keys = new Set(prints.flatMap((p) => Object.keys(p.keys)));
  return [...keys].filter((k) => prints.some((p) => p.keys[k] !== prints[0]!.keys[k])).sort();
}
