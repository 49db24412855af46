/**
 * Safe upgrades (docs/operations.md): every recorded history under test/histories (the
 * ETL's cycles, commands and continue-as-new, a failover and a reintroduction; the DR
 * workflow and its probes) replays against the workflow bundle built from today's code,
 * so a change that would break running workflows fails here, not in production. A
 * deliberately non-deterministic ETL workflow must fail the same replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type ReplayWorkerOptions } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { repoRoot } from '../src/paths';
import { workflowBundlePath } from '../src/workers/site-worker';

const dir = join(repoRoot, 'test', 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const histories = files.map((f) => ({ workflowId: f.split('.')[0]!, file: f, history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));

async function replay(options: ReplayWorkerOptions): Promise<Map<string, Error | undefined>> {
  const results = new Map<string, Error | undefined>();
  let i = 0;
  for await (const r of Worker.runReplayHistories(options, histories)) results.set(histories[i++]!.file, r.error);
  return results;
}

test('the recorded histories cover both workflows: cycles, a command, continue-as-new, a failover, a reintroduction', () => {
  const text = (prefix: string) => files.filter((f) => f.startsWith(prefix)).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
  const etl = text('twinmart-etl-');
  for (const what of ['"excludeMember"', '"includeMember"', '"excludeSite"', '"includeSite"', 'workflowExecutionContinuedAsNewEventAttributes']) {
    assert.ok(etl.includes(what), `an ETL history holds ${what}`);
  }
  const dr = text('twinmart-dr.');
  for (const what of ['"declareSiteFailure"', '"siteRebuilt"', '"confirmReporting"', '"failbackReporting"']) assert.ok(dr.includes(what), `a DR history holds ${what}`);
  assert.ok(files.some((f) => f.startsWith('twinmart-dr-probes.')));
});

test('every recorded history replays against the workflow code of today', { timeout: 300_000 }, async () => {
  const results = await replay({ workflowBundle: { codePath: workflowBundlePath } });
  assert.equal(results.size, histories.length);
  const failed = [...results].filter(([, e]) => e).map(([f, e]) => `${f}: ${e!.name}: ${e!.message.slice(0, 300)}`);
  assert.deepEqual(failed, []);
});

test('a deliberately non-deterministic change to the ETL workflow fails the replay of its histories', { timeout: 300_000 }, async () => {
  const results = await replay({ workflowsPath: require.resolve('./fixtures/nondeterministic-workflows') });
  for (const [file, error] of results) {
    if (file.startsWith('twinmart-etl-')) {
      assert.ok(error, `${file} replayed although the ETL workflow changed`);
      assert.equal(error.name, 'DeterminismViolationError', `${file}: ${error.message.slice(0, 300)}`);
    } else assert.equal(error, undefined, `${file}: the DR workflows did not change`);
  }
});
