/** The production-shaped deployment files stay valid: the config loads, compose validates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../src/config';
import { repoRoot } from '../src/paths';
import { ensureDebianPackage } from './helpers/apt';

test('deploy/twinmart.yaml is a valid config whose password comes from the environment', () => {
  const config = loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), { TWINMART_DB_PASSWORD: 'pw' });
  assert.deepEqual(Object.keys(config.sites), ['dc1', 'dc2']);
  assert.ok(config.members.every((m) => m.url.includes(':pw@')));
  assert.throws(() => loadConfig(join(repoRoot, 'deploy', 'twinmart.yaml'), {}), /TWINMART_DB_PASSWORD is not set/);
});

test('docker-compose.yml validates', () => {
  // Debian's docker-compose validates a file without a Docker engine.
  const compose = ensureDebianPackage('/usr/bin/docker-compose', 'docker-compose', { recommends: false });
  const out = execFileSync(compose, ['-f', join(repoRoot, 'docker-compose.yml'), 'config', '--services'], {
    encoding: 'utf8',
    env: { ...process.env, TWINMART_DB_PASSWORD: 'pw' },
  });
  assert.deepEqual(out.trim().split('\n').sort(), ['dc1-db', 'dc2-db', 'reporting-dc1', 'reporting-dc2', 'start', 'temporal', 'worker-dc1', 'worker-dc2']);
});
