/** The production-shaped deployment files stay valid: the config loads, compose validates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadConfig } from '../src/config';
import { repoRoot } from '../src/paths';
import { freePort } from '../src/dev/ports';
import { waitFor } from '../src/wait';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ensureDebianPackage } from './helpers/apt';

test('deploy/twinmart.yaml is a valid config whose password comes from the environment', () => {
  const config = loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), { TWINMART_DB_PASSWORD: 'pw' });
  assert.deepEqual(Object.keys(config.sites), ['dc1', 'dc2']);
  assert.ok(config.members.every((m) => m.url.includes(':pw@')));
  assert.throws(() => loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), {}), /TWINMART_DB_PASSWORD is not set/);
});

test('deploy/twinmart.yaml gives each process its own database role, none the superuser', () => {
  const config = loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), { TWINMART_DB_PASSWORD: 'pw' });
  const user = (url: string | undefined) => (url ? new URL(url).username : undefined);
  for (const s of Object.values(config.sites)) {
    assert.deepEqual([user(s.mart), user(s.martOwner), user(s.reportingMart)], ['twinmart_etl', 'twinmart_owner', 'twinmart_reporting']);
  }
  assert.ok(config.members.every((m) => user(m.url) === 'twinmart_idb_reader'));
  // Its reporting containers listen beyond loopback, which needs reporting.auth.
  assert.ok(config.reporting.auth);
});

// Debian's docker-compose validates a file without a Docker engine.
const compose = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  execFileSync(ensureDebianPackage('/usr/bin/docker-compose', 'docker-compose', { recommends: false }), ['-f', join(repoRoot, 'docker-compose.yml'), 'config', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

test('docker-compose.yml validates', () => {
  const out = compose({ TWINMART_DB_PASSWORD: 'pw', TWINMART_SESSION_SECRET: 'secret' }, '--services');
  assert.deepEqual(out.trim().split('\n').sort(), [
    'dc1-db', 'dc2-db', 'prometheus', 'reporting-dc1', 'reporting-dc2', 'start',
    'temporal-dc1', 'temporal-dc2', 'temporal-schema-dc1', 'temporal-schema-dc2', 'temporal-setup',
    'ui-dc1', 'ui-dc2', 'worker-dc1', 'worker-dc2',
  ]);
});

test('docker-compose.yml has no default password and publishes nothing beyond the loopback', () => {
  // An undefined value leaves the variable out of the child's environment.
  assert.throws(() => compose({ TWINMART_DB_PASSWORD: undefined, TWINMART_SESSION_SECRET: 'secret' }), /TWINMART_DB_PASSWORD/);
  const services = (parseYaml(compose({ TWINMART_DB_PASSWORD: 'pw', TWINMART_SESSION_SECRET: 'secret' })) as { services: Record<string, { ports?: unknown[] }> }).services;
  const published = Object.entries(services).flatMap(([name, s]) =>
    (s.ports ?? []).map((p) => [name, typeof p === 'string' ? p : JSON.stringify(p)] as const),
  );
  assert.deepEqual(
    published.map(([name]) => name).sort(),
    ['prometheus', 'reporting-dc1', 'reporting-dc2', 'ui-dc1', 'ui-dc2'],
    'only Prometheus, the Web UIs and reporting are published',
  );
  for (const [name, p] of published) assert.match(p, /127\.0\.0\.1/, `${name} publishes ${p} beyond the loopback`);
});

/** The instructions of the Dockerfile's last stage, continuation lines joined. */
function runtimeStage(): { op: string; args: string }[] {
  const lines = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ').split('\n');
  const steps = lines.filter((l) => l.trim() && !l.trim().startsWith('#')).map((l) => {
    const [op, ...rest] = l.trim().split(/\s+/);
    return { op: op!.toUpperCase(), args: rest.join(' ') };
  });
  const from = steps.map((s) => s.op).lastIndexOf('FROM');
  return steps.slice(from);
}

