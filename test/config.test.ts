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

test('retention: defaults, an interval or a cron schedule, and an error naming the key', () => {
  assert.deepEqual(parseConfig(valid(), 'test.yaml', env).retention, { stagingDays: 30, factDays: 400, batchRows: 10_000, schedule: '1h' });
  for (const schedule of ['30m', '1d', '0 3 * * *', '@daily']) {
    assert.equal(parseConfig({ ...valid(), retention: { schedule } }, 'test.yaml', env).retention.schedule, schedule);
  }
  rejects({ ...valid(), retention: { schedule: 'nightly' } }, /retention\.schedule/, /an interval such as "1h"/);
  rejects({ ...valid(), retention: { stagingDays: 0 } }, /retention\.stagingDays/);
  rejects({ ...valid(), retention: { stagingDays: 30, factDays: 7 } }, /retention\.factDays: must be at least retention\.stagingDays/);
  rejects({ ...valid(), retention: { keepForever: true } }, /retention/, /keepForever/);
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

test('a password with an unencoded @ or / is a config error naming the key, and the message never quotes it', () => {
  const secret = 'Zq9@wX';
  for (const [password, why] of [
    ['Zq9@wX', /more than one @/],
    ['123/Zq9wX', /database name holds a \/|more than one @/],
    ['Zq9/wX', /not a valid postgres:\/\/ URL/],
  ] as const) {
    const c = valid();
    c.sources['sw-voice-1'][1]!.url = 'postgres://reader:${IDB_PASSWORD}@127.0.0.1:5434/idb_voice_1';
    assert.throws(
      () => parseConfig(c, 'test.yaml', { ...env, IDB_PASSWORD: password }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, /sources\.sw-voice-1\.1\.url/);
        assert.match(e.message, why);
        assert.match(e.message, /percent-encode/);
        for (const part of [password, secret, '127.0.0.1']) assert.ok(!e.message.includes(part), `${e.message} holds ${part}`);
        return true;
      },
    );
  }
  const ok = valid();
  ok.sources['sw-voice-1'][1]!.url = 'postgres://reader:Zq9%40w%2FX@127.0.0.1:5434/idb_voice_1?password=x&sslmode=disable';
  assert.equal(parseConfig(ok, 'test.yaml', env).members[1]!.url, ok.sources['sw-voice-1'][1]!.url, 'encoded, it is fine');
});

test('a YAML error names its line without quoting it: the line may hold a password', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twinmart-config-'));
  try {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'sites:\n  dc1: { mart: "postgres://u:Hunter2Secret@h/db", reportingPort: 8401\n');
    assert.throws(
      () => loadConfig(file, env),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, /not valid YAML at line \d+, column \d+/);
        assert.ok(!e.message.includes('Hunter2Secret'), e.message);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Temporal's own environment (TEMPORAL_ADDRESS, _NAMESPACE, _API_KEY, _TLS_*) fills what the file leaves out; the file wins", () => {
  const bare = { ...valid(), temporal: {} };
  const temporalEnv = {
    ...env,
    TEMPORAL_ADDRESS: 'temporal.example:7233',
    TEMPORAL_NAMESPACE: 'twinmart-prod',
    TEMPORAL_API_KEY: 'k',
    TEMPORAL_TLS_CLIENT_CERT_PATH: '/etc/tm/client.pem',
    TEMPORAL_TLS_CLIENT_KEY_PATH: '/etc/tm/client.key',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/etc/tm/ca.pem',
    TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
  };
  const t = parseConfig(bare, 'test.yaml', temporalEnv).temporal;
  assert.equal(t.address, 'temporal.example:7233');
  assert.equal(t.namespace, 'twinmart-prod');
  assert.equal(t.apiKeyEnv, 'TEMPORAL_API_KEY');
  assert.deepEqual(t.tls, { caFile: '/etc/tm/ca.pem', certFile: '/etc/tm/client.pem', keyFile: '/etc/tm/client.key', serverName: 'temporal.internal' });
  const fromFile = parseConfig({ ...valid(), temporal: { address: 'file:7233', namespace: 'file-ns', tls: { caFile: '/file/ca.pem' } } }, 'test.yaml', temporalEnv).temporal;
  assert.deepEqual([fromFile.address, fromFile.namespace, fromFile.tls], ['file:7233', 'file-ns', { caFile: '/file/ca.pem' }], 'the file wins');
  const none = parseConfig(bare, 'test.yaml', env).temporal;
  assert.deepEqual([none.address, none.namespace, none.apiKeyEnv, none.tls], ['127.0.0.1:7233', 'default', undefined, undefined], 'defaults without either');
  assert.deepEqual(parseConfig(bare, 'test.yaml', { ...env, TEMPORAL_TLS: 'true' }).temporal.tls, {}, 'TEMPORAL_TLS=true: TLS with the system roots');
  assert.equal(parseConfig(bare, 'test.yaml', { ...temporalEnv, TEMPORAL_TLS: 'false' }).temporal.tls, undefined, 'TEMPORAL_TLS=false: none');
});
