/**
 * Every string a workflow's histories hold, over all its runs, payloads decoded (their
 * JSON is bytes in the proto): what the checks search for what history must never carry,
 * rows and credentials (test/secrets.test.ts, the chaos run's check).
 */
import type { Client } from '@temporalio/client';

function texts(value: unknown, out: string[]): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (value && typeof value === 'object') for (const v of Object.values(value)) texts(v, out);
  return out;
}

export async function historyText(client: Client, workflowId: string): Promise<{ runs: number; text: string }> {
  let runs = 0;
  const parts: string[] = [];
  for await (const run of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    runs += 1;
    texts(await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory(), parts);
  }
  return { runs, text: parts.join('\n') };
}
