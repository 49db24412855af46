/**
 * The command's usage: one entry per subcommand, so `twinmart <command> --help` prints
 * that command's help and nothing runs (a `start --help` used to start the workflows).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../paths';
import { DEV_CONFIG } from './config-path';

const HELP: Record<string, string> = {
  dev: `dev up [--detach] [--temporal dev|per-site] | dev down [--wipe]
    local two-site world (config written to ${DEV_CONFIG}); --detach returns once it is up,
    down --wipe also deletes its data; --temporal per-site runs a real Temporal cluster per
    site with one replicated namespace (the production shape) instead of one dev server`,
  site: `site stop|start <site> [--wipe]
    dev only: stop a site for real (workers killed, PostgreSQL stopped immediate, and in
    per-site mode its Temporal server killed) or bring it back; --wipe brings it back as a
    replacement with empty databases`,
  demo: `demo [--seconds S] [--rate R] [--no-dr] [--temporal dev|per-site]
    dev up, traffic and live progress until Ctrl-C (or S seconds); a DR round trip of dc1 20 s
    in unless --no-dr, run with the operator's twinmart dr commands (per-site: the namespace
    fails over with dc1 and is handed back before the failback)`,
  worker: `worker --site <site> [--metrics-host H]
    run one site's workers (the control queue and the site's own queue); SIGTERM drains;
    Prometheus metrics at /metrics on sites.<site>.metricsPort (on 127.0.0.1 unless H)`,
  reporting: `reporting --site <site> [--host H]
    run one site's reporting service and dashboard on sites.<site>.reportingPort`,
  'hash-password': `hash-password
    read a password on stdin, print its scrypt hash for reporting.auth.users`,
  start: `start
    register the search attributes and start the DR and ETL workflows that are not running`,
  status: `status [--json] [--watch]
    per site and member: state, cursor age, events loaded, lag; and the DR phase`,
  sim: `sim --calls N --rate R [--seed S] [--backfill-minutes M | --history-seconds H]
    simulated traffic into every member of every HA set`,
  parity: `parity <siteA> <siteB> [--json] [--settle-seconds S]
    compare two marts; exit 0 only when every closed interval matches`,
  dr: `dr fail <site> [--reason R] | confirm-reporting <site> | rebuilt <site> | failback <site>
   | retry | status [--json] | drill <site> [--json] | handover <site>
    the DR commands, sent as updates to workflow twinmart-dr; with a Temporal cluster per
    site, fail first moves the namespace off a failed site's cluster, rebuilt first brings
    the site's cluster back into it, and handover moves it to <site>'s cluster gracefully;
    drill asks the survivors whether a failover of <site> would go through now and what it
    would lose, changing nothing (exit 0 only when it would)`,
};

export const COMMANDS = Object.keys(HELP);

export function usage(): string {
  const lines = COMMANDS.map((c) => '  ' + HELP[c]!.split('\n')[0]);
  return [
    'usage: twinmart <command> [options]   (every command takes --config FILE and --help)',
    ...lines,
    '  --version                              print the version',
    'exit codes: 0 done, 1 runtime error, 2 usage or configuration error',
  ].join('\n');
}

export function commandHelp(command: string): string {
  return `usage: twinmart ${HELP[command]}\n  --config FILE   the config (else TWINMART_CONFIG, else ${DEV_CONFIG})`;
}

/** `--help` or `-h` anywhere before a `--` asks for help. */
export function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
