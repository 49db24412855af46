/**
 * The DR workflow's activities. Site activities run on that site's queue (reporting role,
 * data-loss facts, seeding, catch-up and parity checks, health probe); the control
 * activity (describing the deployment) runs on the control queue, at any live site.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError } from '@temporalio/client';
import { martOwnerUrl, reportingUrl, runLimits, type Config } from '../config';
import { configFingerprint } from '../config/fingerprint';
import type { ConfigFingerprint } from '../config/match';
import type { Pools } from '../db';
import type { Logger } from '../logger';
import { martCursors, membersBehind, rowsBehind } from '../etl/backlog';
import {
  loadBacklog,
  readMemberLag,
  recordMemberLag,
  setReportingRole,
  sourceFacts,
  type MemberLag,
  type ReportingRole,
  type SourceFacts,
} from '../mart/control';
import { seedMart } from '../mart/seed';
import { compareMarts } from '../parity';
import { heartbeating } from './heartbeat';
import { DR_WORKFLOW_ID, etlWorkflowId } from '../workflows/names';
import type { SenderRef } from '../workflows/senders';
import type { RunLimits } from '../workflows/runs';
import type { ParityDifference } from '../workflows/dr-messages';

/** Mismatching intervals a reintroduction check shows (the status is for people, not a report). */
const SHOW_DIFFERENCES = 5;

export interface Deployment {
  sites: string[];
  primary: string;
  /** HA sets: source id -> members (ids and sites only). */
  sources: Record<string, { id: string; site: string }[]>;
  dr: Config['dr'];
  /** Absent in results recorded before runs were bounded (see boundRun). */
  runs?: RunLimits;
}

export interface ReintroductionCheck {
  caughtUp: boolean;
  dirty: number;
  pendingChunks: number;
  /** Rows behind per reachable member. */
  behind: Record<string, number>;
  parity: {
    match: boolean;
    intervalsCompared: number;
    mismatches: number;
    closedBefore: string;
    /** The first mismatching intervals, as counts (absent in results from before). */
    differences?: ParityDifference[];
  } | null;
}

/** Whether a run of the site's ETL is open. */
async function etlRunning(site: string): Promise<boolean> {
  try {
    return (await Context.current().client.workflow.getHandle(etlWorkflowId(site)).describe()).status.name === 'RUNNING';
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return false;
    throw e;
  }
}

export function createControlActivities({ config }: { config: Config }) {
  return {
    /** Whether the site's ETL has a run open: a reintroduction waits on a run that exists. */
    async etlRunning(input: { site: string }): Promise<boolean> {
      return etlRunning(input.site);
    },

    async describeDeployment(): Promise<Deployment> {
      const sources: Deployment['sources'] = {};
      for (const m of config.members) (sources[m.sourceId] ??= []).push({ id: m.id, site: m.site });
      return { sites: Object.keys(config.sites), primary: config.reporting.primary, sources, dr: config.dr, runs: runLimits(config) };
    },

    /**
     * Ends the site's ETL and returns once no run of it is open, so nothing writes the
     * mart while it is seeded and a new run can start. A cancellation that has not
     * taken effect within `graceSeconds` (its workflow task waits on a dead site's
     * activities) is forced with a terminate.
     */
    async stopEtl(input: { site: string; graceSeconds: number }): Promise<'not running' | 'cancelled' | 'terminated'> {
      const ctx = Context.current();
      const handle = ctx.client.workflow.getHandle(etlWorkflowId(input.site));
      const running = () => etlRunning(input.site);
      if (!(await running())) return 'not running';
      await handle.cancel();
      const deadline = Date.now() + input.graceSeconds * 1000;
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        ctx.heartbeat();
        if (!(await running())) return 'cancelled';
      }
      await handle.terminate(`cancellation did not take effect within ${input.graceSeconds} s`).catch((e: unknown) => {
        if (!(e instanceof WorkflowNotFoundError)) throw e;
      });
      if (await running()) throw new Error(`the ETL of ${input.site} still runs after terminate`);
      return 'terminated';
    },

    /**
     * The identities Temporal recorded with the DR workflow's commands (src/workflows/senders.ts):
     * per ref, the sending client's identity, null where its history holds no such event.
     */
    async commandSenders(input: { refs: SenderRef[] }): Promise<(string | null)[]> {
      const client = Context.current().client;
      const runs = new Map<string, { signals: Record<string, string[]>; updates: Record<string, string> }>();
      for (const runId of new Set(input.refs.map((r) => r.runId))) {
        const signals: Record<string, string[]> = {};
        const updates: Record<string, string> = {};
        const { events } = await client.workflow.getHandle(DR_WORKFLOW_ID, runId).fetchHistory();
        for (const e of events ?? []) {
          const s = e.workflowExecutionSignaledEventAttributes;
          if (s?.signalName) (signals[s.signalName] ??= []).push(s.identity ?? '');
          const u = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.meta;
          if (u?.updateId) updates[u.updateId] = u.identity ?? '';
        }
        runs.set(runId, { signals, updates });
      }
      return input.refs.map((r) => {
        const run = runs.get(r.runId)!;
        const identity = r.update !== undefined ? run.updates[r.update] : run.signals[r.signal ?? '']?.[r.nth ?? -1];
        return identity || null;
      });
    },
  };
}

