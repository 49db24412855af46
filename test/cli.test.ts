/**
 * The `twinmart` command as an operator runs it, in a scratch directory: dev up, traffic,
 * status, parity, a real site stop and start, dev down; then the demo of the README.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../src/paths';
import type { SiteView } from '../src/etl/site-status';
import { waitFor } from './helpers/world';

const bin = join(repoRoot, 'bin', 'twinmart.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function twinmart(cwd: string, args: string[], timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`twinmart ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function status(cwd: string): Promise<SiteView[]> {
  const r = await twinmart(cwd, ['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { sites: SiteView[] }).sites;
}

const loaded = (s: SiteView) => s.members.reduce((n, m) => n + m.eventsLoaded, 0);

describe('the twinmart command', { timeout: 600_000 }, () => {
  let cwd: string;
  let passed = true;
  before(() => {
    cwd = mkdtempSync(join(tmpdir(), 'twinmart-cli-'));
    chmodSync(cwd, 0o755);
  });
  after(async () => {
    if (existsSync(join(cwd, '.twinmart', 'world.json'))) await twinmart(cwd, ['dev', 'down']);
    if (passed) rmSync(cwd, { recursive: true, force: true });
    else process.stderr.write(`cli test directory kept at ${cwd}\n`);
  });
  const step =
    (fn: () => Promise<void>): (() => Promise<void>) =>
    async () => {
      try {
        await fn();
      } catch (e) {
        passed = false;
        throw e;
      }
    };

  it(
    'brings up the dev world, loads simulated traffic at both sites and reports parity',
    step(async () => {
      const up = await twinmart(cwd, ['dev', 'up', '--detach']);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /Temporal Web UI: http:\/\/127\.0\.0\.1:\d+/);
      assert.ok(existsSync(join(cwd, '.twinmart', 'dev.yaml')));

      const sim = await twinmart(cwd, ['sim', '--calls', '300', '--rate', '50', '--seed', '3', '--backfill-minutes', '120']);
      assert.equal(sim.code, 0, sim.stderr);
      type Counts = { callEvents: number; agentEvents: number }[];
      const simmed = JSON.parse(sim.stdout) as { members: Counts; sources: Counts };
      const events = (counts: Counts) => counts.reduce((n, m) => n + m.callEvents + m.agentEvents, 0);
      const written = events(simmed.members);
      const sites = await waitFor('both sites to load every member', async () => {
        const sites = await status(cwd);
        const done = sites.every((s) => s.workflow === 'running' && loaded(s) === written && s.members.every((m) => m.behind === 0));
        // The workflow counts a cycle's bytes when the cycle ends, after its commits.
        return done && sites.every((s) => s.bandwidth?.eventsLanded === events(simmed.sources)) && sites;
      });
      // Every member was read in full, each from its own site's or across the WAN.
      for (const s of sites) {
        const read = (local: boolean) => s.members.filter((m) => (m.site === s.site) === local).reduce((n, m) => n + m.bytesRead!, 0);
        assert.ok(s.members.every((m) => m.bytesRead! > 0), `${s.site}: bytes read from every member`);
        assert.equal(s.bandwidth!.localBytes, read(true), `${s.site}: local bytes are its own members'`);
        assert.equal(s.bandwidth!.remoteBytes, read(false), `${s.site}: remote bytes are the other site's members'`);
        assert.ok(s.bandwidth!.remoteBytesPerEvent! > 0 && s.bandwidth!.localBytesPerEvent! > 0, JSON.stringify(s.bandwidth));
      }
      const parity = await waitFor('parity', async () => {
        const r = await twinmart(cwd, ['parity', 'dc1', 'dc2', '--json', '--settle-seconds', '0']);
        return r.code === 0 && r;
      });
      assert.equal(JSON.parse(parity.stdout).match, true);
      const bad = await twinmart(cwd, ['parity', 'dc1', 'dc9']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unknown site "dc9"/);
    }),
  );

  it(
    'stops a site for real and brings it back',
    step(async () => {
      const refused = await twinmart(cwd, ['dr', 'fail', 'dc9']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /refused: unknown site "dc9"/);
      const stop = await twinmart(cwd, ['site', 'stop', 'dc1']);
      assert.equal(stop.code, 0, stop.stderr);
      await waitFor('the DR health probe to suspect dc1', async () => {
        const r = await twinmart(cwd, ['dr', 'status']);
        return /suspected failure of dc1/.test(r.stdout);
      }, 90_000);
      await waitFor('dc2 to see the dc1 members down', async () => {
        const dc2 = (await status(cwd)).find((s) => s.site === 'dc2')!;
        return dc2.members.filter((m) => m.site === 'dc1').every((m) => m.state === 'unreachable');
      });
      const dc1 = (await status(cwd)).find((s) => s.site === 'dc1')!;
      assert.match(dc1.error ?? '', /mart unreachable/);
      const start = await twinmart(cwd, ['site', 'start', 'dc1']);
      assert.equal(start.code, 0, start.stderr);
      await waitFor('dc1 members back at dc2', async () => {
        const dc2 = (await status(cwd)).find((s) => s.site === 'dc2')!;
        return dc2.members.every((m) => m.state === 'ok');
      });
      const down = await twinmart(cwd, ['dev', 'down', '--wipe']);
      assert.equal(down.code, 0, down.stderr);
      assert.ok(!existsSync(join(cwd, '.twinmart')));
    }),
  );

  it(
    'runs the demo: live progress at both sites, a DR round trip of dc1, then a clean shutdown',
    step(async () => {
      const demo = await twinmart(cwd, ['demo', '--seconds', '110', '--rate', '10']);
      assert.equal(demo.code, 0, demo.stderr);
      assert.match(demo.stdout, /Temporal Web UI: http:\/\/127\.0\.0\.1:\d+/);
      const lines = demo.stdout.split('\n').filter((l) => /dc1: cycle \d+ events \d+/.test(l));
      assert.ok(lines.length >= 5, demo.stdout);
      const last = lines.at(-1)!;
      const events = [...last.matchAll(/events (\d+)/g)].map((m) => Number(m[1]));
      assert.ok(events.length === 2 && events.every((n) => n > 0), `events loaded at both sites: ${last}`);
      for (const line of [
        /\[dr\] stopping site dc1 for real/,
        /\[dr\] phase degraded; RTO [\d.]+ s; potential data loss in: sw-voice-2/,
        /\[dr\] dc1 reintroduced: seeded from dc2, caught up, parity passed; phase normal/,
        /\[dr\] round trip complete: reporting back at dc1, both sites active/,
      ]) {
        assert.match(demo.stdout, line);
      }
      assert.match(demo.stdout, /stopping the dev world/);
      const status = await twinmart(cwd, ['status', '--json']);
      assert.notEqual(status.code, 0, 'nothing answers after the demo stopped');
    }),
  );
});
