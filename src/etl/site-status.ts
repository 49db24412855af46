/**
 * What `twinmart status` shows: per site the ETL workflow's own view (cycle, commands,
 * per-member state) joined with the mart's cursors and each member's backlog, counted
 * on the IDB behind the cursor (an index range on xid, cheap).
 */
import type { Client } from '@temporalio/client';
import type { Config } from '../config';
import type { Pools } from '../db';
import { martCursors, rowsBehind, type MemberCursor } from './backlog';
import { siteBandwidth, type Bandwidth } from './bandwidth';
import { etlStatusQuery, type EtlStatus } from '../workflows/etl-messages';
import { etlWorkflowId } from '../workflows/names';

export interface MemberView {
  id: string;
  site: string;
  sourceId: string;
  state: string;
  cursorAgeSeconds: number | null;
  eventsLoaded: number;
  /** COPY bytes this site's ETL read from the member (its workflow's count); null when the workflow did not answer. */
  bytesRead: number | null;
  behind: number | null;
  lastError: string | null;
}

export interface SiteView {
  site: string;
  workflow: 'running' | 'not running' | 'unreachable';
  paused: boolean;
  cycle: number | null;
  lastCycleAt: string | null;
  excludedSites: string[];
  facts: number | null;
  /** Bytes read from local and remote members, per event landed; null when the workflow did not answer. */
  bandwidth: Bandwidth | null;
  members: MemberView[];
  error: string | null;
}

async function cursorsOrError(config: Config, pools: Pools, site: string): Promise<Map<string, MemberCursor> | string> {
  try {
    return await martCursors(config, pools, site);
  } catch (e) {
    return `mart unreachable: ${(e as Error).message}`;
  }
}

export async function collectStatus(config: Config, client: Client, pools: Pools): Promise<SiteView[]> {
  return Promise.all(
    Object.keys(config.sites).map(async (site): Promise<SiteView> => {
      let wf: EtlStatus | null = null;
      let workflow: SiteView['workflow'] = 'running';
      let error: string | null = null;
      try {
        const handle = client.workflow.getHandle(etlWorkflowId(site));
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') workflow = 'not running';
        else wf = await handle.query(etlStatusQuery);
      } catch (e) {
        workflow = (e as Error).name === 'WorkflowNotFoundError' ? 'not running' : 'unreachable';
        if (workflow === 'unreachable') error = (e as Error).message;
      }
      const cursors = await cursorsOrError(config, pools, site);
      if (typeof cursors === 'string') error = cursors;
      const members = await Promise.all(
        config.members.map(async (m): Promise<MemberView> => {
          const c = typeof cursors === 'string' ? undefined : cursors.get(m.id);
          const w = wf?.members[m.id];
          return {
            id: m.id,
            site: m.site,
            sourceId: m.sourceId,
            state: w?.state ?? 'unknown',
            cursorAgeSeconds: c?.age ?? null,
            eventsLoaded: Number(c?.rows_total ?? 0),
            bytesRead: w ? (w.bytesRead ?? 0) : null,
            behind: c && w?.state !== 'excluded' ? await rowsBehind(pools, config.etl, m.url, c.snapshot) : null,
            lastError: w?.lastError ?? null,
          };
        }),
      );
      return {
        site,
        workflow,
        paused: wf?.paused ?? false,
        cycle: wf?.cycle ?? null,
        lastCycleAt: wf?.lastCycle?.finishedAt ?? null,
        excludedSites: wf?.excludedSites ?? [],
        facts: wf?.totals.facts ?? null,
        bandwidth: wf ? siteBandwidth(site, wf.members) : null,
        members,
        error,
      };
    }),
  );
}

const megabytes = (bytes: number | null): string => (bytes === null ? '-' : (bytes / 1e6).toFixed(1));

export function formatStatus(sites: SiteView[]): string {
  const out: string[] = [];
  for (const s of sites) {
    const age = s.lastCycleAt ? `${((Date.now() - Date.parse(s.lastCycleAt)) / 1000).toFixed(1)}s ago` : '-';
    out.push(
      `site ${s.site}: ETL ${s.workflow}${s.paused ? ' (paused)' : ''}, cycle ${s.cycle ?? '-'}, last cycle ${age}` +
        `${s.excludedSites.length ? `, excluding ${s.excludedSites.join(', ')}` : ''}${s.error ? ` — ${s.error}` : ''}`,
    );
    const b = s.bandwidth;
    if (b) {
      out.push(
        `  read ${megabytes(b.localBytes)} MB from local members, ${megabytes(b.remoteBytes)} MB from remote ones (WAN); ` +
          `per event landed: ${b.localBytesPerEvent ?? '-'} B local, ${b.remoteBytesPerEvent ?? '-'} B remote (${b.eventsLanded} events)`,
      );
    }
    out.push('  member                  site  source        state        cursor age  events loaded  MB read  lag (rows)');
    for (const m of s.members) {
      out.push(
        `  ${m.id.padEnd(23)} ${m.site.padEnd(5)} ${m.sourceId.padEnd(13)} ${m.state.padEnd(12)} ` +
          `${(m.cursorAgeSeconds === null ? '-' : m.cursorAgeSeconds.toFixed(1) + 's').padStart(10)}  ` +
          `${String(m.eventsLoaded).padStart(13)}  ${megabytes(m.bytesRead).padStart(7)}  ${String(m.behind ?? '-').padStart(10)}` +
          ((m.state === 'unreachable' || m.state === 'error') && m.lastError ? `  ${m.lastError.slice(0, 80)}` : ''),
      );
    }
  }
  return out.join('\n');
}
