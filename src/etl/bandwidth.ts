/**
 * What a site's ETL read from its members, split by where they are: a member at the
 * loading site is read over the site's own network, any other across the WAN. Computed
 * from the ETL workflow's member status (rows and bytes summed over its runs), for
 * `twinmart status` and the benchmark.
 */
import type { MemberStatus } from '../workflows/etl-messages';

export interface Bandwidth {
  /**
   * Events landed, each counted once: per HA set, the most rows one of its members gave.
   * Every member holds its set's events, so this is exact when one member was read in
   * full, and a lower bound when each member missed some (gaps on both).
   */
  eventsLanded: number;
  localBytes: number;
  remoteBytes: number;
  localBytesPerEvent: number | null;
  remoteBytesPerEvent: number | null;
}

export function siteBandwidth(site: string, members: Record<string, Pick<MemberStatus, 'site' | 'sourceId' | 'rowsTotal' | 'bytesRead'>>): Bandwidth {
  const perSet = new Map<string, number>();
  let localBytes = 0;
  let remoteBytes = 0;
  for (const m of Object.values(members)) {
    perSet.set(m.sourceId, Math.max(perSet.get(m.sourceId) ?? 0, m.rowsTotal));
    if (m.site === site) localBytes += m.bytesRead ?? 0;
    else remoteBytes += m.bytesRead ?? 0;
  }
  const eventsLanded = [...perSet.values()].reduce((a, b) => a + b, 0);
  const per = (bytes: number) => (eventsLanded ? Math.round((bytes / eventsLanded) * 10) / 10 : null);
  return { eventsLanded, localBytes, remoteBytes, localBytesPerEvent: per(localBytes), remoteBytesPerEvent: per(remoteBytes) };
}
