/** The one check of the `{ site }` input that every per-site workflow starts with. */
import { ApplicationFailure } from '@temporalio/workflow';
import { SITE_ID } from '../config/ids';

/** The input's site id; a non-retryable failure naming `workflowType` when it has none. */
export function siteOf(workflowType: string, input: { site?: unknown } | undefined): string {
  const site = input?.site;
  if (typeof site !== 'string' || !SITE_ID.test(site)) {
    throw ApplicationFailure.nonRetryable(`${workflowType} input needs {"site": "<id matching ${SITE_ID}>"}`);
  }
  return site;
}
