import { createHash } from 'node:crypto';
import type { Config } from './index';
import type { ConfigFingerprint } from './match';

const hash = (value: unknown): string => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 12);

/**
 * The parts of a site's configuration that decide what its mart keeps, which every site
 * must share: the sites, each HA set's members in their order (the best-quality rule's
 * tie-break), and the fact and retention rules. URLs are left out (each site may reach an IDB by its own
 * address), and so is tuning (cycle, chunk sizes, timeouts, etl.extraction) that changes
 * speed or bytes read, not facts.
 */
export function configFingerprint(config: Config): ConfigFingerprint {
  const parts: Record<string, unknown> = {
    sites: Object.keys(config.sites).sort(),
    'reporting.primary': config.reporting.primary,
    'etl.serviceLevelSeconds': config.etl.serviceLevelSeconds,
    'etl.queueServiceLevelSeconds': Object.entries(config.etl.queueServiceLevelSeconds).sort(),
    'etl.shortAbandonSeconds': config.etl.shortAbandonSeconds,
    // Not a rule of the mart, but of what its figures say: after a failover users must read
    // the same service level at the other site.
    'reporting.serviceLevelFormula': config.reporting.serviceLevelFormula,
    'etl.maxCallSeconds': config.etl.maxCallSeconds,
    // The attrs a fact keeps: sites keeping others would report different dimensions.
    'etl.dimensions': config.etl.dimensions,
    // Both decide facts: factDays which facts a mart still has (parity compares them), and
    // stagingDays from when a call's fact is final, a late event for it ignored
    // (docs/retention.md). batchRows and schedule only pace the purge.
    'retention.stagingDays': config.retention.stagingDays,
    'retention.factDays': config.retention.factDays,
  };
  for (const [sourceId, members] of Object.entries(config.sources)) {
    parts[`sources.${sourceId}`] = members.map((m) => [m.id, m.site]);
  }
  const keys = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, hash(v)]));
  return { digest: hash(Object.entries(keys).sort()), keys };
}
