import { resolve } from 'node:path';

/** Compiled code runs from dist/src/…; the repository root holds migrations/ and bin/. */
export const repoRoot = resolve(__dirname, '..', '..');
export const migrationsDir = (kind: 'mart' | 'idb'): string => resolve(repoRoot, 'migrations', kind);
