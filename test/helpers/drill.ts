/**
 * What a DR drill must leave as it was, read before and after: the DR workflow's phase,
 * sites, reporting and waits; each ETL running, with its exclusions; each mart's reporting role;
 * and no cursor set back (the ETLs go on, so cursors may only move forward).
 */
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { readReportingRole } from '../../src/mart/control';
import { drStatusQuery } from '../../src/workflows/dr-messages';
import { etlStatusQuery } from '../../src/workflows/etl-messages';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../../src/workflows/names';
import type { TestWorld } from './world';

async function observe(w: TestWorld, client: Client) {
  const dr = await client.workflow.getHandle(DR_WORKFLOW_ID).query(drStatusQuery);
  const sites = Object.keys(w.config.sites);
  const etl: Record<string, { status: string; excluded: string[]; paused: boolean }> = {};
  const roles: Record<string, unknown> = {};
  const cursors: Record<string, Record<string, bigint>> = {};
  for (const site of sites) {
    const handle = client.workflow.getHandle(etlWorkflowId(site));
    const status = await handle.query(etlStatusQuery);
    // Running (a run may continue as new meanwhile, which is the ETL's own business).
    etl[site] = { status: (await handle.describe()).status.name, excluded: status.excludedSites, paused: status.paused };
    roles[site] = await readReportingRole(w.mart(site));
    const { rows } = await w.mart(site).query<{ member_id: string; rows_total: string }>('select member_id, rows_total::text from ctl_cursor');
    cursors[site] = Object.fromEntries(rows.map((r) => [r.member_id, BigInt(r.rows_total)]));
  }
  return { dr: { phase: dr.phase, sites: dr.sites, reporting: dr.reporting, pending: dr.pending }, etl, roles, cursors };
}

/** Runs `drill` and asserts that it changed nothing; returns what it returned. */
export async function changesNothing<T>(w: TestWorld, client: Client, drill: () => Promise<T>): Promise<T> {
  const before = await observe(w, client);
  const result = await drill();
  const after = await observe(w, client);
  assert.deepEqual(after.dr, before.dr, 'the DR workflow as it was');
  assert.deepEqual(after.etl, before.etl, 'every ETL running, excluding and pausing nothing new');
  assert.deepEqual(after.roles, before.roles, 'every reporting role as it was');
  for (const [site, members] of Object.entries(before.cursors)) {
    for (const [member, rows] of Object.entries(members)) {
      assert.ok((after.cursors[site]![member] ?? -1n) >= rows, `${site}: the cursor of ${member} not set back`);
    }
  }
  return result;
}
