/**
 * Debian packages a test needs and a fresh machine lacks (chromium, docker-compose): installed
 * with apt-get as root, never downloaded from elsewhere. Returns the program's path.
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** `recommends: false` where a recommended package is unwanted (docker-compose recommends the docker engine). */
export function ensureDebianPackage(program: string, pkg: string, { recommends = true } = {}): string {
  if (existsSync(program)) return program;
  if (process.getuid?.() !== 0) {
    throw new Error(`${program} is missing and installing it needs root: run apt-get update && apt-get install -y ${pkg}`);
  }
  process.stderr.write(`[test] ${program} is missing: installing Debian's ${pkg} with apt-get\n`);
  for (const args of [['update'], ['install', '-y', ...(recommends ? [] : ['--no-install-recommends']), pkg]]) {
    const r = spawnSync('apt-get', args, {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      maxBuffer: 256 * 1024 * 1024,
    });
    if (r.status !== 0) {
      const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n');
      throw new Error(`apt-get ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}); ${pkg} is needed at ${program}:\n${out}`);
    }
  }
  if (!existsSync(program)) throw new Error(`apt-get install -y ${pkg} succeeded but ${program} does not exist`);
  return program;
}
