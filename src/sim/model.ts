/**
 * The traffic model: a discrete-event simulation of a contact center per data source.
 * Calls arrive as one Poisson stream and are spread over the sources; each source has
 * a few queues sharing a pool of agents. A call waits in its queue until an agent is
 * ready (agents are busy while talking and during after-call work) or until the
 * caller's patience runs out. The model only produces events, in the order the data
 * sources would emit them; writing them to IDBs is the writer's business.
 *
 * Times inside the model are seconds from the start of the run; the events carry
 * whole milliseconds from that start, turned into timestamps by the writer.
 */
import { Agenda, Fifo } from './des';
import { type Rng, digits, erlang2, exponential, pick, pickWeighted, rngStream, uniform, uuidV4 } from './prng';

export type Media = 'voice' | 'chat' | 'email';
export type Direction = 'inbound' | 'outbound' | 'internal';
export type MalformedKind = 'unknownEvent' | 'outOfOrder' | 'absurdDuration';

export interface QueueSpec {
  name: string;
  weight: number;
  /** Where customers reach the queue: a DID, a chat entry point or a mailbox. */
  address: string;
}

export interface AgentSpec {
  id: string;
  /** Last agent_event seq this data source already used for the agent (0: none). */
  lastSeq: number;
}

export interface SourceSpec {
  id: string;
  media: Media;
  queues: QueueSpec[];
  agents: AgentSpec[];
}

export interface CallEventRow {
  kind: 'call';
  sourceId: string;
  callId: string;
  seq: number;
  event: string;
  /** When the data source emits the event, ms from the start of the run. */
  at: number;
  /** The event time the row carries, ms from the start: equal to `at` except in malformed rows. */
  ts: number;
  media: Media;
  direction: Direction;
  ani: string;
  dnis: string;
  queue: string | null;
  agentId: string | null;
  /** Attached data as JSON text, serialised once for every member. */
  attrs: string;
  /** Position of the call in the arrival stream. */
  callIndex: number;
  malformed?: { kind: MalformedKind; detail: string };
  /** The member of the set at this list position records the event with these attrs instead (SimOptions.divergent). */
  variant?: { memberIndex: number; attrs: string };
}

export interface AgentEventRow {
  kind: 'agent';
  sourceId: string;
  agentId: string;
  seq: number;
  event: 'login' | 'logout' | 'ready' | 'not_ready' | 'after_call_work';
  /** Emission time and event time (agent rows are never malformed), ms from the start. */
  at: number;
  reason: string | null;
}

export type SimEvent = CallEventRow | AgentEventRow;

export interface TrafficSpec {
  seed: number;
  /** Arrival time of each call in seconds, ascending (see arrivalTimes). */
  arrivals: readonly number[];
  sources: readonly SourceSpec[];
  /** Call index -> the way that call's rows are made malformed. */
  malformed: ReadonlyMap<number, MalformedKind>;
  /** Share of call events one member of the set records with other attached data (default 0). */
  divergent?: number;
}

interface MediaProfile {
  /** created -> queued (IVR, pre-chat form, mail parsing), seconds. */
  setup: [number, number];
  /** routed -> established (ringing, accepting), seconds. */
  ring: [number, number];
  talkMean: number;
  acwMean: number;
  /** Mean time a customer waits before giving up; Infinity: never (e-mail). */
  patienceMean: number;
  holdProbability: number;
}

const PROFILES: Record<Media, MediaProfile> = {
  voice: { setup: [2, 15], ring: [2, 8], talkMean: 150, acwMean: 20, patienceMean: 90, holdProbability: 0.15 },
  chat: { setup: [1, 5], ring: [1, 3], talkMean: 300, acwMean: 30, patienceMean: 180, holdProbability: 0 },
  email: { setup: [0.2, 1], ring: [1, 2], talkMean: 240, acwMean: 30, patienceMean: Infinity, holdProbability: 0 },
};

