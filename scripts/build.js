#!/usr/bin/env node
// Builds dist/ when its inputs changed since the last build (or it was never built):
// run by `npm ci` (prepare), by scripts/with-setup.sh, and by bin/twinmart.js on first use.
// Directories count too: their mtime changes when a file is added or removed, and dist
// is rebuilt from scratch so a deleted source leaves no stale output behind.
const { existsSync, readdirSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const stamp = join(root, 'dist', '.built');
const inputs = ['src', 'test', 'migrations', 'tsconfig.json', 'package-lock.json'];

function newerThan(path, since) {
  if (!existsSync(path)) return false;
  const st = statSync(path);
  if (st.mtimeMs > since) return true;
  return st.isDirectory() && readdirSync(path).some((f) => newerThan(join(path, f), since));
}

function stale() {
  if (!existsSync(stamp)) return true;
  const since = statSync(stamp).mtimeMs;
  return inputs.some((p) => newerThan(join(root, p), since));
}

function build() {
  process.stderr.write('[setup] building (tsc and the workflow bundle)\n');
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
    stdio: ['ignore', 2, 2],
  });
  if (tsc.status !== 0) return false;
  const bundle = spawnSync(process.execPath, [join(root, 'dist', 'src', 'workers', 'bundle.js')], { stdio: ['ignore', 2, 2] });
  if (bundle.status !== 0) return false;
  writeFileSync(stamp, '');
  return true;
}

module.exports = { stale, build };

if (require.main === module) process.exit(!stale() || build() ? 0 : 1);