export function createDrActivities({ config, site, pools, logger }: { config: Config; site: string; pools: Pools; logger: Logger }) {
  const mart = (s = site) => pools.get(config.sites[s]!.mart, { connectionTimeoutMillis: 5000 });
  const checkSite = (requested: string) => {
    if (requested !== site) throw ApplicationFailure.nonRetryable(`activity for site ${requested} reached the worker of site ${site}`);
  };
  const fingerprint = configFingerprint(config);

  async function checkReintroduction(extractedSince: string, parityWith?: string): Promise<ReintroductionCheck> {
    const { dirty, pendingChunks } = await loadBacklog(mart());
    const since = Date.parse(extractedSince);
    const behind: Record<string, number> = {};
    for (const { member: m, cursor: c, rows: n } of await membersBehind(config, pools, site)) {
      if (!c) {
        behind[m.id] = Number.MAX_SAFE_INTEGER; // reachable or not, never extracted yet
        continue;
      }
      if (n === null) continue; // unreachable: its partner covers the set
      const extractedByThisEtl = c.last_extract_at !== null && c.last_extract_at.getTime() >= since;
      behind[m.id] = extractedByThisEtl ? n : Number.MAX_SAFE_INTEGER;
    }
    const caughtUp =
      pendingChunks === 0 && dirty < config.etl.transformBatch && Object.values(behind).every((n) => n < config.etl.chunkRows);
    let parity: ReintroductionCheck['parity'] = null;
    if (parityWith && caughtUp) {
      const closedBefore = new Date(Date.now() - config.dr.paritySettleSeconds * 1000);
      const report = await compareMarts(
        { name: site, pool: mart() },
        { name: parityWith, pool: mart(parityWith) },
        { closedBefore, maxExamples: 0, retention: config.retention },
      );
      parity = {
        match: report.match,
        intervalsCompared: report.intervalsCompared,
        mismatches: report.mismatches.length,
        closedBefore: report.closedBefore,
        differences: report.mismatches.slice(0, SHOW_DIFFERENCES).map((m) => ({
          kind: m.kind,
          interval: m.interval,
          rows: { [site]: m.a.rows, [parityWith]: m.b.rows },
          onlyIn: { [site]: m.differences.onlyInA, [parityWith]: m.differences.onlyInB },
          changed: m.differences.changed,
        })),
      };
    }
    return { caughtUp, dirty, pendingChunks, behind, parity };
  }

  return {
    /**
     * Switches this site's reporting and waits until its reporting service says so on
     * /health, so the operator is asked to confirm only a switch that took effect.
     */
    async setReportingRole(input: { site: string; role: ReportingRole; activeSite: string }): Promise<{ role: ReportingRole; activeSite: string }> {
      checkSite(input.site);
      await setReportingRole(mart(), input.role, input.activeSite);
      const url = `${reportingUrl(config, site)}/health`;
      const ctx = Context.current();
      let last = 'no answer yet';
      for (let attempt = 0; attempt < 30 && !ctx.cancellationSignal.aborted; attempt++) {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
          const health = (await res.json()) as { role?: string; activeSite?: string };
          if (health.role === input.role && health.activeSite === input.activeSite) {
            logger.info('reporting role set', { site, role: input.role, activeSite: input.activeSite });
            return { role: input.role, activeSite: input.activeSite };
          }
          last = `it answers role ${health.role}, active site ${health.activeSite}`;
        } catch (e) {
          last = (e as Error).message;
        }
        ctx.heartbeat({ attempt, last });
        await new Promise((r) => setTimeout(r, 1000));
      }
      throw new Error(`the reporting service of ${site} at ${url} does not show role ${input.role} yet: ${last}`);
    },

    async dataLossFacts(input: { site: string; sourceIds: string[] }): Promise<SourceFacts[]> {
      checkSite(input.site);
      return heartbeating(() => sourceFacts(mart(), input.sourceIds));
    },

    /** Seeds this (rebuilt) site's mart from a surviving site's mart; starts it as a standby. */
    async seedFrom(input: { site: string; from: string; activeReporting: string }): Promise<Record<string, number>> {
      checkSite(input.site);
      // The seed drops and rebuilds keys and indexes, which is the owner's to do.
      const copied = await heartbeating(() => seedMart(mart(input.from), pools.get(martOwnerUrl(config, site))));
      await setReportingRole(mart(), input.activeReporting === site ? 'active' : 'standby', input.activeReporting);
      logger.info('mart seeded', { site, from: input.from, copied });
      return copied;
    },

    /**
     * Caught up: no half-committed chunk, the transform's queues nearly empty and every
     * reachable member less than a chunk behind, extracted by this site's ETL since
     * `extractedSince` (a freshly seeded cursor is the survivor's, not proof that this
     * ETL runs). With `parityWith`, also compares marts.
     */
    async reintroductionCheck(input: { site: string; extractedSince: string; parityWith?: string }): Promise<ReintroductionCheck> {
      checkSite(input.site);
      return heartbeating(() => checkReintroduction(input.extractedSince, input.parityWith));
    },

    /**
     * The site's worker answers (this runs there) and its mart answers. It also records
     * how far the mart is behind each reachable member, so that after a failure the
     * data-loss report can say what the failed members held that this mart had not read.
     */
    /** This site's worker's configuration, for the DR workflow to compare with the other sites'. */
    async describeConfig(input: { site: string }): Promise<ConfigFingerprint> {
      checkSite(input.site);
      return fingerprint;
    },

    async probeSite(input: { site: string }): Promise<{ ok: boolean; error: string | null; config: ConfigFingerprint }> {
      checkSite(input.site);
      try {
        await mart().query('select 1');
      } catch (e) {
        return { ok: false, error: `mart of ${site} does not answer: ${(e as Error).message}`, config: fingerprint };
      }
      try {
        // Within three quarters of the probe's time, so a slow IDB never turns into a failed probe.
        const budget = new Promise<null>((r) => setTimeout(r, (Context.current().info.startToCloseTimeoutMs * 3) / 4, null));
        const cursors = await martCursors(config, pools, site);
        const measured = await Promise.all(
          config.members.map(async (m) => {
            const c = cursors.get(m.id);
            const rows = c ? await Promise.race([rowsBehind(pools, config.etl, m.url, c.snapshot, `twinmart-probe-${site}`), budget]) : null;
            return rows === null ? [] : [{ memberId: m.id, rows, lastReadAt: c!.last_extract_at }];
          }),
        );
        await recordMemberLag(mart(), measured.flat());
      } catch (e) {
        logger.warn('member lag not measured', { site, error: (e as Error).message });
      }
      return { ok: true, error: null, config: fingerprint };
    },

    /** The last lag this mart measured of each of these members (see probeSite). */
    async memberLag(input: { site: string; memberIds: string[] }): Promise<MemberLag[]> {
      checkSite(input.site);
      return readMemberLag(mart(), input.memberIds);
    },
  };
}

export type DrActivities = ReturnType<typeof createDrActivities>;
export type ControlActivities = ReturnType<typeof createControlActivities>;
