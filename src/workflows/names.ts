/** Workflow ids and task queues of docs/contracts.md, shared by workflows, workers and clients. */
export const CONTROL_QUEUE = 'twinmart-control';
export const DR_WORKFLOW_ID = 'twinmart-dr';
/** The DR workflow's health probes, a workflow of their own (src/workflows/probes.ts). */
export const DR_PROBES_WORKFLOW_ID = 'twinmart-dr-probes';
export const siteQueue = (site: string): string => `twinmart-${site}`;
export const etlWorkflowId = (site: string): string => `twinmart-etl-${site}`;
/** The schedule of a site's retention; the runs it starts are named after it and their time. */
export const retentionScheduleId = (site: string): string => `twinmart-retention-${site}`;
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SEARCH_ATTRIBUTES = {
  site: defineSearchAttributeKey('TwinmartSite', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('TwinmartPhase', SearchAttributeType.KEYWORD),
} as const;
