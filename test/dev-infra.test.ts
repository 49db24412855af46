/**
 * The dev infrastructure on the real thing: PostgreSQL instances made with initdb and
 * pg_ctl, and the Temporal CLI's dev server. Evidence (data directories, logs) is kept
 * in the temporary directory when a test fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { withPgClient } from './helpers/pg';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import {
  createDatabase,
  initInstance,
  instanceUrl,
  isInstanceRunning,
  removeInstance,
  startInstance,
  stopInstance,
  type PgInstance,
} from '../src/dev/postgres';
import { freeLowPort, freePort } from '../src/dev/ports';
import { planWorld, stopWorld, type WorldState } from '../src/dev/world';
import { waitFor } from '../src/wait';
import { findTemporalCli, isAlive, startDevServer, type DevServer } from '../src/dev/temporal';
import { silentLogger } from '../src/logger';
import { SEARCH_ATTRIBUTES } from '../src/workflows/names';

/** Removes `dir` after the suite only if every test in it passed. */
function evidence(dir: () => string): { passed(): void; planned(n: number): void } {
  let expected = 0;
  let passed = 0;
  after(async () => {
    if (passed === expected) await rm(dir(), { recursive: true, force: true });
    else process.stderr.write(`dev-infra: evidence kept in ${dir()}\n`);
  });
  return { passed: () => void passed++, planned: (n) => void (expected = n) };
}


const noteTexts = (url: string): Promise<string[]> =>
  withPgClient(url, async (c) => (await c.query<{ text: string }>('select text from note order by id')).rows.map((r) => r.text));

describe('dev PostgreSQL instance', () => {
  let root = '';
  let inst: PgInstance;
  const proof = evidence(() => root);
  proof.planned(4);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'twinmart-dev-infra-pg-'));
    await chmod(root, 0o755); // mkdtemp makes it 0700; as root, the server runs as user postgres
    inst = { name: 'test-site', dataDir: join(root, 'pg'), port: await freePort() };
  });
  after(async () => {
    await stopInstance(inst, 'immediate'); // a failed test must not leave a server behind
  });

  test('init, start, create a database, connect', async () => {
    await initInstance(inst);
    await startInstance(inst);
    await startInstance(inst); // idempotent
    assert.equal(await isInstanceRunning(inst), true);
    await createDatabase(inst, 'twinmart_test');
    await createDatabase(inst, 'twinmart_test'); // idempotent
    const url = instanceUrl(inst, 'twinmart_test');
    assert.equal(url, `postgres://postgres@127.0.0.1:${inst.port}/twinmart_test`);
    await withPgClient(url, async (c) => {
      const settings = await c.query<{ name: string; setting: string }>(
        "select name, setting from pg_settings where name in ('max_connections', 'fsync', 'port') order by name",
      );
      assert.deepEqual(
        settings.rows.map((r) => `${r.name}=${r.setting}`),
        ['fsync=off', 'max_connections=200', `port=${inst.port}`],
      );
      await c.query('create table note (id serial primary key, text text not null)');
      await c.query("insert into note (text) values ('before fast stop')");
    });
    await assert.rejects(createDatabase(inst, 'Bad-Name'), /invalid database name "Bad-Name"/);
    proof.passed();
  });

  test('fast stop, re-init on another port, start again: data intact', async () => {
    await stopInstance(inst, 'fast');
    await stopInstance(inst, 'fast'); // idempotent
    assert.equal(await isInstanceRunning(inst), false);
    inst = { ...inst, port: await freePort() };
    await initInstance(inst); // already initialised: only the settings are rewritten
    await startInstance(inst);
    assert.deepEqual(await noteTexts(instanceUrl(inst, 'twinmart_test')), ['before fast stop']);
    proof.passed();
  });

  test('immediate stop (a crash), start again: committed data recovered', async () => {
    const url = instanceUrl(inst, 'twinmart_test');
    await withPgClient(url, (c) => c.query("insert into note (text) values ('before crash')"));
    await stopInstance(inst, 'immediate');
    assert.equal(await isInstanceRunning(inst), false);
    await startInstance(inst);
    assert.deepEqual(await noteTexts(url), ['before fast stop', 'before crash']);
    proof.passed();
  });

  test('remove stops the server and deletes its data', async () => {
    await removeInstance(inst);
    assert.equal(existsSync(inst.dataDir), false);
    assert.equal(await isInstanceRunning(inst), false);
    await removeInstance(inst); // idempotent
    proof.passed();
  });
});