const QUEUES = [
  { name: 'sales', weight: 3 },
  { name: 'support', weight: 5 },
  { name: 'billing', weight: 2 },
];

const TRANSFER_PROBABILITY = 0.08;
const NOT_READY_PROBABILITY = 0.06;
const NOT_READY_REASONS = ['break', 'lunch', 'meeting', 'training', 'coaching'];
const NOT_READY_MEAN_S = 120;
const HOLD_MEAN_S = 25;
const MIN_TALK_S = 5;
/** Agents log in over the first seconds of a run, and become ready a little later. */
const LOGIN_SPREAD_S = 10;
const ABSURD_DURATION_MS = 40 * 86_400_000;
const AREA_CODES = ['212', '312', '415', '617', '646', '702', '917', '206', '305', '512'];
const LANGUAGES = ['en', 'en', 'en', 'es', 'fr', 'de'];
const SEGMENTS = ['bronze', 'silver', 'gold', 'platinum'];
/**
 * The attached data a contact center reports by, as this simulator attaches it (accountId
 * and ivrPath are per caller and per route: too many values for a report's dimension).
 */
export const REPORT_DIMENSIONS = ['segment', 'language', 'campaign'];
const IVR_PATHS = ['main>orders', 'main>support>outage', 'main>billing>balance', 'main>agent', 'main>support>device'];

/** "sw-chat-1" -> chat, "mail-eu" -> email, anything else voice. */
export function mediaOf(sourceId: string): Media {
  if (/chat/i.test(sourceId)) return 'chat';
  if (/email/i.test(sourceId)) return 'email';
  return 'voice';
}

/** Queue names carry the source id so that two sources never share a queue in the marts. */
export function queuesFor(sourceId: string, media: Media): QueueSpec[] {
  const address = (name: string, i: number): string =>
    media === 'voice' ? `+1800555${String(100 + i).padStart(4, '0')}` : media === 'chat' ? `webchat:${name}` : `${name}@example.com`;
  return QUEUES.map((q, i) => ({ name: `${sourceId}.${q.name}`, weight: q.weight, address: address(q.name, i) }));
}

