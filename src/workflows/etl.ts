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
import type { EtlActivities, SiteDescription } from '../activities/etl';
import type { ExtractResult } from '../etl/extract-member';
import type { TransformResult } from '../etl/transform';
import { caughtUp, extractionLanes } from '../etl/order';
import {
  controlCommandSchema,
  etlConfirmationSignal,
  etlStatusQuery,
  excludeMemberSignal,
  excludeMemberUpdate,
  excludeSiteSignal,
  excludeSiteUpdate,
  includeMemberSignal,
  includeMemberUpdate,
  includeSiteSignal,
  includeSiteUpdate,
  issues,
  memberCommandSchema,
  pauseSignal,
  pauseUpdate,
  resumeSignal,
  resumeUpdate,
  siteCommandSchema,
  type EtlCommandKind,
  type EtlConfirmation,
  type CycleSummary,
  type EtlStatus,
  type MemberCommandInput,
  type SiteCommandInput,
  type MemberStatus,
} from './etl-messages';
import { SEARCH_ATTRIBUTES, siteQueue } from './names';
import { siteOf } from './site-input';
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
  /** The update waiting for this command's outcome (request ids may repeat); none for a signal. */
  waiter?: number;
}

/** The status without what the query derives: the run, the commands' waiters, the last cycle (the newest of recentCycles). */
export interface EtlState extends Omit<EtlStatus, 'runId' | 'pending' | 'lastCycle' | 'recentCycles'> {
  pending: PendingCommand[];
  /** Absent in the state a run of an earlier version continued with. */
  recentCycles?: CycleSummary[];
}

const KEEP = 20;


