import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './args';

export const DEV_ROOT = '.twinmart';
export const DEV_CONFIG = `${DEV_ROOT}/dev.yaml`;

/** --config, else TWINMART_CONFIG, else the dev world's config when it exists. */
export function configPath(flag: string | undefined): string {
  const path = flag ?? process.env.TWINMART_CONFIG ?? (existsSync(DEV_CONFIG) ? DEV_CONFIG : undefined);
  if (!path) throw new UsageError(`no config: pass --config FILE, set TWINMART_CONFIG, or run \`twinmart dev up\` first`);
  return resolve(path);
}