export function agentIdsFor(sourceId: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${sourceId}.agent-${String(i + 1).padStart(3, '0')}`);
}

/** Mean seconds an agent is occupied by one call, for sizing the agent pool. */
export function meanHandleSeconds(media: Media): number {
  const p = PROFILES[media];
  return (p.ring[0] + p.ring[1]) / 2 + p.talkMean * (1 + TRANSFER_PROBABILITY) + p.acwMean + p.holdProbability * HOLD_MEAN_S;
}

/** Poisson arrivals: exponential inter-arrival times with mean 1/rate seconds. */
export function arrivalTimes(seed: number, rate: number, count: number): number[] {
  const rng = rngStream(seed, 'arrivals');
  const times: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) {
    t += exponential(rng, 1 / rate);
    times.push(t);
  }
  return times;
}

/** Picks distinct calls to be made malformed, in the order unknownEvent, outOfOrder, absurdDuration. */
export function chooseMalformed(
  seed: number,
  calls: number,
  counts: Record<MalformedKind, number>,
): Map<number, MalformedKind> {
  const rng = rngStream(seed, 'malformed');
  const kinds = (['unknownEvent', 'outOfOrder', 'absurdDuration'] as const).flatMap((k) =>
    Array<MalformedKind>(counts[k]).fill(k),
  );
  // Partial Fisher-Yates: the first kinds.length slots become a uniform sample of calls.
  const order = Int32Array.from({ length: calls }, (_, i) => i);
  const chosen = new Map<number, MalformedKind>();
  kinds.forEach((kind, i) => {
    const j = i + Math.floor(rng() * (calls - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
    chosen.set(order[i]!, kind);
  });
  return chosen;
}

export const msOf = (seconds: number): number => Math.round(seconds * 1000);

type AgentState = 'off' | 'ready' | 'not_ready' | 'reserved' | 'busy' | 'acw';

interface Agent {
  id: string;
  source: SourceState;
  seq: number;
  state: AgentState;
}

interface SourceState {
  spec: SourceSpec;
  profile: MediaProfile;
  /** Ready agents, longest idle first. */
  ready: Fifo<Agent>;
  /** Waiting calls in arrival order (all queues share the agents); abandoned ones are skipped lazily. */
  waiting: Fifo<Call>;
  agents: Agent[];
}

interface Call {
  index: number;
  id: string;
  source: SourceState;
  direction: Direction;
  queue: QueueSpec;
  /** The queue column is filled from the `queued` event on. */
  queued: boolean;
  customer: string;
  attrs: Record<string, string>;
  attrsJson: string;
  seq: number;
  startAt: number;
  lastTs: number;
  malformed: MalformedKind | undefined;
  agent: Agent | null;
  waiting: boolean;
  /** Bumped on every enqueue so that a patience timer of an earlier wait is ignored. */
  waitToken: number;
  transferred: boolean;
}

const FINAL_EVENTS = new Set(['released', 'abandoned']);

export class TrafficModel {
  callsStarted = 0;
  private readonly agenda = new Agenda();
  private readonly rng: Rng;
  /** A stream of its own, so that divergence leaves the traffic of a seed as it was. */
  private readonly divergenceRng: Rng;
  private readonly sources: SourceState[];
  private readonly out: SimEvent[] = [];
  private active = 0;
  private closing = false;

  constructor(private readonly spec: TrafficSpec) {
    this.rng = rngStream(spec.seed, 'traffic');
    this.divergenceRng = rngStream(spec.seed, 'divergence');
    this.sources = spec.sources.map((s) => {
      const state: SourceState = { spec: s, profile: PROFILES[s.media], ready: new Fifo(), waiting: new Fifo(), agents: [] };
      state.agents = s.agents.map((a) => ({ id: a.id, source: state, seq: a.lastSeq, state: 'off' }));
      return state;
    });
  }

  /** The events in emission order, generated lazily so a real-time run keeps pace with the clock. */
  *events(): Generator<SimEvent> {
    for (const source of this.sources) {
      for (const agent of source.agents) this.agenda.at(uniform(this.rng, 0, LOGIN_SPREAD_S), () => this.login(agent));
    }
    if (this.spec.arrivals.length > 0) this.agenda.at(this.spec.arrivals[0]!, () => this.arrive(0));
    else this.closeIfDone();
    while (this.agenda.runNext()) {
      yield* this.out;
      this.out.length = 0;
    }
  }

  // ---- agents ----------------------------------------------------------------

  private emitAgent(agent: Agent, event: AgentEventRow['event'], reason: string | null = null): void {
    this.out.push({
      kind: 'agent',
      sourceId: agent.source.spec.id,
      agentId: agent.id,
      seq: ++agent.seq,
      event,
      at: msOf(this.agenda.now),
      reason,
    });
  }

  private login(agent: Agent): void {
    this.emitAgent(agent, 'login');
    agent.state = 'not_ready';
    this.agenda.after(uniform(this.rng, 2, 15), () => this.becomeReady(agent));
  }

  private becomeReady(agent: Agent): void {
    if (this.closing) return this.logout(agent);
    this.emitAgent(agent, 'ready');
    agent.state = 'ready';
    agent.source.ready.push(agent);
    this.route(agent.source);
  }

  private logout(agent: Agent): void {
    if (agent.state === 'off') return;
    this.emitAgent(agent, 'logout');
    agent.state = 'off';
  }

  private afterCallWork(agent: Agent): void {
    this.emitAgent(agent, 'after_call_work');
    agent.state = 'acw';
    this.agenda.after(exponential(this.rng, agent.source.profile.acwMean) + 2, () => {
      if (!this.closing && this.rng() < NOT_READY_PROBABILITY) {
        this.emitAgent(agent, 'not_ready', pick(this.rng, NOT_READY_REASONS));
        agent.state = 'not_ready';
        this.agenda.after(30 + exponential(this.rng, NOT_READY_MEAN_S), () => this.becomeReady(agent));
      } else {
        this.becomeReady(agent);
      }
    });
  }

  // ---- calls -----------------------------------------------------------------

  private arrive(index: number): void {
    this.callsStarted++;
    this.active++;
    const next = index + 1;
    if (next < this.spec.arrivals.length) this.agenda.at(this.spec.arrivals[next]!, () => this.arrive(next));
    const call = this.newCall(index);
    this.emitCall(call, 'created');
    const [min, max] = call.source.profile.setup;
    this.agenda.after(uniform(this.rng, min, max), () => {
      this.emitCall(call, 'queued');
      if (call.malformed === 'unknownEvent') this.emitCall(call, 'teleported');
      this.enqueue(call);
    });
  }

  private newCall(index: number): Call {
    const rng = this.rng;
    const source = pick(rng, this.sources);
    const media = source.spec.media;
    const u = rng();
    const direction: Direction =
      media === 'voice'
        ? u < 0.86 ? 'inbound' : u < 0.96 ? 'outbound' : 'internal'
        : u < 0.92 ? 'inbound' : 'outbound';
    const customer =
      direction === 'internal'
        ? `4${digits(rng, 3)}`
        : media === 'voice'
          ? `+1${pick(rng, AREA_CODES)}${2 + Math.floor(rng() * 8)}${digits(rng, 6)}`
          : `customer${digits(rng, 6)}@example.net`;
    const attrs: Record<string, string> = {
      language: pick(rng, LANGUAGES),
      segment: pick(rng, SEGMENTS),
      accountId: `AC${digits(rng, 7)}`,
    };
    if (media === 'voice' && direction === 'inbound') attrs.ivrPath = pick(rng, IVR_PATHS);
    if (direction === 'outbound') attrs.campaign = pick(rng, ['renewals', 'winback', 'survey']);
    const at = msOf(this.agenda.now);
    return {
      index,
      id: uuidV4(rng),
      source,
      direction,
      queue: pickWeighted(rng, source.spec.queues),
      queued: false,
      customer,
      attrs,
      attrsJson: JSON.stringify(attrs),
      seq: 0,
      startAt: at,
      lastTs: at,
      malformed: this.spec.malformed.get(index),
      agent: null,
      waiting: false,
      waitToken: 0,
      transferred: false,
    };
  }

  private emitCall(call: Call, event: string, extraAttrs?: Record<string, string>): void {
    const at = msOf(this.agenda.now);
    if (event === 'queued') call.queued = true;
    let ts = at;
    let malformed: CallEventRow['malformed'];
    if (event === 'teleported') {
      malformed = { kind: 'unknownEvent', detail: `unknown event name "${event}"` };
    } else if (call.malformed === 'outOfOrder' && FINAL_EVENTS.has(event)) {
      ts = call.lastTs - msOf(uniform(this.rng, 5, 60));
      malformed = { kind: 'outOfOrder', detail: `event_ts ${call.lastTs - ts} ms before its predecessor's` };
    } else if (call.malformed === 'absurdDuration' && event === 'released') {
      ts = call.startAt + ABSURD_DURATION_MS;
      malformed = { kind: 'absurdDuration', detail: 'released 40 days after the call was created' };
    }
    call.lastTs = ts;
    const { direction, customer, queue } = call;
    // The customer (or, internal, the colleague's extension) calls the queue's address; outbound the other way round.
    const [ani, dnis] = direction === 'outbound' ? [queue.address, customer] : [customer, queue.address];
    const row: CallEventRow = {
      kind: 'call',
      sourceId: call.source.spec.id,
      callId: call.id,
      seq: ++call.seq,
      event,
      at,
      ts,
      media: call.source.spec.media,
      direction,
      ani,
      dnis,
      queue: call.queued ? queue.name : null,
      agentId: call.agent?.id ?? null,
      attrs: extraAttrs ? JSON.stringify({ ...call.attrs, ...extraAttrs }) : call.attrsJson,
      callIndex: call.index,
    };
    if (malformed) row.malformed = malformed;
    if (this.spec.divergent && this.divergenceRng() < this.spec.divergent) {
      // Two collectors of one set seldom disagree, but when they do the mart must keep the same one everywhere.
      const memberIndex = Math.floor(this.divergenceRng() * 2);
      row.variant = { memberIndex, attrs: JSON.stringify({ ...JSON.parse(row.attrs), recordedBy: `member ${memberIndex}` }) };
    }
    this.out.push(row);
  }

  /** The call waits for an agent; it gives up after its patience (never, for a call made absurdly long). */
  private enqueue(call: Call): void {
    const source = call.source;
    call.waiting = true;
    const token = ++call.waitToken;
    source.waiting.push(call);
    const mean = call.malformed === 'absurdDuration' ? Infinity : source.profile.patienceMean;
    if (Number.isFinite(mean)) {
      this.agenda.after(exponential(this.rng, mean), () => {
        if (call.waiting && call.waitToken === token) this.abandon(call);
      });
    }
    this.route(source);
  }

  /** Longest-waiting call to longest-idle agent, while both exist. */
  private route(source: SourceState): void {
    while (source.ready.length > 0) {
      const call = this.nextWaiting(source);
      if (!call) return;
      const agent = source.ready.shift()!;
      call.waiting = false;
      call.agent = agent;
      agent.state = 'reserved';
      this.emitCall(call, 'routed');
      const [min, max] = source.profile.ring;
      this.agenda.after(uniform(this.rng, min, max), () => this.establish(call));
    }
  }

  private nextWaiting(source: SourceState): Call | undefined {
    let call = source.waiting.shift();
    while (call && !call.waiting) call = source.waiting.shift();
    return call;
  }

  private establish(call: Call): void {
    const rng = this.rng;
    const profile = call.source.profile;
    call.agent!.state = 'busy';
    this.emitCall(call, 'established');
    let talk = Math.max(MIN_TALK_S, erlang2(rng, profile.talkMean));
    if (rng() < profile.holdProbability) {
      const holdAt = talk * uniform(rng, 0.2, 0.6);
      const holdFor = 5 + exponential(rng, HOLD_MEAN_S);
      this.agenda.after(holdAt, () => this.emitCall(call, 'held'));
      this.agenda.after(holdAt + holdFor, () => this.emitCall(call, 'retrieved'));
      talk += holdFor;
    }
    if (!call.transferred && call.source.spec.queues.length > 1 && rng() < TRANSFER_PROBABILITY) {
      this.agenda.after(talk, () => this.transfer(call));
    } else {
      this.agenda.after(talk, () => this.release(call));
    }
  }

  /** Blind transfer to another queue: the first agent goes to after-call work, the call waits again. */
  private transfer(call: Call): void {
    const from = call.queue;
    call.queue = pickWeighted(this.rng, call.source.spec.queues.filter((q) => q !== from));
    this.emitCall(call, 'transferred', { transferFrom: from.name });
    const agent = call.agent!;
    call.agent = null;
    call.transferred = true;
    this.afterCallWork(agent);
    this.enqueue(call);
  }

  private release(call: Call): void {
    this.emitCall(call, 'released');
    this.afterCallWork(call.agent!);
    this.finish();
  }

  private abandon(call: Call): void {
    call.waiting = false;
    this.emitCall(call, 'abandoned');
    this.finish();
  }

  private finish(): void {
    this.active--;
    this.closeIfDone();
  }

  /** After the last call, agents log out: idle ones now, the others when their current state ends. */
  private closeIfDone(): void {
    if (this.active > 0 || this.callsStarted < this.spec.arrivals.length || this.closing) return;
    this.closing = true;
    for (const source of this.sources) {
      for (const agent of source.ready.drain()) this.agenda.after(uniform(this.rng, 0, 5), () => this.logout(agent));
    }
  }
}
