/**
 * The benchmark harness keeps working: `npm run bench -- --quick --json` runs every quick
 * stage on real worlds and prints the output contract of the benchmark issue. Figures are
 * reported, never asserted here; what is checked is that each one was measured, that the
 * servers ran durable, and that the bytes read agree with what the layout puts where.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DEV_LAYOUT, memberId, stopOnSignals } from '../src/dev/world';
import { repoRoot } from '../src/paths';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'src', 'bench', 'index.js'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((done) => child.on('close', done));
    // Interrupted, this process waits for the bench to stop its worlds: exiting first
    // would close the pipes the bench logs to, and it would die before it stopped them.
    const removeHandlers = stopOnSignals((signal) => {
      child.kill(signal);
      return closed;
    });
    child.on('error', reject);
    void closed.then((code) => {
      removeHandlers();
      resolve({ code, stdout, stderr });
    });
  });
}

const at = (o: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);

test('npm run bench -- --quick --json measures every figure of the output contract', { timeout: 600_000 }, async () => {
  const r = await run(['--quick', '--json', '--no-write']);
  const tail = r.stderr.split('\n').slice(-30).join('\n');
  const last = r.stdout.trim().split('\n').at(-1)!;
  // The stages' errors are in the JSON; the log's tail may have scrolled past them.
  const errors = (() => {
    try {
      return JSON.stringify((JSON.parse(last) as { errors?: unknown }).errors);
    } catch {
      return 'no JSON result';
    }
  })();
  assert.equal(r.code, 0, `bench exited ${r.code}: errors ${errors}\n${tail}`);
  const result = JSON.parse(last) as Record<string, unknown>;
  // A few figures in the test's output, so a CI log says what this machine measured.
  const figures = ['reports.queueSummaryMs', 'reports.agentSummaryMs', 'catchup.ratioToRawCopy', 'catchup.ratioToKeyedCopy', 'freshness.1000.p99Seconds', 'freshness.1000.logicalReplication.p99Seconds', 'freshness.1000.logicalReplication.ratioP99'];
  process.stdout.write(`quick bench: ${figures.map((p) => `${p} ${JSON.stringify(at(result, p))}`).join(', ')}\n`);
  assert.deepEqual(result.errors, [], 'no stage failed');
  assert.equal(result.kind, 'quick');
  for (const path of [
    'catchup.eventsPerSecond',
    'catchup.rawCopyEventsPerSecond',
    'catchup.noTemporalEventsPerSecond',
    'catchup.ratioToRawCopy',
    'catchup.keyedRawCopyEventsPerSecond',
    'catchup.ratioToKeyedCopy',
    'catchup.ratioToNoTemporal',
    'bandwidth.remoteBytesPerEvent',
    'bandwidth.localBytesPerEvent',
    'bandwidth.fullRowBytesPerEvent',
    'freshness.200.p99Seconds',
    'freshness.1000.p99Seconds',
    'freshness.1000.cpu.cpuSecondsPer1000Events.martEtl',
    'freshness.1000.cpu.cpuSecondsPer1000Events.idbEtlReads',
    'freshness.1000.cpu.cpuSecondsPer1000Events.postgresTotal',
    'freshness.1000.cpu.cpuSecondsPer1000Events.workers',
    'freshness.1000.cpu.cpuSecondsPer1000Events.temporal',
    'freshness.200.logicalReplication.p99Seconds',
    'freshness.1000.logicalReplication.p99Seconds',
    'freshness.1000.logicalReplication.twinmart.p99Seconds',
    'freshness.1000.logicalReplication.ratioP99',
    'idle.msPerCycle',
    'memory.peakRssMb',
    'dr.failoverRtoSeconds',
    'dr.rebuildToParitySeconds',
    'reports.queueSummaryMs.15min',
    'reports.queueSummaryMs.month',
    'reports.agentSummaryMs.15min',
    'reports.agentSummaryMs.day',
  ]) {
    const v = at(result, path);
    assert.ok(typeof v === 'number' && Number.isFinite(v) && v > 0, `${path} is a measured number (got ${JSON.stringify(v)})`);
  }
  // A rate a quick run skips says so rather than reporting a number.
  assert.equal(at(result, 'freshness.5000.p99Seconds'), null);
  for (const path of ['machine', 'versions.node', 'versions.postgres', 'versions.temporalCli', 'sizes.main.callEvents']) {
    assert.ok(at(result, path), `${path} is reported`);
  }
  // The bench's servers run as production's do, and the result says what they reported.
  assert.deepEqual(
    ['postgres.fsync', 'postgres.synchronousCommit', 'postgres.fullPageWrites', 'postgres.walLevel'].map((p) => at(result, p)),
    ['on', 'on', 'on', 'logical'],
  );
  // The push-based anchor saw the probes of its member that twinmart's mart at the same site saw.
  const anchor = at(result, 'freshness.1000.logicalReplication') as { member: string; site: string; samples: number; missing: number; twinmart: { samples: number } };
  assert.ok(anchor.member && anchor.site && anchor.samples > 0 && anchor.missing === 0, `logical replication measured: ${JSON.stringify(anchor)}`);
  assert.equal(anchor.twinmart.samples, anchor.samples, 'the same probes on both sides');
  assert.match(String(at(result, 'settings.postgres')), /fsync=on, full_page_writes=on, synchronous_commit=on/);

  // The catch-up reads every member in full, and each member holds its set's events: per
  // event, the WAN carried the copies of the members the layout puts at the other site.
  const bw = result.bandwidth as { site: string; remoteBytesPerEvent: number; localBytesPerEvent: number; fullRowBytesPerEvent: number };
  const raw = Object.values(at(result, 'catchup.bySize') as Record<string, { raw: { members: Record<string, { rows: number; bytes: number }> } }>).at(-1)!.raw;
  const events = Number(at(result, 'sizes.main.callEvents')) + Number(at(result, 'sizes.main.agentEvents'));
  const members = Object.values(DEV_LAYOUT).flat().map((m) => ({ local: m.site === bw.site, ...raw.members[memberId(m.db, m.site)]! }));
  const perEvent = (local: boolean, key: 'rows' | 'bytes') => members.filter((m) => m.local === local).reduce((a, m) => a + m[key], 0) / events;
  const near = (got: number, want: number, tolerance: number, what: string) =>
    assert.ok(Math.abs(got / want - 1) <= tolerance, `${what}: ${got} bytes per event, expected about ${want.toFixed(1)}`);
  for (const local of [false, true]) {
    const got = local ? bw.localBytesPerEvent : bw.remoteBytesPerEvent;
    const what = local ? 'local' : 'remote';
    // Copies times a mean full copy: rough, events differ in size between sets.
    near(got, perEvent(local, 'rows') * bw.fullRowBytesPerEvent, 0.25, `${what}, ${perEvent(local, 'rows').toFixed(2)} copies`);
    // The same members' bytes in the raw baseline's one COPY each: close (each chunk's COPY adds 21 bytes).
    near(got, perEvent(local, 'bytes'), 0.02, `${what}, the raw COPY's bytes of those members`);
  }
});
