/**
 * The `twinmart` command. Each subcommand parses its flags, loads the config once and
 * hands it down; errors end as one clear line: exit code 2 for a usage or configuration
 * error (fix the call), 1 for a runtime one (a server down, a refused command).
 */
import { loadConfig, assertSite, ConfigError, temporalAddress } from '../config';
import { Pools } from '../db';
import { createLogger } from '../logger';
import { collectStatus, formatStatus } from '../etl/site-status';
import { compareMarts, formatParityReport } from '../parity';
import { runSim } from '../sim';
import { createSiteWorkers } from '../workers/site-worker';
import { hashPassword } from '../reporting/password';
import { createReportingServer } from '../reporting/server';
import { connectClient, ensureSearchAttributes, startAll } from '../temporal/connection';
import { configurationLines, drCommand, formatDrStatus } from './dr';
import { drStatusQuery } from '../workflows/dr-messages';
import { DR_WORKFLOW_ID } from '../workflows/names';
import { parse, UsageError } from './args';
import { configPath } from './config-path';
import { devCommand, siteCommand, demoCommand } from './dev';
import { commandHelp, usage, version, wantsHelp } from './help';


const number = (name: string, v: string | undefined, dflt?: number): number => {
  if (v === undefined && dflt !== undefined) return dflt;
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} needs a non-negative number, got ${v ?? 'nothing'}`);
  return n;
};

async function worker(args: string[]): Promise<void> {
  const { values } = parse(args, { site: { type: 'string' }, 'metrics-host': { type: 'string' } });
  if (!values.site) throw new UsageError('worker needs --site <site>');
  const config = loadConfig(configPath(values.config));
  assertSite(config, values.site);
  const logger = createLogger('worker', 'info', { site: values.site });
  const workers = await createSiteWorkers(config, values.site, logger, { metricsHost: values['metrics-host'] });
  logger.info('workers running', { site: values.site, temporal: temporalAddress(config, values.site) });
  await workers.run;
  logger.info('workers stopped');
}

async function reporting(args: string[]): Promise<void> {
  const { values } = parse(args, { site: { type: 'string' }, host: { type: 'string' } });
  if (!values.site) throw new UsageError('reporting needs --site <site>');
  const config = loadConfig(configPath(values.config));
  assertSite(config, values.site);
  const logger = createLogger('reporting', 'info', { site: values.site });
  const pools = new Pools();
  const server = createReportingServer({
    config,
    site: values.site,
    pools,
    logger,
    temporal: () => connectClient(config, values.site),
    host: values.host ?? '127.0.0.1',
  });
  const port = await server.listen();
  logger.info('reporting service listening', { site: values.site, url: `http://${values.host ?? '127.0.0.1'}:${port}/` });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await server.close();
  await pools.end();
}

async function start(args: string[]): Promise<void> {
  const { values } = parse(args, {});
  const config = loadConfig(configPath(values.config));
  const client = await connectClient(config);
  await ensureSearchAttributes(client);
  const started = await startAll(client, config);
  process.stdout.write(`DR workflow running; ETL workflows running for ${started.join(', ')}\n`);
}

async function status(args: string[]): Promise<void> {
  const { values } = parse(args, { json: { type: 'boolean' }, watch: { type: 'boolean' } });
  const config = loadConfig(configPath(values.config));
  const client = await connectClient(config);
  const pools = new Pools();
  try {
    for (;;) {
      const view = await collectStatus(config, client, pools);
      const dr = await client.workflow
        .getHandle(DR_WORKFLOW_ID)
        .query(drStatusQuery)
        .catch(() => null);
      if (values.json) process.stdout.write(JSON.stringify({ at: new Date().toISOString(), dr, sites: view }) + '\n');
      else {
        const drLines = dr ? [formatDrStatus(dr).split('\n')[0], ...configurationLines(dr)].join('\n') : 'not running';
        process.stdout.write(`${values.watch ? '\x1b[2J\x1b[H' : ''}${new Date().toISOString()}\nDR: ${drLines}\n${formatStatus(view)}\n`);
      }
      if (!values.watch) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await pools.end();
    await client.connection.close();
  }
}

async function sim(args: string[]): Promise<void> {
  const { values } = parse(args, {
    calls: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    'backfill-minutes': { type: 'string' },
    'history-seconds': { type: 'string' },
  });
  const config = loadConfig(configPath(values.config));
  const calls = number('calls', values.calls);
  const rate = number('rate', values.rate, 5);
  const backfill = values['backfill-minutes'];
  const logger = createLogger('sim');
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const result = await runSim(
    config,
    {
      calls,
      rate,
      seed: values.seed === undefined ? undefined : number('seed', values.seed),
      startTs: backfill === undefined ? undefined : new Date(Date.now() - number('backfill-minutes', backfill) * 60_000),
      historySeconds: number('history-seconds', values['history-seconds'], 0),
    },
    logger,
    abort.signal,
  );
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

async function parity(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, 'settle-seconds': { type: 'string' } });
  const [a, b] = positionals;
  if (!a || !b) throw new UsageError('parity needs two sites: twinmart parity <siteA> <siteB>');
  const config = loadConfig(configPath(values.config));
  assertSite(config, a);
  assertSite(config, b);
  const pools = new Pools();
  try {
    const settle = number('settle-seconds', values['settle-seconds'], 60);
    const report = await compareMarts(
      { name: a, pool: pools.get(config.sites[a]!.mart) },
      { name: b, pool: pools.get(config.sites[b]!.mart) },
      { closedBefore: new Date(Date.now() - settle * 1000), retention: config.retention },
    );
    process.stdout.write(values.json ? JSON.stringify(report) + '\n' : formatParityReport(report) + '\n');
    return report.match ? 0 : 1;
  } finally {
    await pools.end();
  }
}

/** The password is read from stdin, so it stays out of the shell's history and `ps`. */
async function hashPasswordCommand(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  process.stdout.write(`${await hashPassword(password)}\n`);
}

type Command = (args: string[]) => Promise<number | void>;
const commands: Record<string, Command> = {
  worker,
  reporting,
  start,
  status,
  sim,
  parity,
  dev: devCommand,
  site: siteCommand,
  demo: demoCommand,
  dr: drCommand,
  'hash-password': hashPasswordCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  // Own keys only: `twinmart toString` is an unknown command, not Object.prototype's.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command && wantsHelp(rest)) {
    process.stdout.write(commandHelp(name) + '\n');
    return 0;
  }
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    return (await command(rest)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`twinmart: ${e.message}\n\n${command ? commandHelp(name) : usage()}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`twinmart: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`twinmart ${name}: ${(e as Error).message}\n`);
    return 1;
  }
}