function initialState(site: string): EtlState {
  return {
    site,
    paused: false,
    cycle: 0,
    excludedSites: [],
    excludedMembers: [],
    members: {},
    totals: { callRows: 0, agentRows: 0, facts: 0, discarded: 0 },
    recentCycles: [],
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
  const site = siteOf('siteEtlWorkflow', input);
  const state = input.state ?? initialState(site);
  state.excludedMembers ??= []; // a run continued from before members could be excluded
  const now = () => new Date().toISOString();

  const setup = proxyActivities<EtlActivities>({
    taskQueue: siteQueue(site),
    startToCloseTimeout: '5 minutes',
    // prepareSite heartbeats while it migrates: a worker killed meanwhile costs seconds, not the 5 minutes.
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', maximumInterval: '15s' },
  });

  // Commands can arrive before prepareSite answers; they wait in `pending` like any other.
  // What each waiting update gets: its confirmation, or why its command was refused at the
  // boundary (a site named before prepareSite said which sites exist). Keyed by the update,
  // not the request id: two updates sent with one request id each get their answer.
  let waiters = 0;
  const outcomes = new Map<number, EtlConfirmation | ApplicationFailure>();
  const settle = (cmd: PendingCommand, outcome: EtlConfirmation | ApplicationFailure) => {
    if (cmd.waiter !== undefined) outcomes.set(cmd.waiter, outcome);
  };
  let known: SiteDescription | null = null;
  // Runs started before cycles could be interrupted replay without it (see runCycle).
  const interruptible = patched('interrupt-cycle-on-command');
  // Exclusions reach the mart (ctl_excluded_member) before they are confirmed: data gaps.
  const notesExclusions = patched('exclusions-in-mart');
  let interrupt: (() => void) | null = null;
  /** A cycle met a member the worker's config no longer has. */
  let membersChanged = false;
  const enqueue = (cmd: PendingCommand) => {
    state.pending.push(cmd);
    interrupt?.();
  };

  /** Pure (update validators run it, and they do not run on replay): no state, no random. */
  function validate(command: EtlCommandKind, payload: unknown): Omit<PendingCommand, 'requestId'> & { requestId: string | null } {
    const schema = isSiteCommand(command) ? siteCommandSchema : isMemberCommand(command) ? memberCommandSchema : controlCommandSchema;
    const parsed = schema.safeParse(payload ?? {});
    if (!parsed.success) {
      throw ApplicationFailure.nonRetryable(`invalid ${command} payload: ${issues(parsed.error)}`, 'InvalidPayload');
    }
    const value = parsed.data as Partial<SiteCommandInput & MemberCommandInput>;
    const target = value.site ?? value.member ?? null;
    if (target !== null) {
      const unknown = known && unknownTarget(command, target, known);
      if (unknown) throw unknown;
      if (target === site && command === 'excludeSite') {
        throw ApplicationFailure.nonRetryable(`the ETL of ${site} cannot exclude its own site`, 'OwnSite');
      }
    }
    return { command, target, requestId: value.requestId ?? null, replyTo: value.replyTo ?? null };
  }
  const accept = (command: EtlCommandKind, payload: unknown): PendingCommand => {
    const cmd = validate(command, payload);
    return { ...cmd, requestId: cmd.requestId ?? uuid4() };
  };

  const kinds: [EtlCommandKind, SignalDefinition<[unknown?]>, UpdateDefinition<EtlConfirmation, [unknown]>][] = [
    ['excludeSite', excludeSiteSignal, excludeSiteUpdate],
    ['includeSite', includeSiteSignal, includeSiteUpdate],
    ['excludeMember', excludeMemberSignal, excludeMemberUpdate],
    ['includeMember', includeMemberSignal, includeMemberUpdate],
    ['pause', pauseSignal, pauseUpdate],
    ['resume', resumeSignal, resumeUpdate],
  ];
  for (const [command, signal, update] of kinds) {
    // A malformed signal is recorded and dropped: it must never fail the workflow task.
    setHandler(signal, (payload: unknown) => {
      try {
        enqueue(accept(command, payload));
      } catch (e) {
        pushCapped(state.rejected, { command, reason: (e as Error).message, at: now() });
      }
    });
    setHandler(
      update,
      async (payload) => {
        const waiter = waiters++;
        enqueue({ ...accept(command, payload), waiter });
        await condition(() => outcomes.has(waiter));
        const outcome = outcomes.get(waiter)!;
        outcomes.delete(waiter);
        if (outcome instanceof ApplicationFailure) throw outcome;
        return outcome;
      },
      // A refused update is answered with the reason and leaves no trace in the state.
      { validator: (payload) => void validate(command, payload) },
    );
  }

  setHandler(etlStatusQuery, (): EtlStatus => ({
    ...state,
    runId: workflowInfo().runId,
    pending: state.pending.map(({ command, target, requestId }) => ({ command, target, requestId })),
    lastCycle: state.recentCycles?.at(-1) ?? null,
    recentCycles: state.recentCycles ?? [],
  }));

  const desc: SiteDescription = await setup.prepareSite({ site, excludedSites: state.excludedSites });
  known = desc;
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
      const unknown = cmd.target ? unknownTarget(cmd.command, cmd.target, desc) : null;
      if (unknown) {
        pushCapped(state.rejected, { command: cmd.command, reason: unknown.message, at: now() });
        settle(cmd, unknown);
        continue;
      }
      if (cmd.command === 'excludeSite' && !state.excludedSites.includes(cmd.target!)) {
        state.excludedSites = [...state.excludedSites, cmd.target!].sort();
      } else if (cmd.command === 'includeSite') {
        state.excludedSites = state.excludedSites.filter((s) => s !== cmd.target);
      } else if (cmd.command === 'excludeMember' && !state.excludedMembers.includes(cmd.target!)) {
        state.excludedMembers = [...state.excludedMembers, cmd.target!].sort();
      } else if (cmd.command === 'includeMember') {
        state.excludedMembers = state.excludedMembers.filter((m) => m !== cmd.target);
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
        excludedMembers: state.excludedMembers,
        paused: state.paused,
        members: Object.fromEntries(
          Object.entries(state.members).map(([id, m]) => [id, { site: m.site, sourceId: m.sourceId, state: m.state, lastOkAt: m.lastOkAt }]),
        ),
      };
      settle(cmd, confirmation);
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
    const included = desc.members.filter((m) => !isExcluded(state, m));
    const results: ExtractResult[] = [];
    const lastRows = (id: string) => (state.members[id]!.state === 'pending' ? null : state.members[id]!.lastRows);
    const down = (id: string) => ['unreachable', 'error'].includes(state.members[id]!.state);
    const lanes = extractionLanes(included, down, desc.extraction === 'lean' ? site : undefined);
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
            acts.extractAndTransform({ site, lanes: lanes.map((lane) => lane.map((m) => m.id)), cycleStartedAt: startedAt }),
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
        return unlessInterrupted(() => acts.transform({ site, cycleStartedAt: startedAt }));
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
      // Results recorded before bytes were counted have none.
      m.bytesRead = (m.bytesRead ?? 0) + (r.bytes ?? 0);
      if (r.reset) m.lastReset = r.reset;
      if (r.state === 'ok') m.lastOkAt = now();
      state.totals.callRows += r.callRows;
      state.totals.agentRows += r.agentRows;
      state.totals.discarded += r.discarded;
      rows += n;
    }
    // A member the site's worker no longer has: the next run reads the new member list.
    if (results.some((r) => r.state === 'removed')) membersChanged = true;
    state.totals.facts += t?.facts ?? 0;
    state.totals.discarded += t?.discarded ?? 0;
    state.cycle += 1;
    pushCapped((state.recentCycles ??= []), { startedAt, finishedAt: now(), rows, facts: t?.facts ?? 0, interrupted: interrupted() });
    return rows > 0 || interrupted();
  }

  for (;;) {
    await applyCommands();
    const busy = !state.paused && (await runCycle());
    await applyCommands();
    if (bound.full() || membersChanged) {
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

const isSiteCommand = (c: EtlCommandKind) => c === 'excludeSite' || c === 'includeSite';
const isMemberCommand = (c: EtlCommandKind) => c === 'excludeMember' || c === 'includeMember';

/** Why a command's site or member is not one the config has; null when it is. */
function unknownTarget(command: EtlCommandKind, target: string, desc: SiteDescription): ApplicationFailure | null {
  if (isSiteCommand(command) && !desc.sites.includes(target)) {
    return ApplicationFailure.nonRetryable(`unknown site "${target}" (sites: ${desc.sites.join(', ')})`, 'UnknownSite');
  }
  if (isMemberCommand(command) && !desc.members.some((m) => m.id === target)) {
    return ApplicationFailure.nonRetryable(`unknown member "${target}" (members: ${desc.members.map((m) => m.id).join(', ')})`, 'UnknownMember');
  }
  return null;
}

const isExcluded = (state: EtlState, m: { id: string; site: string }) =>
  state.excludedSites.includes(m.site) || state.excludedMembers.includes(m.id);

/** Member records follow the config: new members appear, excluded ones say so. */
function syncMembers(state: EtlState, desc: SiteDescription): void {
  const next: Record<string, MemberStatus> = {};
  for (const m of desc.members) {
    const prev = state.members[m.id];
    const excluded = isExcluded(state, m);
    next[m.id] = {
      site: m.site,
      sourceId: m.sourceId,
      state: excluded ? 'excluded' : prev && prev.state !== 'excluded' ? prev.state : 'pending',
      lastOkAt: prev?.lastOkAt ?? null,
      lastError: prev?.lastError ?? null,
      lastReset: prev?.lastReset ?? null,
      rowsTotal: prev?.rowsTotal ?? 0,
      lastRows: prev?.lastRows ?? 0,
      bytesRead: prev?.bytesRead ?? 0,
    };
  }
  state.members = next;
}
