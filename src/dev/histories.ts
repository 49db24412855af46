/**
 * `npm run record-histories` (docs/operations.md, "Safe upgrades"): a scripted run of the
 * two-site world whose workflow histories test/replay.test.ts replays against the code of
 * the day: the ETL's normal cycles and continue-as-new, an operator's command (a member
 * excluded and included again), dc1 lost and failed over, back as a replacement,
 * reintroduced and reporting failed back; the DR workflow and its probes throughout.
 * Run it again after a change that the replay test refuses on purpose (one guarded by
 * `patched` replays the old histories and needs no new ones).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { silentLogger } from '../logger';
import { repoRoot } from '../paths';
import { runSim } from '../sim';
import { startAll } from '../temporal/connection';
import { openBenchWorld } from '../bench/world';
import { siteRoundTrip } from '../chaos/faults';
import { excludeMemberUpdate, includeMemberUpdate } from '../workflows/etl-messages';
import { DR_PROBES_WORKFLOW_ID, DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import { DEV_LAYOUT } from './world';

export const HISTORIES_DIR = join(repoRoot, 'test', 'histories');

interface JsonEvent {
  workflowExecutionSignaledEventAttributes?: { signalName?: string };
  workflowExecutionUpdateAcceptedEventAttributes?: { acceptedRequest?: { input?: { name?: string } } };
  workflowExecutionContinuedAsNewEventAttributes?: unknown;
}

/** What a run's history holds that the replay test must cover: its signals, updates and continue-as-new. */
function kinds(events: JsonEvent[]): string[] {
  const out = new Set<string>();
  for (const e of events) {
    const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
    const update = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name;
    if (signal) out.add(`signal-${signal}`);
    if (update) out.add(`update-${update}`);
    if (e.workflowExecutionContinuedAsNewEventAttributes) out.add('continued');
  }
  return [...out].sort();
}

async function runsOf(client: Client, workflowId: string): Promise<string[]> {
  const runs: { runId: string; start: number }[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) runs.push({ runId: w.runId, start: w.startTime.getTime() });
  return runs.sort((a, b) => a.start - b.start).map((r) => r.runId);
}

export async function recordHistories(print: (line: string) => void): Promise<string[]> {
  const w = await openBenchWorld('histories', { layout: DEV_LAYOUT, reporting: true, statements: false, runHistoryEvents: 120 });
  try {
    await startAll(w.client, w.config);
    await runSim(w.config, { calls: 100, rate: 20, seed: 3, startTs: new Date(Date.now() - 3600_000) }, silentLogger);
    const traffic = new AbortController();
    const sim = runSim(w.config, { calls: 1_000_000, rate: 2, seed: 4 }, silentLogger, traffic.signal);
    print('normal cycles until the ETL runs continue as new');
    await sleep(20_000);
    print('a command: a member excluded, then included');
    const etl = w.client.workflow.getHandle(etlWorkflowId('dc1'));
    const member = w.config.members.find((m) => m.site === 'dc2')!.id;
    await etl.executeUpdate(excludeMemberUpdate, { args: [{ member }] });
    await etl.executeUpdate(includeMemberUpdate, { args: [{ member }] });
    print('dc1 lost, failed over, back wiped, reintroduced, reporting failed back');
    await siteRoundTrip(w, 'dc1', { holdSeconds: 5, wipe: true, reason: 'recorded history' });
    await sleep(5000);
    traffic.abort();
    await sim.catch(() => undefined);

    mkdirSync(HISTORIES_DIR, { recursive: true });
    for (const f of readdirSync(HISTORIES_DIR)) if (f.endsWith('.json')) rmSync(join(HISTORIES_DIR, f));
    const written: string[] = [];
    for (const id of [etlWorkflowId('dc1'), etlWorkflowId('dc2'), DR_WORKFLOW_ID, DR_PROBES_WORKFLOW_ID]) {
      const runs = await runsOf(w.client, id);
      // Every run with a command or a continue-as-new, the first and the last: a few files per workflow.
      const kept = new Set<string>();
      const covered = new Set<string>();
      for (const [i, runId] of runs.entries()) {
        // The CLI's JSON is what Temporal's replayers read (historyFromJSON), as `temporal workflow show` gives it to anyone.
        const json = execFileSync(w.binary, ['workflow', 'show', '--workflow-id', id, '--run-id', runId, '--output', 'json', '--address', w.config.temporal.address, '--namespace', w.config.temporal.namespace], {
          encoding: 'utf8',
          maxBuffer: 256 * 1024 * 1024,
        });
        const k = kinds((JSON.parse(json) as { events: JsonEvent[] }).events);
        const fresh = k.filter((x) => !covered.has(x));
        if (!(i === 0 || i === runs.length - 1 || fresh.length)) continue;
        k.forEach((x) => covered.add(x));
        const name = `${id}.${String(i + 1).padStart(3, '0')}.json`;
        if (kept.has(name)) continue;
        kept.add(name);
        print(`  ${name}: ${k.join(', ') || 'cycles only'}`);
        writeFileSync(join(HISTORIES_DIR, name), json.trimEnd() + '\n');
        written.push(name);
      }
    }
    return written;
  } finally {
    await w.close();
  }
}

if (require.main === module) {
  recordHistories((l) => process.stdout.write(l + '\n')).then(
    (files) => {
      process.stdout.write(`${files.length} histories in ${HISTORIES_DIR}:\n${files.map((f) => `  ${f}`).join('\n')}\n`);
      process.exit(0);
    },
    (e: Error) => {
      process.stderr.write(`record-histories: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