describe('Temporal dev server', () => {
  let root = '';
  let binary = '';
  const proof = evidence(() => root);
  proof.planned(2);
  const running: DevServer[] = [];
  const site = SEARCH_ATTRIBUTES.site;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'twinmart-dev-infra-temporal-'));
    binary = await findTemporalCli({ logger: silentLogger });
  });
  after(async () => {
    for (const server of running) await server.kill();
  });

  async function start(dbFile?: string, uiPort?: null): Promise<DevServer> {
    const server = await startDevServer({ binary, dbFile, uiPort, logFile: join(root, 'temporal.log'), logger: silentLogger });
    running.push(server);
    return server;
  }

  async function withClient<T>(server: DevServer, fn: (client: TemporalClient) => Promise<T>): Promise<T> {
    const connection = await Connection.connect({ address: server.address });
    try {
      return await fn(new TemporalClient({ connection }));
    } finally {
      await connection.close();
    }
  }

  test('keeps workflows and search attributes across a restart on the same database file', async () => {
    const dbFile = join(root, 'temporal.db');
    const first = await start(dbFile, null);
    assert.equal(first.uiUrl, null);
    // No worker polls this queue: the workflow just stays open, which is all we need.
    await withClient(first, (client) =>
      client.workflow.start('devInfraProbe', {
        taskQueue: 'dev-infra-test',
        workflowId: 'dev-infra-probe',
        typedSearchAttributes: [{ key: site, value: 'dc1' }],
      }),
    );
    await first.stop();
    assert.throws(() => process.kill(first.pid, 0), { code: 'ESRCH' });

    const second = await start(dbFile, null);
    const described = await withClient(second, (client) => client.workflow.getHandle('dev-infra-probe').describe());
    assert.equal(described.status.name, 'RUNNING');
    assert.equal(described.typedSearchAttributes.get(site), 'dc1');
    await second.kill();
    assert.throws(() => process.kill(second.pid, 0), { code: 'ESRCH' });
    proof.passed();
  });

  test('serves the Web UI', async () => {
    const server = await start();
    assert.ok(server.uiUrl);
    const response = await fetch(server.uiUrl);
    assert.equal(response.status, 200);
    await server.stop();
    proof.passed();
  });
});

describe('an interrupted test run', () => {
  test('SIGINT stops the servers of its open worlds (each runs in a session of its own) and exits 130', async () => {
    // A test file in miniature: opens a world, says so, and waits to be interrupted.
    const script = `
      const { openWorld } = require(${JSON.stringify(join(__dirname, 'helpers', 'world.js'))});
      openWorld('interrupted', { layout: { 'sw-a': [{ site: 'dc1', db: 'idb_a' }, { site: 'dc2', db: 'idb_a' }] } })
        .then((w) => { process.stdout.write(JSON.stringify(w.state) + '\\n'); setInterval(() => {}, 1000); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let state: WorldState | undefined;
    try {
      await waitFor('the world to be up', async () => out.includes('\n') || child.exitCode !== null, 120_000, 100);
      state = JSON.parse(out.split('\n')[0]!) as WorldState;
      const pids = [state.temporal.pid, ...Object.values(state.workers), ...Object.values(state.reporting).map((r) => r.pid)];
      assert.ok(pids.every((pid) => isAlive(pid)), `every server runs: ${pids.join(', ')}`);
      child.kill('SIGINT');
      assert.equal(await exited, 130, err);
      assert.deepEqual(pids.filter((pid) => isAlive(pid)), [], 'no process of the world outlives the run');
      for (const inst of Object.values(state.pg)) assert.equal(await isInstanceRunning(inst), false, `${inst.name} stopped`);
      assert.match(err, /SIGINT: stopping the test worlds \(data kept at .*twinmart-interrupted-/);
    } finally {
      child.kill('SIGKILL');
      if (state) {
        await stopWorld(state, false).catch(() => undefined);
        await rm(state.root, { recursive: true, force: true });
      }
    }
  });
});

describe('ports of a world', () => {
  // A worker, a reporting service or a server stopped in a test binds its port again when
  // it starts: in the kernel's ephemeral range any outgoing connection or port-0 listener
  // (the Temporal dev server's internal services) may hold it by then (a restarted worker
  // died with EADDRINUSE on its metrics port).
  test('plans every port it binds again after a restart outside the ephemeral range', async () => {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    for (const temporal of ['dev', 'per-site'] as const) {
      const w = await planWorld(join(tmpdir(), 'twinmart-ports-plan'), { temporal });
      const ports = {
        ...Object.fromEntries(Object.values(w.pg).map((p) => [`pg ${p.name}`, p.port])),
        temporal: w.temporal.port,
        ...Object.fromEntries(Object.entries(w.reporting).map(([s, r]) => [`reporting ${s}`, r.port])),
        ...Object.fromEntries(Object.entries(w.metrics ?? {}).map(([s, p]) => [`metrics ${s}`, p])),
      };
      for (const [what, port] of Object.entries(ports)) assert.ok(port < low || port > high, `${temporal}: ${what} port ${port} is outside ${low}-${high}`);
    }
  });
});

describe('ports of a Temporal cluster', () => {
  // A cluster plans eleven low ports before it binds any: a repeat makes its server fail to start.
  test('never hands out one low port twice within a process', async () => {
    const picked: number[] = [];
    for (let i = 0; i < 1500; i++) picked.push(await freeLowPort());
    assert.equal(new Set(picked).size, picked.length, 'every pick a port of its own');
    assert.ok(picked.every((p) => p >= 20_000 && p < 32_768), 'below the ephemeral range');
  });
});
