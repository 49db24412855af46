/**
 * drWorkflow (`twinmart-dr`): the long-running DR controller. Operator commands are
 * validated when they arrive and queued; the main loop runs one procedure at a time
 * (failover, reintroduction, failback), waiting for the ETLs' confirmations and the
 * operator's word, and probes the sites' health while idle. State is a plain record
 * carried across continue-as-new.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  uuid4,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ControlActivities, Deployment, DrActivities } from '../activities/dr';
import type { EtlActivities } from '../activities/etl';
import {
  drCommandSchemas,
  drSignals,
  drStatusQuery,
  drUpdates,
  DR_COMMANDS,
  siteHealthSchema,
  siteHealthSignal,
  type DataLossReport,
  type DrCommand,
  type DrCommandResult,
  type DrPhase,
  type DrStatus,
  type FailoverTimes,
  type PendingItem,
  type TimelineEntry,
} from './dr-messages';
import { etlConfirmationSchema, etlConfirmationSignal, issues } from './etl-messages';
import { siteEtlWorkflow } from './etl';
import { CONTROL_QUEUE, DR_PROBES_WORKFLOW_ID, DR_WORKFLOW_ID, etlWorkflowId, SEARCH_ATTRIBUTES, siteQueue } from './names';
import { boundRun, taskTimeoutOption } from './runs';
import { differingKeys, type ConfigFingerprint } from '../config/match';
import { attributeSenders, senderRefs, type Attributable, type SenderRef } from './senders';
import { drillSchema, drillSummary, drillUpdate, runDrill, type DrillReport } from './drill';

interface QueuedCommand {
  command: 'declareSiteFailure' | 'siteRebuilt' | 'failbackReporting';
  site: string;
  reason: string | null;
  /** A reintroduction whose wait continued as new: it goes on at that wait. */
  resume?: ReintroductionWait;
}

interface ReintroductionWait {
  wait: 'catch-up' | 'parity';
  survivor: string;
  etlStartedAt: string;
}

export interface DrState extends DrStatus {
  queue: QueuedCommand[];
  /** The procedure that failed with a non-retryable error, run again on `retry`. */
  failedCommand: QueuedCommand | null;
  probeFailures: Record<string, number>;
  /** What each site's worker last reported of its configuration (absent in runs from before). */
  fingerprints?: Record<string, ConfigFingerprint>;
}

export interface DrInput {
  state?: DrState;
  /**
   * The deployment as the previous run had it, so a continued run registers its handlers
   * in its first task: a command sent at the boundary found none while the run waited for
   * describeDeployment, and was refused ("no registered handler"). Refreshed at once.
   */
  dep?: Deployment;
}

const KEEP_TIMELINE = 200;
const KEEP_REJECTED = 20;

function initialState(dep: Deployment): DrState {
  return {
    phase: 'normal',
    sites: Object.fromEntries(dep.sites.map((s) => [s, 'active' as const])),
    reporting: { primary: dep.primary, active: dep.primary, awaitingConfirmation: null },
    pending: [],
    dataLoss: null,
    timeline: [],
    rejected: [],
    suspected: {},
    lastFailover: null,
    reintroduction: null,
    lastError: null,
    continuedAsNew: 0,
    queue: [],
    failedCommand: null,
    probeFailures: {},
  };
}

type SiteActivities = DrActivities & EtlActivities;

