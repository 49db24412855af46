/** The production-shaped deployment files stay valid: the config loads, compose validates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../src/config';
import { repoRoot } from '../src/paths';
import { parse as parseYaml } from 'yaml';
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
    'dc1-db', 'dc2-db', 'reporting-dc1', 'reporting-dc2', 'start',
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
    ['reporting-dc1', 'reporting-dc2', 'ui-dc1', 'ui-dc2'],
    'only the Web UIs and reporting are published',
  );
  for (const [name, p] of published) assert.match(p, /127\.0\.0\.1/, `${name} publishes ${p} beyond the loopback`);
});
