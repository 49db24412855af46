/** What a result was measured on: the machine, the software versions, the code's commit. */
import { execFile } from 'node:child_process';
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { promisify } from 'node:util';
import { Client, type Pool } from 'pg';
import { repoRoot } from '../paths';
import { round } from './util';

const exec = promisify(execFile);

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  os: string;
  /** 1-minute load average at the start and end: other work on a shared machine shows here. */
  loadAverageStart: number;
  loadAverageEnd: number | null;
}

export interface Versions {
  node: string;
  postgres: string | null;
  temporalCli: string | null;
  twinmart: { commit: string | null; dirty: boolean | null };
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGb: round(totalmem() / 2 ** 30, 1),
    os: `${osType()} ${release()}`,
    loadAverageStart: round(loadavg()[0]!, 2),
    loadAverageEnd: null,
  };
}

async function output(file: string, args: string[]): Promise<string | null> {
  try {
    const { stdout } = await exec(file, args, { cwd: repoRoot, timeout: 20_000, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } });
    return stdout.trim();
  } catch {
    return null;
  }
}

/** `martUrl` is any database of a world instance (the server version is read there). */
export async function versions(temporalBinary: string | null, martUrl: string | null): Promise<Versions> {
  let postgres: string | null = null;
  if (martUrl) {
    const c = new Client({ connectionString: martUrl });
    try {
      await c.connect();
      postgres = (await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
    } catch {
      postgres = null;
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  // --no-optional-locks: reading the status must not rewrite git's index.
  const commit = await output('git', ['rev-parse', 'HEAD']);
  const status = await output('git', ['--no-optional-locks', 'status', '--porcelain', '--untracked-files=no']);
  return {
    node: process.version,
    postgres,
    temporalCli: temporalBinary ? ((await output(temporalBinary, ['--version']))?.split('\n')[0] ?? null) : null,
    twinmart: { commit, dirty: status === null ? null : status.length > 0 },
  };
}

export function finishMachine(m: Machine): void {
  m.loadAverageEnd = round(loadavg()[0]!, 2);
}

/** What a commit and a page write cost on the servers measured, as they report it (SHOW). */
export interface PostgresSettings {
  fsync: string | null;
  synchronousCommit: string | null;
  fullPageWrites: string | null;
  sharedBuffers: string | null;
  randomPageCost: string | null;
  walLevel: string | null;
}

const SHOWN: Record<keyof PostgresSettings, string> = {
  fsync: 'fsync',
  synchronousCommit: 'synchronous_commit',
  fullPageWrites: 'full_page_writes',
  sharedBuffers: 'shared_buffers',
  randomPageCost: 'random_page_cost',
  walLevel: 'wal_level',
};

export const UNREAD_SETTINGS: PostgresSettings = { fsync: null, synchronousCommit: null, fullPageWrites: null, sharedBuffers: null, randomPageCost: null, walLevel: null };

/**
 * Each setting as every instance reports it with SHOW: its value where they agree, else
 * `dc1=on, dc2=off`. Read back rather than assumed from what the harness wrote.
 */
export async function postgresSettings(instances: Record<string, Pool>): Promise<PostgresSettings> {
  const out = { ...UNREAD_SETTINGS };
  for (const [key, name] of Object.entries(SHOWN) as [keyof PostgresSettings, string][]) {
    const values = await Promise.all(
      Object.entries(instances).map(async ([instance, pool]) => {
        // SHOW takes no parameters; `name` is one of the constants above.
        const { rows } = await pool.query<Record<string, string>>(`show ${name}`);
        return [instance, rows[0]![name]!] as const;
      }),
    );
    const distinct = new Set(values.map(([, v]) => v));
    out[key] = distinct.size === 1 ? values[0]![1] : values.map(([i, v]) => `${i}=${v}`).join(', ');
  }
  return out;
}
