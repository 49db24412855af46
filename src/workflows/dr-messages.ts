/**
 * The DR workflow's messages (docs/architecture.md, "DR procedure"). Every operator command is a
 * signal (Web UI, `temporal workflow signal`) and an update of the same name (answers
 * with the validation result). Payloads are validated with zod in the workflow.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { SITE_ID } from '../config/ids';
import type { ConfigFingerprint } from '../config/match';
import type { SenderRef } from './senders';
import type { DrillReport } from './drill';

const site = z.string().regex(SITE_ID, `a site id matching ${SITE_ID}`);

export const drCommandSchemas = {
  declareSiteFailure: z.strictObject({ site, reason: z.string().max(500).optional() }),
  confirmReporting: z.strictObject({ site }),
  siteRebuilt: z.strictObject({ site }),
  failbackReporting: z.strictObject({ site }),
  retry: z.strictObject({}),
};
export type DrCommand = keyof typeof drCommandSchemas;
export const DR_COMMANDS = Object.keys(drCommandSchemas) as DrCommand[];

export type DrPhase = 'normal' | 'failing-over' | 'degraded' | 'reintroducing';
export type SiteState = 'active' | 'failed' | 'rebuilding';

export interface TimelineEntry {
  at: string;
  step: string;
  site?: string;
  detail?: string;
  /** A command's sender, the client identity Temporal recorded with it (absent in runs from before). */
  by?: string;
  /** Where to find that identity in the history while it is looked up (src/workflows/senders.ts). */
  sender?: SenderRef;
}

export interface RejectedCommand {
  command: string;
  reason: string;
  at: string;
  by?: string;
  sender?: SenderRef;
}

export interface PendingItem {
  kind: 'etl-confirmation' | 'operator' | 'activity';
  what: string;
  site: string;
  since: string;
  overdue: boolean;
  requestId?: string;
}

export interface DataLossSet {
  sourceId: string;
  members: { id: string; site: string }[];
  survivingMembers: string[];
  /** Set with no member at a surviving site: events after these times may be lost. */
  lastEventBySite: Record<string, string | null> | null;
}

/**
 * What a surviving mart had not read of a failed member when it last measured (rows on
 * the member's IDB beyond its cursor, and how old its last read was): at most that, plus
 * what the member recorded after `measuredAt`, is lost unless the site comes back intact.
 */
export interface UnreadLag {
  rowsBehind: number;
  secondsBehind: number | null;
  lastReadAt: string | null;
  measuredAt: string;
}

export interface DataLossReport {
  failedSite: string;
  at: string;
  potentialLoss: string[];
  sets: DataLossSet[];
  /** Per failed member, per surviving site: its last measured lag (null: never measured); absent in older reports. */
  unreadByMember?: Record<string, Record<string, UnreadLag | null>>;
  gapsBySite: Record<string, { sourceId: string; start: string; end: string | null }[]>;
}

export interface FailoverTimes {
  site: string;
  declaredAt: string;
  exclusionsConfirmedAt: string | null;
  reportingActivatedAt: string | null;
  reportingConfirmedAt: string | null;
  degradedAt: string | null;
  /** declareSiteFailure to exclusions confirmed and reporting activated (operator waits excluded). */
  rtoSeconds: number | null;
}

export interface DrStatus {
  phase: DrPhase;
  sites: Record<string, SiteState>;
  reporting: { primary: string; active: string; awaitingConfirmation: string | null };
  pending: PendingItem[];
  dataLoss: DataLossReport | null;
  timeline: TimelineEntry[];
  rejected: RejectedCommand[];
  suspected: Record<string, { since: string; failures: number; reason: string }>;
  lastFailover: FailoverTimes | null;
  reintroduction: {
    site: string;
    at: string;
    caughtUp: boolean;
    parity: string | null;
    /** Parity checks in a row that did not match, and what differed in the last (absent in runs from before). */
    parityFailures?: number;
    mismatches?: ParityDifference[];
  } | null;
  lastError: string | null;
  continuedAsNew: number;
  /**
   * The active sites' configuration as their workers last reported it in a probe: a
   * digest per site, and the keys that differ (docs/architecture.md, "Identical
   * configuration"). Absent in runs from before.
   */
  configuration?: { digests: Record<string, string>; differing: string[] };
  /** The last DR drill that ran to the end (absent in runs from before), and the one running now. */
  lastDrill?: DrillReport | null;
  drilling?: string | null;
}

/** One mismatching interval of a parity check: counts per site, never rows or keys. */
export interface ParityDifference {
  kind: string;
  interval: string;
  rows: Record<string, number>;
  /** Natural keys held by one site only. */
  onlyIn: Record<string, number>;
  changed: number;
}

export interface DrCommandResult {
  accepted: true;
  command: DrCommand;
  site: string | null;
  phase: DrPhase;
}

export const drSignals = Object.fromEntries(DR_COMMANDS.map((c) => [c, defineSignal<[unknown?]>(c)])) as Record<
  DrCommand,
  ReturnType<typeof defineSignal<[unknown?]>>
>;
export const drUpdates = Object.fromEntries(DR_COMMANDS.map((c) => [c, defineUpdate<DrCommandResult, [unknown]>(c)])) as Record<
  DrCommand,
  ReturnType<typeof defineUpdate<DrCommandResult, [unknown]>>
>;
export const drStatusQuery = defineQuery<DrStatus>('status');

/** Sent by the probe workflow (drProbeWorkflow) when a site's health or configuration changed. */
export interface SiteHealth {
  site: string;
  healthy: boolean;
  /** Failed probe rounds in a row. */
  failures: number;
  reason: string | null;
  config: ConfigFingerprint | null;
}
const hash = z.string().regex(/^[0-9a-f]{1,64}$/);
export const siteHealthSchema = z.strictObject({
  site,
  healthy: z.boolean(),
  failures: z.number().int().min(0),
  reason: z.string().max(1000).nullable(),
  config: z.strictObject({ digest: hash, keys: z.record(z.string().max(200), hash) }).nullable(),
});
export const siteHealthSignal = defineSignal<[unknown]>('siteHealth');
