/**
 * siteEtlWorkflow (`twinmart-etl-<site>`): the never-ending ETL cycle of one site's mart.
 * Extract every included member, transform, apply commands at the cycle boundary and
 * confirm them, sleep when the cycle found nothing new, continue-as-new when the run is
 * full (src/workflows/runs.ts). State is a plain record; history holds ids and counts only.
 */
import {
  ActivityCancellationType,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  ContinueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { z } from 'zod';
import type { EtlActivities, SiteDescription } from '../activities/etl';
import type { ExtractResult } from '../etl/extract-member';
import type { TransformResult } from '../etl/transform';
import { caughtUp, extractionLanes } from '../etl/order';
import { SITE_ID } from '../config/ids';
import {
  controlCommandSchema,
  etlConfirmationSignal,
  etlStatusQuery,
  excludeSiteSignal,
  excludeSiteUpdate,
  includeSiteSignal,
  includeSiteUpdate,
  pauseSignal,
  pauseUpdate,
  resumeSignal,
  resumeUpdate,
  siteCommandSchema,
  type EtlCommandKind,
  type EtlConfirmation,
  type EtlStatus,
  type MemberStatus,
} from './etl-messages';
import { SEARCH_ATTRIBUTES, siteQueue } from './names';
import { boundRun } from './runs';

export interface SiteEtlInput {
  site: string;
  /** Carried across continue-as-new; absent on a fresh start. */
  state?: EtlState;
}

interface PendingCommand {
  command: EtlCommandKind;
  target: string | null;
  requestId: string;
  replyTo: string | null;
}

export interface EtlState extends Omit<EtlStatus, 'runId' | 'pending'> {
  pending: PendingCommand[];
}

const KEEP = 20;

const isSiteCommand = (command: EtlCommandKind): boolean => command === 'excludeSite' || command === 'includeSite';

function initialState(site: string): EtlState {
  return {
    site,
    paused: false,
    cycle: 0,
    excludedSites: [],
    members: {},
    totals: { callRows: 0, agentRows: 0, facts: 0, discarded: 0 },
    lastCycle: null,
    pending: [],
    applied: [],
    rejected: [],
    continuedAsNew: 0,
  };
}

const pushCapped = <T>(list: T[], item: T): void => {
  list.push(item);
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
};

export async function siteEtlWorkflow(input: SiteEtlInput): Promise<void> {
  try {
    await runEtl(input);
  } catch (e) {
    // A failover cancels the failed site's ETL while its activity runs on that site's dead
    // worker: the activity ends by heartbeat timeout, not by cancellation. The run was
    // cancelled all the same, and ends so (it showed as failed, "Activity task timed out").
    // `patched`: a run that failed so before this replays (a query) as it ended.
    const cancelled = CancellationScope.current().consideredCancelled && !isCancellation(e) && !(e instanceof ContinueAsNew);
    if (cancelled && patched('cancelled-run-ends-cancelled')) {
      throw new CancelledFailure(`cancelled while its activity could not stop: ${(e as Error).message}`);
    }
    throw e;
  }
}

async function runEtl(input: SiteEtlInput): Promise<void> {
  if (typeof input?.site !== 'string' || !SITE_ID.test(input.site)) {
    throw ApplicationFailure.nonRetryable(`siteEtlWorkflow input needs {"site": "<id matching ${SITE_ID}>"}`);
  }
  const site = input.site;
  const state = input.state ?? initialState(site);
  const now = () => new Date().toISOString();

  const setup = proxyActivities<EtlActivities>({
    taskQueue: siteQueue(site),
    startToCloseTimeout: '5 minutes',
    // prepareSite heartbeats while it migrates: a worker killed meanwhile costs seconds, not the 5 minutes.
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', maximumInterval: '15s' },
  });

  // Commands can arrive before prepareSite answers; they wait in `pending` like any other.
  // What each update waits for, by request id: its confirmation, or why its command was
  // refused at the boundary (a site named before prepareSite said which sites exist).
  const waiting = new Set<string>();
  const outcomes = new Map<string, EtlConfirmation | ApplicationFailure>();
  const settle = (requestId: string, outcome: EtlConfirmation | ApplicationFailure) => {
    if (waiting.has(requestId)) outcomes.set(requestId, outcome);
  };
  let sites: string[] | null = null;
  // Runs started before cycles could be interrupted replay without it (see runCycle).
  const interruptible = patched('interrupt-cycle-on-command');
  // Exclusions reach the mart (ctl_excluded_member) before they are confirmed: data gaps.
  const notesExclusions = patched('exclusions-in-mart');
  let interrupt: (() => void) | null = null;
  const enqueue = (cmd: PendingCommand) => {
    state.pending.push(cmd);
    interrupt?.();
  };

  function validate(command: EtlCommandKind, payload: unknown): PendingCommand {
    const isSite = isSiteCommand(command);
    const parsed = (isSite ? siteCommandSchema : controlCommandSchema).safeParse(payload ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
      throw ApplicationFailure.nonRetryable(`invalid ${command} payload: ${issues}`, 'InvalidPayload');
    }
    const value = parsed.data as z.infer<typeof siteCommandSchema>;
    const target = isSite ? value.site : null;
    if (target !== null) {
      if (sites && !sites.includes(target)) {
        throw ApplicationFailure.nonRetryable(`unknown site "${target}" (sites: ${sites.join(', ')})`, 'UnknownSite');
      }
      if (target === site && command === 'excludeSite') {
        throw ApplicationFailure.nonRetryable(`the ETL of ${site} cannot exclude its own site`, 'OwnSite');
      }
    }
    return { command, target, requestId: value.requestId ?? uuid4(), replyTo: value.replyTo ?? null };
  }

  const kinds: [EtlCommandKind, SignalDefinition<[unknown?]>, UpdateDefinition<EtlConfirmation, [unknown]>][] = [
    ['excludeSite', excludeSiteSignal, excludeSiteUpdate],
    ['includeSite', includeSiteSignal, includeSiteUpdate],
    ['pause', pauseSignal, pauseUpdate],
    ['resume', resumeSignal, resumeUpdate],
  ];
  for (const [command, signal, update] of kinds) {
    // A malformed signal is recorded and dropped: it must never fail the workflow task.
    setHandler(signal, (payload: unknown) => {
      try {
        enqueue(validate(command, payload));
      } catch (e) {
        pushCapped(state.rejected, { command, reason: (e as Error).message, at: now() });
      }
    });
    setHandler(
      update,
      async (payload) => {
        const cmd = validate(command, payload);
        waiting.add(cmd.requestId);
        enqueue(cmd);
        await condition(() => outcomes.has(cmd.requestId));
        const outcome = outcomes.get(cmd.requestId)!;
        outcomes.delete(cmd.requestId);
        waiting.delete(cmd.requestId);
        if (outcome instanceof ApplicationFailure) throw outcome;
        return outcome;
      },
      {
        validator: (payload) => {
          try {
            validate(command, payload);
          } catch (e) {
            pushCapped(state.rejected, { command, reason: (e as Error).message, at: now() });
            throw e;
          }
        },
      },
    );
  }

  setHandler(etlStatusQuery, (): EtlStatus => ({
    ...state,
    runId: workflowInfo().runId,
    pending: state.pending.map(({ command, target, requestId }) => ({ command, target, requestId })),
  }));

  const desc: SiteDescription = await setup.prepareSite({ site, excludedSites: state.excludedSites });
  sites = desc.sites;
  const bound = boundRun<typeof siteEtlWorkflow>(desc.runs);
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.site, value: site }]);
  const acts = proxyActivities<EtlActivities>({
    taskQueue: siteQueue(site),
    startToCloseTimeout: '4 hours',
    heartbeatTimeout: desc.heartbeatSeconds * 1000,
    retry: { initialInterval: '1s', maximumInterval: '10s' },
    // An interrupted cycle (see runCycle) goes on only once its loads have stopped: a
    // confirmed exclusion must mean no load from that site is still running.
    cancellationType: interruptible ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED : ActivityCancellationType.TRY_CANCEL,
  });
  syncMembers(state, desc);

  async function applyCommands(): Promise<void> {
    while (state.pending.length) {
      const cmd = state.pending.shift()!;
      if (cmd.target && !desc.sites.includes(cmd.target)) {
        const reason = `unknown site "${cmd.target}" (sites: ${desc.sites.join(', ')})`;
        pushCapped(state.rejected, { command: cmd.command, reason, at: now() });
        settle(cmd.requestId, ApplicationFailure.nonRetryable(`invalid ${cmd.command}: ${reason}`, 'UnknownSite'));
        continue;
      }
      if (cmd.command === 'excludeSite' && !state.excludedSites.includes(cmd.target!)) {
        state.excludedSites = [...state.excludedSites, cmd.target!].sort();
      } else if (cmd.command === 'includeSite') {
        state.excludedSites = state.excludedSites.filter((s) => s !== cmd.target);
      } else if (cmd.command === 'pause') state.paused = true;
      else if (cmd.command === 'resume') state.paused = false;
      syncMembers(state, desc);
      if (notesExclusions && isSiteCommand(cmd.command)) await acts.noteExclusions({ site, excludedSites: state.excludedSites });
      const confirmation: EtlConfirmation = {
        requestId: cmd.requestId,
        etlSite: site,
        command: cmd.command,
        target: cmd.target,
        cycle: state.cycle,
        appliedAt: now(),
        excludedSites: state.excludedSites,
        paused: state.paused,
        members: Object.fromEntries(
          Object.entries(state.members).map(([id, m]) => [id, { site: m.site, sourceId: m.sourceId, state: m.state, lastOkAt: m.lastOkAt }]),
        ),
      };
      settle(cmd.requestId, confirmation);
      pushCapped(state.applied, { command: cmd.command, target: cmd.target, requestId: cmd.requestId, cycle: state.cycle, at: confirmation.appliedAt });
      if (cmd.replyTo) {
        try {
          await getExternalWorkflowHandle(cmd.replyTo).signal(etlConfirmationSignal, confirmation);
        } catch (e) {
          log.warn('could not deliver confirmation', { replyTo: cmd.replyTo, error: (e as Error).message });
        }
      }
    }
  }

  /**
   * One cycle; says whether there may be more to do at once (rows loaded, or the cycle
   * cut short). A command that arrives meanwhile interrupts it:
   * its loads and transform stop after what they committed (the rest stays in the cursors
   * and queues for the next cycle), so the boundary where the command applies comes within
   * a heartbeat, not after a behind cycle's whole backlog (32.6 s of failover RTO, measured).
   */
  async function runCycle(): Promise<boolean> {
    const startedAt = now();
    const included = desc.members.filter((m) => !state.excludedSites.includes(m.site));
    const results: ExtractResult[] = [];
    const lastRows = (id: string) => (state.members[id]!.state === 'pending' ? null : state.members[id]!.lastRows);
    const down = (id: string) => state.members[id]!.state === 'unreachable';
    const lanes = extractionLanes(included, down);
    let t: TransformResult | null;
    const outer = CancellationScope.current();
    const cycle = new CancellationScope();
    // An activity the interruption stopped before it began, or that gave up once asked to
    // stop, did nothing left to count; one that stopped after commits returns their counts.
    // (A cancelled workflow is not an interrupted cycle: that cancellation goes on up.)
    const interrupted = () => cycle.consideredCancelled && !outer.consideredCancelled;
    const unlessInterrupted = async <T>(call: () => Promise<T>): Promise<T | null> => {
      if (interrupted()) return null;
      try {
        return await call();
      } catch (e) {
        if (interrupted()) return null;
        throw e;
      }
    };
    if (interruptible) interrupt = () => cycle.cancel();
    try {
      t = await cycle.run(async () => {
        // Every member caught up: the whole cycle is one task (two server round trips, not a dozen).
        if (included.every((m) => caughtUp(lastRows(m.id), desc.chunkRows))) {
          const steady = await unlessInterrupted(() =>
            acts.extractAndTransform({ site, lanes: lanes.map((lane) => lane.map((m) => m.id)) }),
          );
          results.push(...(steady?.extracts ?? []));
          return steady?.transform ?? null;
        }
        await Promise.all(
          lanes.map(async (lane) => {
            for (const m of lane) {
              const r = await unlessInterrupted(() => acts.extractMember({ site, memberId: m.id }));
              if (r) results.push(r);
            }
          }),
        );
        return unlessInterrupted(() => acts.transform({ site }));
      });
    } finally {
      interrupt = null;
    }
    let rows = 0;
    for (const r of results) {
      const m = state.members[r.memberId]!;
      const n = r.callRows + r.agentRows;
      m.state = r.state;
      m.lastError = r.error;
      m.lastRows = n;
      m.rowsTotal += n;
      if (r.reset) m.lastReset = r.reset;
      if (r.state === 'ok') m.lastOkAt = now();
      state.totals.callRows += r.callRows;
      state.totals.agentRows += r.agentRows;
      state.totals.discarded += r.discarded;
      rows += n;
    }
    state.totals.facts += t?.facts ?? 0;
    state.totals.discarded += t?.discarded ?? 0;
    state.cycle += 1;
    state.lastCycle = { startedAt, finishedAt: now(), rows, facts: t?.facts ?? 0, interrupted: interrupted() };
    return rows > 0 || interrupted();
  }

  for (;;) {
    await applyCommands();
    const busy = !state.paused && (await runCycle());
    await applyCommands();
    if (bound.full()) {
      // Updates waiting for a boundary must be answered before this run ends.
      while (!allHandlersFinished()) {
        await condition(() => allHandlersFinished() || state.pending.length > 0);
        await applyCommands();
      }
      state.continuedAsNew += 1;
      await bound.continueAsNew({ site, state });
    }
    // The interval is how often an idle site looks again. While rows keep arriving the
    // next cycle starts at once: sleeping after a cycle that found work would add up to
    // a whole interval to the freshness of every event.
    if (!busy) await condition(() => state.pending.length > 0, desc.cycleSeconds * 1000);
  }
}

/** Member records follow the config: new members appear, excluded ones say so. */
function syncMembers(state: EtlState, desc: SiteDescription): void {
  const next: Record<string, MemberStatus> = {};
  for (const m of desc.members) {
    const prev = state.members[m.id];
    const excluded = state.excludedSites.includes(m.site);
    next[m.id] = {
      site: m.site,
      sourceId: m.sourceId,
      state: excluded ? 'excluded' : prev && prev.state !== 'excluded' ? prev.state : 'pending',
      lastOkAt: prev?.lastOkAt ?? null,
      lastError: prev?.lastError ?? null,
      lastReset: prev?.lastReset ?? null,
      rowsTotal: prev?.rowsTotal ?? 0,
      lastRows: prev?.lastRows ?? 0,
    };
  }
  state.members = next;
}
