/**
 * The operators' alert rules and Prometheus config (deploy/prometheus), checked by
 * Prometheus's own promtool: the rules load, and `promtool test rules` feeds each alert
 * series that fire it and series that must not. The Grafana dashboard is valid JSON whose
 * panels all query something (test/metrics.test.ts checks their metrics exist).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../src/paths';
import { ensureDebianPackage } from './helpers/apt';

const dir = join(repoRoot, 'deploy', 'prometheus');

function promtool(...args: string[]): string {
  const bin = ensureDebianPackage('/usr/bin/promtool', 'prometheus', { recommends: false });
  const r = spawnSync(bin, args, { cwd: dir, encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${out}`);
  return out;
}

test('promtool: the alert rules and the Prometheus config load', () => {
  assert.match(promtool('check', 'rules', 'alerts.yml'), /SUCCESS: 9 rules found/);
  assert.match(promtool('check', 'config', 'prometheus.yml'), /SUCCESS/);
});

test('promtool test rules: every alert fires on the series that call for it, and not on the others', () => {
  const out = promtool('test', 'rules', 'alerts.test.yml');
  process.stdout.write(`# ${out.trim().split('\n').join('\n# ')}\n`);
  const tested = new Set([...readFileSync(join(dir, 'alerts.test.yml'), 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
  const rules = [...readFileSync(join(dir, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
  assert.deepEqual(rules.filter((r) => !tested.has(r)), [], 'every alert has a test');
});

test('deploy/grafana/twinmart.json: a dashboard whose every panel queries Prometheus', () => {
  const d = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'twinmart.json'), 'utf8')) as {
    panels: { type: string; title: string; targets?: { expr: string }[] }[];
  };
  const panels = d.panels.filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 15);
  for (const p of panels) assert.ok(p.targets?.length && p.targets.every((t) => /\b(twinmart|temporal)_\w+/.test(t.expr)), `${p.title} queries a twinmart or SDK metric`);
});
