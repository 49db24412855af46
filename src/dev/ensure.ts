/**
 * Run by scripts/with-setup.sh before the tests and the demo: makes sure the default
 * PostgreSQL answers and a Temporal CLI and the Temporal server (for the per-site mode)
 * are available, building them if need be, then prints the CLI's path on stdout, the
 * only thing this prints there. Progress and errors go to stderr.
 */
import { createLogger } from '../logger';
import { ensureDefaultPostgres } from './postgres';
import { findGo, findTemporalCli } from './temporal';
import { findTemporalServer } from './temporal-cluster';

async function main(): Promise<void> {
  const logger = createLogger('setup');
  await ensureDefaultPostgres(logger);
  const binary = await findTemporalCli({
    logger,
    build: true,
    onBuildProgress: (line) => process.stderr.write(`[setup] ${line}\n`),
  });
  // The server's build reuses the CLI's module downloads: after it, about 4 more minutes once.
  // Without Go (a CLI from PATH) only the per-site mode is missing, and it says so when asked for.
  try {
    await findTemporalServer({ logger, build: true, onBuildProgress: (line) => process.stderr.write(`[setup] ${line}\n`) });
  } catch (e) {
    if (await findGo()) throw e;
    process.stderr.write(`[setup] warning: ${(e as Error).message}\n`);
  }
  process.stdout.write(`${binary}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`[setup] ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
