/**
 * Credentials stay out of everything an operator or Temporal keeps: a real world whose
 * member URLs carry distinctive passwords, one in the userinfo (of a reachable member: the
 * local servers trust local connections, so the password only travels) and one as
 * `?password=` (of a member whose server is stopped, so its errors are reported). None of
 * them may appear in any event of any run of the ETL and DR workflows (continue-as-new
 * inputs included), in worker and reporting logs, in `twinmart status --json`, in
 * /api/ops, or in what the simulator says about the unreachable member.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Logger } from '../src/logger';
import { stopInstance } from '../src/dev/postgres';
import { configFile } from '../src/dev/world';
import { repoRoot } from '../src/paths';
import { runSim } from '../src/sim';
import { historyText } from '../src/temporal/history-text';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../src/workflows/names';
import { etlStatusQuery } from '../src/workflows/etl-messages';
import { openWorld, step, waitFor, type TestWorld } from './helpers/world';

const PW_USERINFO = 'Userinfo7Kq2Secret';
const PW_QUERY = 'Query9Zx4Secret';
const PASSWORDS = [PW_USERINFO, PW_QUERY];
const LOST = 'idb-v1-dc2';

let w: TestWorld;

before(async () => {
  w = await openWorld('secrets', {
    layout: {
      'sw-voice-1': [
        { site: 'dc1', db: 'idb_v1', password: PW_USERINFO },
        { site: 'dc2', db: 'idb_v1', instance: 'lost', query: `password=${PW_QUERY}&sslmode=disable` },
      ],
    },
    runHistoryEvents: 50, // several continue-as-new inputs in a minute
  });
});

after(async () => {
  await w?.close();
});

const histories = (workflowId: string) => historyText(w.client, workflowId);

function assertClean(where: string, text: string): void {
  for (const pw of PASSWORDS) {
    assert.ok(!text.includes(pw), `${where} holds the password ${pw}: …${text.slice(Math.max(0, text.indexOf(pw) - 200), text.indexOf(pw) + 50)}…`);
  }
}

function twinmart(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'twinmart.js'), ...args, '--config', configFile(w.state)]);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(out));
  });
}

test(
  'no password of a member URL shows in history, logs, status, /api/ops or the simulator',
  step(async () => {
    await stopInstance(w.state.pg.lost!, 'immediate');
    const said: string[] = [];
    const keep = (message: string, fields?: unknown) => void said.push(`${message} ${JSON.stringify(fields ?? {})}`);
    const recording: Logger = { debug: keep, info: keep, warn: keep, error: keep };
    await runSim(w.config, { calls: 20, rate: 20, seed: 3, startTs: new Date(Date.now() - 600_000) }, recording);
    assert.ok(said.some((l) => l.includes(LOST)), `the simulator reported the unreachable member: ${said.join('\n')}`);
    assertClean('what the simulator said', said.join('\n'));

    for (const site of ['dc1', 'dc2']) {
      const error = await waitFor(`${site} to report ${LOST} unreachable`, async () => {
        const s = await w.client.workflow.getHandle(etlWorkflowId(site)).query(etlStatusQuery);
        const m = s.members[LOST];
        return m?.state === 'unreachable' && m.lastError;
      });
      assert.match(error, /connection refused \(ECONNREFUSED\)/, 'names what failed by its code');
    }
    await waitFor('both ETLs to continue as new', async () => (await histories(etlWorkflowId('dc1'))).runs > 1 && (await histories(etlWorkflowId('dc2'))).runs > 1, 120_000);

    for (const id of [etlWorkflowId('dc1'), etlWorkflowId('dc2'), DR_WORKFLOW_ID]) {
      const { runs, text } = await histories(id);
      assert.ok(runs >= 1 && text.length > 0, `${id} has history`);
      assertClean(`history of ${id} (${runs} runs)`, text);
    }
    const status = await twinmart(['status', '--json']);
    assert.ok(status.includes(LOST), status.slice(0, 500));
    assertClean('twinmart status --json', status);

    const ops = await fetch(`http://127.0.0.1:${w.state.reporting.dc1!.port}/api/ops`).then((r) => r.text());
    assert.ok(ops.includes(LOST), ops.slice(0, 500));
    assertClean('/api/ops', ops);

    const logs = join(w.state.root, 'logs');
    for (const file of readdirSync(logs).filter((f) => /^(worker|reporting)-/.test(f))) {
      assertClean(`log ${file}`, readFileSync(join(logs, file), 'utf8'));
    }
  }),
);
