/**
 * A clone under a directory user postgres cannot traverse (a root's home, mode 0700)
 * still runs its dev world: the PostgreSQL data goes where that user can reach it, and
 * `dev down --wipe` removes it there too.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { silentLogger } from '../src/logger';
import { planWorld, saveWorld, startSiteDatabases, stopWorld, type WorldState } from '../src/dev/world';
import { withPgClient } from './helpers/pg';

const asRoot = process.geteuid?.() === 0;
// mkdtemp makes the directory 0700: the clone inside it is out of user postgres's reach.
const home = asRoot ? mkdtempSync(join(homedir(), '.twinmart-private-')) : '';
let state: WorldState | undefined;
after(async () => {
  if (state) await stopWorld(state, true).catch(() => undefined);
  if (home) rmSync(home, { recursive: true, force: true });
});

test('a dev world whose clone sits in a private home directory starts its databases and wipes them', { skip: !asRoot && 'only root has a home user postgres cannot traverse' }, async () => {
  state = await planWorld(join(home, 'twinmart', '.twinmart'), { layout: { s: [{ site: 'dc1', db: 'idb_s' }] } });
  await startSiteDatabases(state, 'dc1', silentLogger);
  const config = saveWorld(state);
  const dataDir = state.pg.dc1!.dataDir;
  assert.match(dataDir, /^\/var\/tmp\/twinmart-[0-9a-f]{12}\/pg-dc1$/);
  const n = await withPgClient(config.members[0]!.url, (c) => c.query('select count(*)::int as n from idb.meta'));
  assert.equal(n.rows[0].n, 1);
  await stopWorld(state, true);
  state = undefined;
  assert.equal(existsSync(dataDir), false, `${dataDir} left after the wipe`);
});
