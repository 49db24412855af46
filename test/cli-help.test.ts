/**
 * `--help` on any subcommand prints that command's help and does nothing else, and the
 * exit codes tell a usage error (2) from a runtime one (1). `start --help` used to start
 * the workflows and `dev up --help` to bring up a world.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../src/paths';

const bin = join(repoRoot, 'bin', 'twinmart.js');
const COMMANDS = ['dev', 'site', 'demo', 'worker', 'reporting', 'hash-password', 'start', 'status', 'sim', 'parity', 'dr'];
const cwd = mkdtempSync(join(tmpdir(), 'twinmart-cli-help-'));
after(() => rmSync(cwd, { recursive: true, force: true }));

function twinmart(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A valid config whose Temporal server and databases are all at one local port. */
function configAt(name: string, port: number): string {
  const config = join(cwd, name);
  writeFileSync(
    config,
    [
      `temporal: { address: 127.0.0.1:${port}, namespace: default }`,
      'etl: { cycleSeconds: 1, serviceLevelSeconds: 20 }',
      'reporting: { primary: dc1 }',
      'sites:',
      `  dc1: { mart: "postgres://postgres@127.0.0.1:${port}/m", reportingPort: 8401 }`,
      'sources:',
      `  s1: [ { id: m1, site: dc1, url: "postgres://postgres@127.0.0.1:${port}/i" } ]`,
    ].join('\n'),
  );
  return config;
}

/** A TCP port that counts who connects: a Temporal address nothing may call during --help. */
async function listener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, connections: () => n };
}

test('--help on every subcommand prints its help, exits 0 and contacts nothing', async () => {
  const temporal = await listener();
  try {
    const config = configAt('twinmart.yaml', temporal.port);
    for (const command of COMMANDS) {
      for (const args of [[command, '--help'], [command, 'up', '--config', config, '-h']]) {
        const r = twinmart(args);
        assert.equal(r.code, 0, `twinmart ${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage: twinmart ${command}\\b`), `twinmart ${args.join(' ')}`);
      }
    }
    assert.equal(temporal.connections(), 0, 'a --help connected to Temporal or PostgreSQL');
    assert.equal(existsSync(join(cwd, '.twinmart')), false, 'dev up --help created a dev world');
  } finally {
    temporal.server.close();
  }
});

test('--version prints the package version', () => {
  const r = twinmart(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
});

test('a usage error exits 2 with the command help, a runtime error exits 1', async () => {
  // A configuration that parses, whose Temporal server does not answer.
  const down = await listener();
  const port = down.port;
  down.server.close();
  const config = configAt('down.yaml', port);
  const usage = twinmart(['sim', '--calls', 'many', '--config', config]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--calls needs a non-negative number/);
  assert.match(usage.stderr, /usage: twinmart sim/);
  assert.equal(twinmart(['nonsense']).code, 2);
  assert.equal(twinmart(['status', '--bogus']).code, 2);

  const runtime = twinmart(['dr', 'status', '--config', config]);
  assert.equal(runtime.code, 1, runtime.stderr);
});

test('a clone that was never built builds itself on first use', () => {
  const clone = join(cwd, 'clone');
  const files = spawnSync('git', ['ls-files', '-z'], { cwd: repoRoot, encoding: 'utf8' }).stdout.split('\0').filter(Boolean);
  const tar = spawnSync('tar', ['-C', repoRoot, '--null', '-T', '-', '-cf', '-'], { input: files.join('\0'), maxBuffer: 1 << 28 });
  assert.equal(tar.status, 0);
  mkdirSync(clone);
  assert.equal(spawnSync('tar', ['-C', clone, '-xf', '-'], { input: tar.stdout }).status, 0);
  symlinkSync(join(repoRoot, 'node_modules'), join(clone, 'node_modules'));
  const r = spawnSync(process.execPath, [join(clone, 'bin', 'twinmart.js'), '--version'], { cwd, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
  assert.ok(existsSync(join(clone, 'dist', '.built')), 'the first use left a complete build');
});