// No container engine here: the runtime stage's files are laid out as its COPY lines say
// (what the build stage makes is this checkout's own build: the same npm run build), and
// the reporting service runs from exactly those files.
test('the image: its runtime stage holds what the services need, runs as non-root and checks its health', async () => {
  const stage = runtimeStage();
  const user = stage.filter((s) => s.op === 'USER').at(-1)?.args;
  assert.ok(user && !['root', '0'].includes(user), `the image runs as ${user ?? 'root'}`);
  const health = stage.find((s) => s.op === 'HEALTHCHECK');
  assert.ok(health, 'the image has a HEALTHCHECK');
  const app = mkdtempSync(join(tmpdir(), 'twinmart-image-'));
  try {
    for (const s of stage.filter((x) => x.op === 'COPY')) {
      const words = s.args.split(/\s+/);
      const fromBuild = words.some((w) => w === '--from=build');
      const paths = words.filter((w) => !w.startsWith('--'));
      const dest = paths.pop()!;
      const intoDir = dest.endsWith('/') || paths.length > 1;
      for (const p of paths) {
        const src = join(repoRoot, fromBuild ? p.replace(/^\/app\//, '') : p);
        cpSync(src, join(app, dest, intoDir ? basename(p) : ''), { recursive: true });
      }
    }
    // npm ci --omit=dev of the runtime stage: this checkout's modules stand in for it.
    symlinkSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'));
    assert.ok(existsSync(join(app, 'dist', 'workflow-bundle.js')), 'the workers need the workflow bundle');
    assert.ok(existsSync(join(app, 'migrations', 'mart')), 'twinmart start migrates the marts');

    const port = await freePort();
    const config = parseYaml(readFileSync(join(repoRoot, 'deploy', 'twinmart.yaml'), 'utf8'));
    config.sites.dc1.reportingPort = port;
    writeFileSync(join(app, 'twinmart.yaml'), stringifyYaml(config));
    const child = spawn(process.execPath, ['bin/twinmart.js', 'reporting', '--site', 'dc1', '--config', 'twinmart.yaml'], {
      cwd: app,
      env: { ...process.env, TWINMART_DB_PASSWORD: 'pw', TWINMART_SESSION_SECRET: 'a session secret of the image test, 32+ chars' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = once(child, 'exit');
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor('the reporting service from the image', () => fetch(`${base}/health`).then((r) => r.ok, () => false), 30_000, 200).catch((e: Error) => {
        throw new Error(`${e.message}: ${stderr}`);
      });
      for (const [path, text] of [['/', '<html'], ['/static/app.js', 'function'], ['/static/style.css', '{'], ['/static/chart.umd.js', 'Chart']] as const) {
        const r = await fetch(base + path);
        assert.equal(r.status, 200, `${path} from the image's files`);
        assert.ok((await r.text()).includes(text), `${path} is the file it names`);
      }
      // The HEALTHCHECK's own command, as the image would run it, against this service.
      const cmd = JSON.parse(health.args.replace(/^(--\S+\s+)*CMD\s+/, '')) as string[];
      assert.equal(cmd[0], 'node', `the HEALTHCHECK runs node (the image has no curl): ${cmd.join(' ')}`);
      const probe = (url: string) =>
        spawnSync(process.execPath, cmd.slice(1), { cwd: app, env: { ...process.env, TWINMART_HEALTH_URL: url }, encoding: 'utf8' });
      assert.equal(probe(`${base}/health`).status, 0, 'healthy while /health answers 200');
      const down = probe(`http://127.0.0.1:${await freePort()}/health`);
      assert.equal(down.status, 1, 'unhealthy when nothing answers');
      assert.match(down.stderr, /health check failed: http:\/\/127\.0\.0\.1:\d+\/health/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});

test('docker-compose.yml: each reporting container checks its own /health, each worker its /metrics, start none', () => {
  const config = loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), { TWINMART_DB_PASSWORD: 'pw' });
  type Service = { healthcheck?: { test?: string[] } };
  const services = (parseYaml(compose({ TWINMART_DB_PASSWORD: 'pw', TWINMART_SESSION_SECRET: 'secret' })) as { services: Record<string, Service> }).services;
  for (const [site, s] of Object.entries(config.sites)) {
    assert.deepEqual(services[`reporting-${site}`]!.healthcheck?.test, ['CMD', 'node', 'bin/healthcheck.js', `http://127.0.0.1:${s.reportingPort}/health`]);
    assert.ok(s.metricsPort, `sites.${site}.metricsPort`);
    assert.deepEqual(services[`worker-${site}`]!.healthcheck?.test, ['CMD', 'node', 'bin/healthcheck.js', `http://127.0.0.1:${s.metricsPort}/metrics`]);
  }
  // compose writes `disable: true` as the test NONE.
  assert.deepEqual(services.start!.healthcheck?.test, ['NONE']);
});
