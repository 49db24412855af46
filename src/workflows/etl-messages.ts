/**
 * The ETL workflow's messages, shared by the workflow, the DR workflow and clients. Every
 * command is both a signal (what the Web UI and `temporal workflow signal` send) and an
 * update of the same name (which answers once the command is applied).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { OBJECT_ID, SITE_ID } from '../config/ids';

const replyFields = {
  /** Echoed in the confirmation so the sender can match it. */
  requestId: z.string().min(1).max(100).optional(),
  /** Workflow id to signal `etlConfirmation` to once applied (the DR workflow). */
  replyTo: z.string().min(1).max(200).optional(),
};

export const siteCommandSchema = z.strictObject({
  site: z.string().regex(SITE_ID, `a site id matching ${SITE_ID}`),
  ...replyFields,
});
/** An IDB taken out of (or back into) the extraction, e.g. for maintenance. */
export const memberCommandSchema = z.strictObject({
  member: z.string().regex(OBJECT_ID, `a member id matching ${OBJECT_ID}`),
  ...replyFields,
});
export const controlCommandSchema = z.strictObject(replyFields);

/** What a receiver of `etlConfirmation` relies on; more fields are allowed (newer senders). */
export const etlConfirmationSchema = z.object({
  requestId: z.string().min(1),
  etlSite: z.string(),
  command: z.string(),
  target: z.string().nullable(),
  excludedSites: z.array(z.string()),
});

/** A zod error as `path: message; …`, for refusals that name what is wrong. */
export const issues = (error: z.ZodError): string =>
  error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');

export type SiteCommandInput = z.infer<typeof siteCommandSchema>;
export type ControlCommandInput = z.infer<typeof controlCommandSchema>;
export type MemberCommandInput = z.infer<typeof memberCommandSchema>;
export type EtlCommandKind = 'excludeSite' | 'includeSite' | 'excludeMember' | 'includeMember' | 'pause' | 'resume';

export type MemberState = 'pending' | 'ok' | 'unreachable' | 'error' | 'excluded' | 'superseded' | 'removed';

export interface MemberStatus {
  site: string;
  sourceId: string;
  state: MemberState;
  lastOkAt: string | null;
  lastError: string | null;
  lastReset: string | null;
  rowsTotal: number;
  lastRows: number;
  /** COPY bytes read from the member (ExtractResult.bytes), summed like rowsTotal; absent from ETLs of before. */
  bytesRead?: number;
}

export interface EtlConfirmation {
  requestId: string;
  etlSite: string;
  command: EtlCommandKind;
  target: string | null;
  cycle: number;
  appliedAt: string;
  excludedSites: string[];
  /** Members excluded one by one (absent from ETLs of before). */
  excludedMembers?: string[];
  paused: boolean;
  members: Record<string, Pick<MemberStatus, 'site' | 'sourceId' | 'state' | 'lastOkAt'>>;
}

export interface RejectedCommand {
  command: string;
  reason: string;
  at: string;
}

export interface CycleSummary {
  startedAt: string;
  finishedAt: string;
  rows: number;
  facts: number;
  interrupted?: boolean;
}

export interface EtlStatus {
  site: string;
  runId: string;
  paused: boolean;
  cycle: number;
  excludedSites: string[];
  /** Members excluded one by one (excludeMember), whatever their site. */
  excludedMembers: string[];
  members: Record<string, MemberStatus>;
  totals: { callRows: number; agentRows: number; facts: number; discarded: number };
  /** `interrupted`: a command arrived during the cycle and ended it early (absent in runs from before). */
  lastCycle: CycleSummary | null;
  /** The last cycles, oldest first (absent in runs from before). */
  recentCycles?: CycleSummary[];
  pending: { command: EtlCommandKind; target: string | null; requestId: string }[];
  applied: { command: EtlCommandKind; target: string | null; requestId: string; cycle: number; at: string }[];
  rejected: RejectedCommand[];
  continuedAsNew: number;
}

export const excludeSiteSignal = defineSignal<[unknown?]>('excludeSite');
export const includeSiteSignal = defineSignal<[unknown?]>('includeSite');
export const excludeMemberSignal = defineSignal<[unknown?]>('excludeMember');
export const includeMemberSignal = defineSignal<[unknown?]>('includeMember');
export const pauseSignal = defineSignal<[unknown?]>('pause');
export const resumeSignal = defineSignal<[unknown?]>('resume');

// Payloads are validated by the workflow (zod: SiteCommandInput / ControlCommandInput), so a
// client may send anything and gets a clear refusal.
export const excludeSiteUpdate = defineUpdate<EtlConfirmation, [unknown]>('excludeSite');
export const includeSiteUpdate = defineUpdate<EtlConfirmation, [unknown]>('includeSite');
export const excludeMemberUpdate = defineUpdate<EtlConfirmation, [unknown]>('excludeMember');
export const includeMemberUpdate = defineUpdate<EtlConfirmation, [unknown]>('includeMember');
export const pauseUpdate = defineUpdate<EtlConfirmation, [unknown]>('pause');
export const resumeUpdate = defineUpdate<EtlConfirmation, [unknown]>('resume');

export const etlStatusQuery = defineQuery<EtlStatus>('status');

/** Sent by an ETL to a command's `replyTo` workflow when the command is applied. */
export const etlConfirmationSignal = defineSignal<[EtlConfirmation]>('etlConfirmation');
// (The DR workflow checks what arrives with etlConfirmationSchema: a signal's input can be anything.)