export async function drWorkflow(input: DrInput = {}): Promise<void> {
  // Before any handler runs: a run from before senders were looked up replays without it.
  const attributing = patched('command-senders');
  const refs = senderRefs();
  const control = proxyActivities<ControlActivities>({ taskQueue: CONTROL_QUEUE, startToCloseTimeout: '1 minute' });
  const { stopEtl } = proxyActivities<ControlActivities>({
    taskQueue: CONTROL_QUEUE,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', maximumInterval: '15s' },
  });
  const carried = input?.dep;
  const dep = carried ?? (await control.describeDeployment());
  const bound = boundRun<typeof drWorkflow>(dep.runs);
  const state: DrState = input?.state ?? initialState(dep);
  const now = () => new Date().toISOString();
  const acts = (site: string) =>
    proxyActivities<SiteActivities>({
      taskQueue: siteQueue(site),
      startToCloseTimeout: '2 hours',
      // Every site activity heartbeats at least every few seconds, so a killed worker is noticed quickly.
      heartbeatTimeout: '10 seconds',
      retry: { initialInterval: '1s', maximumInterval: '15s' },
    });
  const activeSites = () => dep.sites.filter((s) => state.sites[s] === 'active');

  let retryRequested = false;
  let reintroduction: CancellationScope | null = null;
  let drill: CancellationScope | null = null;

  function note(step: string, site?: string, detail?: string): TimelineEntry {
    const entry: TimelineEntry = { at: now(), step, ...(site ? { site } : {}), ...(detail ? { detail } : {}) };
    state.timeline.push(entry);
    if (state.timeline.length > KEEP_TIMELINE) state.timeline.splice(0, state.timeline.length - KEEP_TIMELINE);
    showDetails();
    return entry;
  }

  function setPhase(phase: DrPhase): void {
    state.phase = phase;
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.phase, value: phase }]);
    showDetails();
  }

  /** What the Web UI shows on the workflow page. */
  function showDetails(): void {
    const lines = [
      `**phase** ${state.phase} · **reporting** ${state.reporting.active}` +
        (state.reporting.awaitingConfirmation ? ` (awaiting confirmReporting ${state.reporting.awaitingConfirmation})` : ''),
      `**sites** ${dep.sites.map((s) => `${s}: ${state.sites[s]}`).join(', ')}`,
      ...state.pending.map((p) => `- waiting for ${p.what}${p.overdue ? ' (overdue)' : ''}`),
      ...Object.entries(state.suspected).map(([s, x]) => `- **suspected failure of ${s}** since ${x.since}: ${x.reason}`),
      ...(state.configuration?.differing.length ? [`- **configuration differs** between sites in ${state.configuration.differing.join(', ')}`] : []),
    ];
    setCurrentDetails(lines.join('\n'));
  }

  // ---- commands --------------------------------------------------------------
  function refuse(message: string): never {
    throw ApplicationFailure.nonRetryable(message, 'CommandRefused');
  }

  /** Validates a command against the current state; returns what to do with it. */
  function validate(command: DrCommand, payload: unknown): { site: string | null; reason: string | null } {
    const parsed = drCommandSchemas[command].safeParse(payload ?? {});
    if (!parsed.success) {
      refuse(`invalid ${command} payload: ${issues(parsed.error)}`);
    }
    const value = parsed.data as { site?: string; reason?: string };
    const site = value.site ?? null;
    if (site !== null && !dep.sites.includes(site)) refuse(`unknown site "${site}" (sites: ${dep.sites.join(', ')})`);
    const queued = (c: QueuedCommand['command'], s: string) => state.queue.some((q) => q.command === c && q.site === s);
    switch (command) {
      case 'declareSiteFailure': {
        if (state.sites[site!] === 'failed' || queued('declareSiteFailure', site!)) refuse(`site ${site} is already failed`);
        const left = activeSites().filter((s) => s !== site && !queued('declareSiteFailure', s));
        if (left.length === 0) refuse(`failing ${site} would leave no active site`);
        break;
      }
      case 'siteRebuilt':
        if (state.sites[site!] !== 'failed') refuse(`site ${site} is ${state.sites[site!]}, not failed: only a failed site can be rebuilt`);
        if (state.phase !== 'degraded' || queued('siteRebuilt', site!)) refuse(`site ${site} can be rebuilt once the failover is complete (phase is ${state.phase})`);
        break;
      case 'failbackReporting':
        if (state.sites[site!] !== 'active') refuse(`reporting can move only to an active site; ${site} is ${state.sites[site!]}`);
        if (state.reporting.active === site) refuse(`reporting is already served from ${site}`);
        if (state.reporting.awaitingConfirmation) refuse(`reporting is waiting for confirmReporting ${state.reporting.awaitingConfirmation}`);
        if (state.phase !== 'normal' && state.phase !== 'degraded') refuse(`reporting can move when no procedure runs (phase is ${state.phase})`);
        break;
      case 'confirmReporting':
        if (state.reporting.awaitingConfirmation !== site) {
          refuse(`no reporting confirmation is pending for ${site}` +
            (state.reporting.awaitingConfirmation ? ` (pending: ${state.reporting.awaitingConfirmation})` : ''));
        }
        break;
      case 'retry':
        if (!state.pending.length && !state.failedCommand) refuse('nothing to retry: no confirmation is awaited and no step failed');
        break;
    }
    return { site, reason: value.reason ?? null };
  }

  function apply(command: DrCommand, v: { site: string | null; reason: string | null }, sender?: SenderRef): void {
    if (command === 'confirmReporting') state.reporting.awaitingConfirmation = null;
    else if (command === 'retry') {
      retryRequested = true;
      if (state.failedCommand) state.queue.unshift(state.failedCommand);
      state.failedCommand = null;
    } else {
      if (command === 'declareSiteFailure' && state.sites[v.site!] === 'rebuilding') reintroduction?.cancel();
      if (command === 'declareSiteFailure') drill?.cancel(); // a real failure takes precedence
      state.queue.push({ command, site: v.site!, reason: v.reason });
    }
    const entry = note(`command:${command}`, v.site ?? undefined, v.reason ?? undefined);
    if (sender && attributing) entry.sender = sender;
  }

  const reject = (command: string, e: unknown, sender?: SenderRef) => {
    state.rejected.push({ command, reason: (e as Error).message, at: now(), ...(sender && attributing ? { sender } : {}) });
    if (state.rejected.length > KEEP_REJECTED) state.rejected.splice(0, state.rejected.length - KEEP_REJECTED);
  };

  for (const command of DR_COMMANDS) {
    // A malformed signal is recorded and changes nothing; it never fails the workflow task.
    setHandler(drSignals[command], (payload?: unknown) => {
      const sender = refs.signal(command);
      try {
        apply(command, validate(command, payload), sender);
      } catch (e) {
        reject(command, e, sender);
      }
    });
    setHandler(
      drUpdates[command],
      (payload: unknown): DrCommandResult => {
        const v = validate(command, payload);
        apply(command, v, refs.update());
        return { accepted: true, command, site: v.site, phase: state.phase };
      },
      // Validators do not run on replay, so they change nothing: a refused update is
      // answered with the reason and leaves no trace in the state.
      { validator: (payload: unknown) => void validate(command, payload) },
    );
  }

  // ---- drill: asks the survivors, changes nothing -------------------------------
  function validateDrill(payload: unknown): string {
    const parsed = drillSchema.safeParse(payload ?? {});
    if (!parsed.success) refuse(`invalid drill payload: ${issues(parsed.error)}`);
    const { site } = parsed.data;
    if (!dep.sites.includes(site)) refuse(`unknown site "${site}" (sites: ${dep.sites.join(', ')})`);
    if (drill) refuse(`a drill of ${state.drilling} is running`);
    if (state.queue.length || state.pending.length || (state.phase !== 'normal' && state.phase !== 'degraded')) {
      refuse(`a drill waits until no procedure runs (phase ${state.phase}${state.pending.length ? `, waiting for ${state.pending[0]!.what}` : ''})`);
    }
    if (state.sites[site] !== 'active') refuse(`site ${site} is ${state.sites[site]}: only an active site can be drilled`);
    if (!activeSites().some((s) => s !== site)) refuse(`failing ${site} would leave no active site`);
    return site;
  }

  setHandler(
    drillUpdate,
    async (payload: unknown): Promise<DrillReport> => {
      const site = validateDrill(payload);
      const started = note('drill-started', site);
      if (attributing) started.sender = refs.update();
      state.drilling = site;
      const scope = (drill = new CancellationScope());
      let report: DrillReport | null = null;
      let why: string | null = null;
      try {
        report = await scope.run(() => runDrill(dep, site, activeSites().filter((s) => s !== site), started.at));
      } catch (e) {
        // Every end is an answer to the update; an error thrown on would fail the workflow task.
        why = (e as Error).message;
      } finally {
        drill = null;
        state.drilling = null;
      }
      // The checks settle their cancelled activities as answers: the scope says what happened.
      if (scope.consideredCancelled) why = 'a site failure was declared, and the failover goes first';
      if (why !== null || !report) {
        note('drill-aborted', site, why ?? undefined);
        refuse(`the drill of ${site} was aborted: ${why}`);
      }
      state.lastDrill = report;
      note('drill', site, drillSummary(report));
      return report;
    },
    { validator: (payload: unknown) => void validateDrill(payload) },
  );

  // Checked like every command: a malformed one while confirmations are awaited would
  // otherwise fail every workflow task, each replaying the same signal.
  setHandler(etlConfirmationSignal, (payload: unknown) => {
    const parsed = etlConfirmationSchema.safeParse(payload);
    if (!parsed.success) return reject('etlConfirmation', new Error(`invalid etlConfirmation payload: ${issues(parsed.error)}`));
    const c = parsed.data;
    const i = state.pending.findIndex((p) => p.requestId === c.requestId);
    if (i < 0) return; // a late duplicate
    state.pending.splice(i, 1);
    note(`confirmed:${c.command}`, c.etlSite, `${c.target} excluded sites now [${c.excludedSites.join(', ')}]`);
  });

  setHandler(drStatusQuery, (): DrStatus => {
    const { queue: _q, failedCommand: _f, probeFailures: _p, fingerprints: _c, ...status } = state;
    return status;
  });

  // ---- procedures --------------------------------------------------------------
  async function waiting<T>(item: Omit<PendingItem, 'since' | 'overdue'>, fn: () => Promise<T>): Promise<T> {
    const p: PendingItem = { ...item, since: now(), overdue: false };
    state.pending.push(p);
    showDetails();
    try {
      return await fn();
    } finally {
      state.pending = state.pending.filter((x) => x !== p);
      showDetails();
    }
  }

  /** Sends a command to ETLs and waits for each to confirm it applied it; `retry` resends. */
  async function commandEtls(etls: string[], command: 'excludeSite' | 'includeSite', site: string): Promise<void> {
    const send = async (p: PendingItem) => {
      try {
        await getExternalWorkflowHandle(etlWorkflowId(p.site)).signal(command, { site, requestId: p.requestId, replyTo: DR_WORKFLOW_ID });
      } catch (e) {
        note('etl-unreachable', p.site, `${(e as Error).message}: start its ETL (twinmart start), then retry`);
      }
    };
    const items = etls.map((etl): PendingItem => ({
      kind: 'etl-confirmation',
      what: `ETL ${etl} to confirm ${command} ${site}`,
      site: etl,
      since: now(),
      overdue: false,
      requestId: `${command}-${site}-${etl}-${uuid4()}`,
    }));
    state.pending.push(...items);
    showDetails();
    await Promise.all(items.map(send));
    const open = () => items.filter((p) => state.pending.includes(p));
    let deadline = Date.now() + dep.dr.confirmationTimeoutSeconds * 1000;
    while (open().length) {
      const left = deadline - Date.now();
      const settled = () => !open().length || retryRequested;
      // Past the deadline it keeps waiting, without a timer, until confirmed or retried.
      const woke = left > 0 ? await condition(settled, left) : (await condition(settled), true);
      if (!open().length) break;
      if (retryRequested) {
        retryRequested = false;
        note('retry', undefined, `resending ${command} ${site} to ${open().map((p) => p.site).join(', ')}`);
        await Promise.all(open().map(send));
        deadline = Date.now() + dep.dr.confirmationTimeoutSeconds * 1000;
        open().forEach((p) => (p.overdue = false));
      } else if (!woke) {
        open().forEach((p) => (p.overdue = true));
        note('confirmation-overdue', undefined, `still waiting for ${open().map((p) => p.what).join('; ')}; send retry to resend`);
      }
    }
  }

  async function activateReporting(site: string): Promise<void> {
    const previous = state.reporting.active;
    await waiting({ kind: 'activity', what: `reporting at ${site} to switch to active`, site }, () =>
      acts(site).setReportingRole({ site, role: 'active', activeSite: site }),
    );
    if (previous !== site && state.sites[previous] === 'active') {
      await acts(previous).setReportingRole({ site: previous, role: 'standby', activeSite: site });
    }
    state.reporting.active = site;
    state.reporting.awaitingConfirmation = site;
    note('reporting-activated', site);
    await waiting({ kind: 'operator', what: `the operator's confirmReporting ${site}`, site }, () =>
      condition(() => state.reporting.awaitingConfirmation === null),
    );
    note('reporting-confirmed', site);
  }

  async function dataLossReport(failed: string, survivors: string[]): Promise<DataLossReport> {
    const sets = Object.entries(dep.sources).map(([sourceId, members]) => ({
      sourceId,
      members,
      survivingMembers: members.filter((m) => survivors.includes(m.site)).map((m) => m.id),
    }));
    const lost = sets.filter((s) => !s.survivingMembers.length).map((s) => s.sourceId);
    const facts = await Promise.all(
      survivors.map((s) => acts(s).dataLossFacts({ site: s, sourceIds: sets.map((x) => x.sourceId) })),
    );
    const failedMembers = Object.values(dep.sources).flat().filter((m) => m.site === failed).map((m) => m.id);
    const lags = await Promise.all(survivors.map((s) => acts(s).memberLag({ site: s, memberIds: failedMembers })));
    return {
      failedSite: failed,
      at: now(),
      potentialLoss: lost,
      sets: sets.map((s) => ({
        ...s,
        lastEventBySite: lost.includes(s.sourceId)
          ? Object.fromEntries(survivors.map((site, i) => [site, facts[i]!.find((f) => f.sourceId === s.sourceId)?.lastEventTs ?? null]))
          : null,
      })),
      unreadByMember: Object.fromEntries(
        failedMembers.map((id) => [
          id,
          Object.fromEntries(
            survivors.map((site, i) => {
              const { memberId: _, ...lag } = lags[i]!.find((l) => l.memberId === id) ?? { memberId: id };
              return [site, 'measuredAt' in lag ? lag : null];
            }),
          ),
        ]),
      ),
      gapsBySite: Object.fromEntries(
        survivors.map((site, i) => [site, facts[i]!.flatMap((f) => f.gaps.map((g) => ({ sourceId: f.sourceId, ...g })))]),
      ),
    };
  }

  async function failover(site: string, reason: string | null): Promise<void> {
    const wasRebuilding = state.sites[site] === 'rebuilding';
    state.sites[site] = 'failed';
    setPhase('failing-over');
    const times: FailoverTimes = {
      site,
      declaredAt: now(),
      exclusionsConfirmedAt: null,
      reportingActivatedAt: null,
      reportingConfirmedAt: null,
      degradedAt: null,
      rtoSeconds: null,
    };
    state.lastFailover = times;
    note('failure-declared', site, reason ?? (wasRebuilding ? 'failed again during reintroduction' : undefined));
    const survivors = activeSites();
    await commandEtls(survivors, 'excludeSite', site);
    times.exclusionsConfirmedAt = now();
    note('exclusions-confirmed', site, `by ${survivors.join(', ')}`);
    try {
      await getExternalWorkflowHandle(etlWorkflowId(site)).cancel();
      note('etl-cancelled', site);
    } catch {
      note('etl-cancelled', site, 'it was not running');
    }
    state.dataLoss = await dataLossReport(site, survivors);
    note('data-loss-reported', site, state.dataLoss.potentialLoss.length ? `potential loss in ${state.dataLoss.potentialLoss.join(', ')}` : 'every HA set has a surviving member');
    const rto = () => (Date.parse(now()) - Date.parse(times.declaredAt)) / 1000;
    if (state.reporting.active === site) {
      const target = survivors.includes(dep.primary) ? dep.primary : survivors[0]!;
      const activation = activateReporting(target);
      await condition(() => state.reporting.active === target);
      times.reportingActivatedAt = now();
      times.rtoSeconds = rto();
      await activation;
      times.reportingConfirmedAt = now();
    } else {
      times.rtoSeconds = rto();
    }
    setPhase('degraded');
    times.degradedAt = now();
    note('degraded', site, `RTO ${times.rtoSeconds?.toFixed(1)} s`);
  }

  async function check(site: string, extractedSince: string, parityWith?: string) {
    const r = await acts(site).reintroductionCheck({ site, extractedSince, parityWith });
    const failures = state.reintroduction?.site === site ? (state.reintroduction.parityFailures ?? 0) : 0;
    state.reintroduction = {
      site,
      at: now(),
      caughtUp: r.caughtUp,
      parity: r.parity ? `${r.parity.match ? 'match' : `${r.parity.mismatches} mismatching intervals`} of ${r.parity.intervalsCompared} closed before ${r.parity.closedBefore}` : null,
      parityFailures: r.parity && !r.parity.match ? failures + 1 : 0,
      mismatches: r.parity?.differences ?? [],
    };
    return r;
  }

  /**
   * Checks until `done`, backing off to 30 s. A wait that outlasts the run continues as
   * new (the reintroduction goes on at this wait): a parity that never matches would
   * otherwise grow the history without bound.
   */
  async function pollReintroduction(site: string, at: ReintroductionWait, done: () => Promise<boolean>): Promise<void> {
    for (let wait = 2; !(await done()); wait = Math.min(wait * 2, 30)) {
      // `patched`: a run that waited past its bound before this replays as it ran.
      if (bound.full() && patched('reintroduction-waits-continue-as-new')) {
        await continueAsNew({ command: 'siteRebuilt', site, reason: null, resume: at });
      }
      await sleep(wait * 1000);
    }
  }

  async function reintroduce(site: string, resume?: ReintroductionWait): Promise<void> {
    if (resume) {
      note('reintroduction-resumed', site, `at the wait for ${resume.wait} (the run continued as new)`);
      return reintroductionWaits(site, resume);
    }
    const survivor = state.sites[state.reporting.active] === 'active' ? state.reporting.active : activeSites()[0]!;
    const a = acts(site);
    // `patched`: a reintroduction that started before this replays as it ran.
    if (patched('reintroduction-compares-configuration')) {
      const theirs = await waiting({ kind: 'activity', what: `the worker of ${site} to describe its configuration`, site }, () =>
        a.describeConfig({ site }),
      );
      const differing = differingKeys({ [site]: theirs, [survivor]: await acts(survivor).describeConfig({ site: survivor }) });
      if (differing.length) {
        throw ApplicationFailure.nonRetryable(
          `the configuration of ${site} differs from ${survivor}'s in ${differing.join(', ')}: ` +
            `make them identical, restart the worker of ${site}, then send retry`,
          'ConfigurationDiffers',
        );
      }
    }
    state.sites[site] = 'rebuilding';
    setPhase('reintroducing');
    note('rebuild-declared', site);
    // A run cancelled by an earlier failover may still be closing: it must neither write
    // the mart while it is seeded nor be taken for the ETL started below.
    const stopped = await waiting({ kind: 'activity', what: `the previous ETL run of ${site} to end`, site }, () =>
      stopEtl({ site, graceSeconds: 30 }),
    );
    note('etl-stopped', site, stopped);
    await waiting({ kind: 'activity', what: `the mart of ${site} to migrate (its worker must run)`, site }, () => a.prepareSite({ site }));
    note('mart-migrated', site);
    const copied = await waiting({ kind: 'activity', what: `the mart of ${site} to be seeded from ${survivor}`, site }, () =>
      a.seedFrom({ site, from: survivor, activeReporting: state.reporting.active }),
    );
    note('mart-seeded', site, `from ${survivor}: ${copied.stg_call_event} call events, ${copied.interaction_fact} interactions`);
    const etlStartedAt = now();
    await startEtl(site, 'etl-started');
    await reintroductionWaits(site, { wait: 'catch-up', survivor, etlStartedAt });
  }

  async function startEtl(site: string, step: 'etl-started' | 'etl-restarted'): Promise<void> {
    try {
      await startChild(siteEtlWorkflow, {
        workflowId: etlWorkflowId(site),
        taskQueue: CONTROL_QUEUE,
        args: [{ site }],
        ...taskTimeoutOption(dep.runs),
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      note(step, site, step === 'etl-restarted' ? 'its run had ended while the reintroduction waited for it' : undefined);
    } catch (e) {
      if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
      note(step, site, 'it was already running');
    }
  }

  /** The rest of a reintroduction from one of its waits, where a continued run resumes it. */
  async function reintroductionWaits(site: string, at: ReintroductionWait): Promise<void> {
    const { survivor, etlStartedAt } = at;
    if (at.wait === 'catch-up') {
      // A run that ended meanwhile would be waited on for ever: with a cluster per site, a
      // returning cluster's replicated history cancelled the run just started (seed 42,
      // per-site chaos). `patched`: a reintroduction that waited before this replays as it ran.
      const restarts = patched('reintroduction-restarts-etl');
      await waiting({ kind: 'activity', what: `the ETL of ${site} to catch up`, site }, () =>
        pollReintroduction(site, at, async () => {
          if (restarts && !(await control.etlRunning({ site }))) await startEtl(site, 'etl-restarted');
          return (await check(site, etlStartedAt)).caughtUp;
        }),
      );
      note('caught-up', site);
      await commandEtls(activeSites(), 'includeSite', site);
      note('inclusions-confirmed', site);
    }
    const parity = { ...at, wait: 'parity' as const };
    await waiting({ kind: 'activity', what: `parity of ${site} with ${survivor}`, site }, () =>
      pollReintroduction(site, parity, async () => (await check(site, etlStartedAt, survivor)).parity?.match === true),
    );
    note('parity-passed', site, state.reintroduction?.parity ?? undefined);
    state.sites[site] = 'active';
    setPhase('normal');
    note('normal', site);
  }

  async function run(cmd: QueuedCommand): Promise<void> {
    try {
      if (cmd.command === 'declareSiteFailure') await failover(cmd.site, cmd.reason);
      else if (cmd.command === 'failbackReporting') {
        note('failback-requested', cmd.site);
        await activateReporting(cmd.site);
      } else {
        reintroduction = new CancellationScope();
        // A failure of the site declared while a resumed reintroduction waited to go on.
        if (state.queue.some((q) => q.command === 'declareSiteFailure' && q.site === cmd.site)) reintroduction.cancel();
        try {
          await reintroduction.run(() => reintroduce(cmd.site, cmd.resume));
        } finally {
          reintroduction = null;
        }
      }
      state.lastError = null;
    } catch (e) {
      if (isCancellation(e) && cmd.command === 'siteRebuilt') {
        // A failure of the site being rebuilt: its failover, queued by the command, follows.
        await CancellationScope.nonCancellable(() => getExternalWorkflowHandle(etlWorkflowId(cmd.site)).cancel()).catch(() => undefined);
        state.pending = [];
        note('reintroduction-aborted', cmd.site);
        return;
      }
      if (isCancellation(e) || e instanceof ContinueAsNew) throw e;
      state.lastError = `${cmd.command} ${cmd.site}: ${(e as Error).message}`;
      state.failedCommand = cmd;
      note('step-failed', cmd.site, `${state.lastError}; send retry to run it again`);
    }
  }

  /** Ends the run once its handlers are done; `resume` goes on first in the next. */
  async function continueAsNew(resume?: QueuedCommand): Promise<never> {
    await condition(allHandlersFinished);
    state.continuedAsNew += 1;
    // A resumed wait shows itself as pending again in the next run.
    const next = resume ? { ...state, queue: [resume, ...state.queue], pending: [] } : state;
    return bound.continueAsNew({ state: next, dep });
  }

  // ---- health ------------------------------------------------------------------
  const probeTimeout = Math.min(dep.dr.probeSeconds, 5);
  async function probe(): Promise<void> {
    const sites = activeSites();
    const results = await Promise.allSettled(
      sites.map((s) =>
        proxyActivities<DrActivities>({
          taskQueue: siteQueue(s),
          scheduleToStartTimeout: probeTimeout * 1000,
          startToCloseTimeout: probeTimeout * 1000,
          retry: { maximumAttempts: 1 },
        }).probeSite({ site: s }),
      ),
    );
    if (CancellationScope.current().consideredCancelled) return; // a command arrived: not a verdict
    results.forEach((r, i) => {
      const s = sites[i]!;
      if (r.status === 'fulfilled' && r.value.config) (state.fingerprints ??= {})[s] = r.value.config;
      const error = r.status === 'rejected' ? `no worker of ${s} answered within ${probeTimeout} s` : r.value.error;
      if (!error) {
        siteAnswers(s);
        state.probeFailures[s] = 0;
        return;
      }
      const failures = (state.probeFailures[s] ?? 0) + 1;
      state.probeFailures[s] = failures;
      if (failures >= dep.dr.probeFailures) siteSilent(s, failures, error);
    });
    compareConfigurations(sites);
    showDetails();
  }

  function siteAnswers(s: string): void {
    if (state.suspected[s]) note('suspicion-cleared', s);
    delete state.suspected[s];
  }

  /** An active site that failed dr.probeFailures probes in a row: suspected, and failed over if the config says so. */
  function siteSilent(s: string, failures: number, error: string): void {
    if (state.sites[s] !== 'active') return;
    if (state.suspected[s]) {
      state.suspected[s] = { ...state.suspected[s]!, failures, reason: error };
      return;
    }
    state.suspected[s] = { since: now(), failures, reason: error };
    note('failure-suspected', s, error);
    if (!dep.dr.autoFailover) return;
    try {
      apply('declareSiteFailure', validate('declareSiteFailure', { site: s, reason: `automatic: ${error}` }));
    } catch (e) {
      note('auto-failover-refused', s, (e as Error).message);
    }
  }

  // What the probe workflow reports: only changes, so this history holds procedures and commands.
  setHandler(siteHealthSignal, (payload: unknown) => {
    const parsed = siteHealthSchema.safeParse(payload);
    if (!parsed.success) return reject('siteHealth', new Error(`invalid siteHealth payload: ${issues(parsed.error)}`));
    const h = parsed.data;
    if (!dep.sites.includes(h.site)) return reject('siteHealth', new Error(`unknown site "${h.site}"`));
    if (h.config) (state.fingerprints ??= {})[h.site] = h.config;
    if (h.healthy) siteAnswers(h.site);
    else siteSilent(h.site, h.failures, h.reason ?? 'no reason given');
    compareConfigurations(activeSites());
    showDetails();
  });

  /** Sites whose workers run different configuration would keep different facts: say so, naming the keys. */
  function compareConfigurations(sites: string[]): void {
    const prints = Object.fromEntries(sites.flatMap((s) => (state.fingerprints?.[s] ? [[s, state.fingerprints[s]!]] : [])));
    const differing = differingKeys(prints);
    const was = state.configuration?.differing ?? [];
    state.configuration = { digests: Object.fromEntries(Object.entries(prints).map(([s, p]) => [s, p.digest])), differing };
    if (differing.join() === was.join()) return;
    if (differing.length) note('configuration-differs', undefined, `between ${Object.keys(prints).join(', ')} in ${differing.join(', ')}`);
    else note('configuration-matches');
  }

  /** A probe round gives way to an operator's command instead of delaying it. */
  async function probeUnlessCommanded(): Promise<void> {
    const scope = new CancellationScope();
    await scope.run(async () => {
      const probing = probe();
      const commanded = condition(() => state.queue.length > 0);
      probing.catch(() => undefined);
      commanded.catch(() => undefined);
      await Promise.race([probing, commanded]);
      scope.cancel();
    });
  }

  // ---- main loop -----------------------------------------------------------------
  if (carried) Object.assign(dep, await control.describeDeployment()); // a config change since the last run
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.phase, value: state.phase }]);
  showDetails();
  // `patched`: a run that probed itself before this replays as it ran.
  const ownProbes = patched('probes-in-own-workflow');
  if (attributing) {
    const waiting = (): Attributable[] => [...state.timeline, ...state.rejected].filter((e) => e.sender);
    void attributeSenders(waiting);
  }
  if (ownProbes) {
    try {
      await startChild('drProbeWorkflow', {
        workflowId: DR_PROBES_WORKFLOW_ID,
        taskQueue: CONTROL_QUEUE,
        args: [{}],
        ...taskTimeoutOption(dep.runs),
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (e) {
      if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
    }
  }
  for (;;) {
    const next = state.queue.shift();
    if (next) {
      await run(next);
      continue;
    }
    if (bound.full()) await continueAsNew();
    if (ownProbes) {
      // Wakes only for commands (the probe workflow's reports are handled as they come): no timer in this history.
      await condition(() => state.queue.length > 0 || bound.full());
      continue;
    }
    const woke = await condition(() => state.queue.length > 0, dep.dr.probeSeconds * 1000);
    if (!woke) await probeUnlessCommanded();
  }
}
