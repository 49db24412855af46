import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig, parseConfig, ConfigError } from '../src/config';

const valid = () => ({
  temporal: { address: '127.0.0.1:7233', namespace: 'default' },
  etl: { cycleSeconds: 1, serviceLevelSeconds: 20 },
  reporting: { primary: 'dc1' },
  sites: {
    dc1: { mart: 'postgres://postgres@127.0.0.1:5433/twinmart_mart', reportingPort: 8401 },
    dc2: { mart: 'postgres://postgres@127.0.0.1:5434/twinmart_mart', reportingPort: 8402 },
  },
  sources: {
    'sw-voice-1': [
      { id: 'idb-voice-1-dc1', site: 'dc1', url: 'postgres://postgres@127.0.0.1:5433/idb_voice_1' },
      { id: 'idb-voice-1-dc2', site: 'dc2', url: 'postgres://${IDB_USER}:${IDB_PASSWORD}@127.0.0.1:5434/idb_voice_1' },
    ],
  },
});

const env = { IDB_USER: 'reader', IDB_PASSWORD: 's3cret' };

function rejects(raw: unknown, ...expected: RegExp[]): void {
  assert.throws(
    () => parseConfig(raw, 'test.yaml', env),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      for (const re of expected) assert.match(e.message, re);
      return true;
    },
  );
}

test('the documented example config parses, with members listed in order and ${VAR} expanded', () => {
  const c = parseConfig(valid(), 'test.yaml', env);
  assert.deepEqual(
    c.members.map((m) => [m.id, m.sourceId, m.index]),
    [
      ['idb-voice-1-dc1', 'sw-voice-1', 0],
      ['idb-voice-1-dc2', 'sw-voice-1', 1],
    ],
  );
  assert.equal(c.members[1]!.url, 'postgres://reader:s3cret@127.0.0.1:5434/idb_voice_1');
  assert.equal(c.etl.chunkRows, 50_000, 'optional keys get their defaults');
  assert.deepEqual([c.temporal.workflowTaskTimeoutSeconds, c.temporal.runHistoryEvents], [3, 1000]);
});

test('a bad key is named by its path, with what was expected', () => {
  const c = valid();
  (c.sources['sw-voice-1'][1] as { site: string }).site = 'dc3';
  rejects(c, /sources\.sw-voice-1\.1\.site/, /expected one of the sites \(dc1, dc2\), got "dc3"/);

  const d = valid();
  (d.etl as Record<string, unknown>).cycleSeconds = 'fast';
  rejects(d, /etl\.cycleSeconds/);

  const e = valid();
  (e.sites as Record<string, unknown>)['DC 9'] = e.sites.dc1;
  rejects(e, /sites\.DC 9/, /site id/);

  const f = valid();
  (f as Record<string, unknown>).extra = 1;
  rejects(f, /extra/);

  const g = valid();
  g.reporting.primary = 'dc7';
  rejects(g, /reporting\.primary/);

  const h = valid();
  (h.temporal as Record<string, unknown>).runHistoryEvents = 10;
  rejects(h, /temporal\.runHistoryEvents/);
});

test('duplicate member ids, a missing environment variable and a non-postgres URL are refused', () => {
  const c = valid();
  c.sources['sw-voice-1'][1]!.id = 'idb-voice-1-dc1';
  rejects(c, /sources\.sw-voice-1\.1\.id/, /already used/);
  assert.throws(() => parseConfig(valid(), 'test.yaml', {}), /sources\.sw-voice-1\.1\.url: environment variable IDB_USER is not set/);
  const d = valid();
  d.sites.dc1.mart = 'mysql://x';
  rejects(d, /sites\.dc1\.mart/, /postgres:\/\//);
});

test('files: unreadable and invalid YAML are clear errors', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'twinmart-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read config .*missing\.yaml/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'sites: [unclosed');
  assert.throws(() => loadConfig(bad), /is not valid YAML/);
});
