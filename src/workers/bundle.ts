/**
 * Build step: bundles the workflow code once into dist/workflow-bundle.js, so workers
 * start in a second instead of running webpack at every start.
 */
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundlePath, workflowsPath } from './site-worker';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: undefined });
  writeFileSync(workflowBundlePath, code);
  process.stderr.write(`workflow bundle written to ${workflowBundlePath} (${Math.round(code.length / 1024)} KiB)\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
