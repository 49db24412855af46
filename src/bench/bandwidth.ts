/**
 * What the catch-up read from the members, as the ETL workflow counted it (the figures
 * `twinmart status` shows): bytes per event landed from members at the loading site and
 * from members across the WAN, against one full copy of an event as an IDB gives it.
 * The baseline for reading partners' copies by key instead of in full.
 */
import { siteBandwidth } from '../etl/bandwidth';
import { etlStatusQuery } from '../workflows/etl-messages';
import { etlWorkflowId } from '../workflows/names';
import type { PlainResult, RawResult } from './catchup';
import type { Backlog } from './load';
import type { BenchWorld } from './world';
import { round, waitFor } from './util';

export interface BandwidthResult {
  /** The loading site; members elsewhere are remote. */
  site: string;
  eventsLanded: number;
  localBytes: number;
  remoteBytes: number;
  localBytesPerEvent: number | null;
  remoteBytesPerEvent: number | null;
  /** COPY bytes of one full copy of an event: the keyed baseline's bytes (one member per set) over its rows. */
  fullRowBytesPerEvent: number | null;
  /** Full copies of each event that crossed the WAN (remote over full bytes per event). */
  remoteCopiesPerEvent: number | null;
  members: Record<string, { site: string; rows: number; bytes: number }>;
  /** Full and lean extraction side by side: the no-Temporal loop's catch-up of the same backlog, each into a fresh mart of the site. */
  full: ExtractionBandwidth | null;
  lean: ExtractionBandwidth | null;
}

export interface ExtractionBandwidth {
  eventsPerSecond: number;
  seconds: number;
  localBytesPerEvent: number;
  remoteBytesPerEvent: number;
  localCopiesPerEvent: number | null;
  remoteCopiesPerEvent: number | null;
}

/** What a no-Temporal catch-up read per event of the backlog (each event once), against one full copy. */
function extractionBandwidth(plain: PlainResult | null, backlog: Backlog, fullRowBytesPerEvent: number | null): ExtractionBandwidth | null {
  if (!plain) return null;
  const events = backlog.callEvents + backlog.agentEvents;
  const per = (bytes: number) => round(bytes / events, 1);
  const copies = (bytes: number) => (fullRowBytesPerEvent ? round(per(bytes) / fullRowBytesPerEvent, 2) : null);
  return {
    eventsPerSecond: plain.eventsPerSecond,
    seconds: plain.seconds,
    localBytesPerEvent: per(plain.localBytes),
    remoteBytesPerEvent: per(plain.remoteBytes),
    localCopiesPerEvent: copies(plain.localBytes),
    remoteCopiesPerEvent: copies(plain.remoteBytes),
  };
}

export async function catchupBandwidth(
  w: BenchWorld,
  site: string,
  backlog: Backlog,
  keyed: RawResult | null,
  plain: { full: PlainResult | null; lean: PlainResult | null },
): Promise<BandwidthResult> {
  const handle = w.client.workflow.getHandle(etlWorkflowId(site));
  // The mart is complete at the last chunk's commit; the workflow counts the cycle when its activity returns.
  const status = await waitFor(
    `${site}'s ETL to count every row it extracted`,
    async () => {
      const s = await handle.query(etlStatusQuery);
      return Object.values(s.members).reduce((a, m) => a + m.rowsTotal, 0) >= backlog.memberRows && s;
    },
    60_000,
    100,
  );
  const b = siteBandwidth(site, status.members);
  const fullBytes = keyed ? Object.values(keyed.members).reduce((a, m) => a + m.bytes, 0) : 0;
  const fullRowBytesPerEvent = keyed?.rows ? round(fullBytes / keyed.rows, 1) : null;
  return {
    site,
    ...b,
    fullRowBytesPerEvent,
    remoteCopiesPerEvent: fullRowBytesPerEvent && b.remoteBytesPerEvent !== null ? round(b.remoteBytesPerEvent / fullRowBytesPerEvent, 2) : null,
    members: Object.fromEntries(Object.entries(status.members).map(([id, m]) => [id, { site: m.site, rows: m.rowsTotal, bytes: m.bytesRead ?? 0 }])),
    full: extractionBandwidth(plain.full, backlog, fullRowBytesPerEvent),
    lean: extractionBandwidth(plain.lean, backlog, fullRowBytesPerEvent),
  };
}
