/**
 * The whole view lives in the query string, so a reload, back and forward, and a pasted
 * link show the same report: view, range (relative, or custom from/to), filters,
 * granularity, time zone, auto-refresh, the dimension filters and grouping, and the
 * drill's own keys.
 */
import { GRANULARITIES, RELATIVE_RANGES, isValidZone } from './range.js';

const VIEWS = ['queues', 'agents', 'interactions', 'agent-states', 'ops'];
export const REFRESH = { off: 0, '10s': 10_000, '30s': 30_000, '1m': 60_000 };

const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

const DIM = 'dim.';

/** `dim.<key>=<value>` parameters, repeated for several values: `{ key: [values] }`. */
function dimsOf(qs) {
  const dims = {};
  for (const [k, v] of qs) if (k.startsWith(DIM) && k.length > DIM.length && v) (dims[k.slice(DIM.length)] ||= []).push(v);
  return dims;
}

/** The query parameters of dimension filters, as the API takes them. */
export function dimParams(dims) {
  return Object.fromEntries(Object.entries(dims).filter(([, values]) => values.length).map(([k, values]) => [DIM + k, values]));
}

const one = (qs, k) => {
  const v = qs.get(k);
  return v == null || v === '' ? null : v;
};

export function parseState(search) {
  const qs = new URLSearchParams(search);
  const from = Date.parse(one(qs, 'from') || '');
  const to = Date.parse(one(qs, 'to') || '');
  const custom = Number.isFinite(from) && Number.isFinite(to);
  const range = one(qs, 'range');
  const tz = one(qs, 'tz');
  return {
    view: VIEWS.includes(one(qs, 'view')) ? one(qs, 'view') : 'queues',
    range: custom ? 'custom' : range in RELATIVE_RANGES ? range : '24h',
    from: custom ? from : null,
    to: custom ? to : null,
    granularity: one(qs, 'granularity') in GRANULARITIES ? one(qs, 'granularity') : '15min',
    tz: tz && isValidZone(tz) ? tz : browserZone(),
    queues: qs.getAll('queue').filter(Boolean),
    agents: qs.getAll('agent').filter(Boolean),
    dims: dimsOf(qs),
    groupBy: one(qs, 'groupBy'),
    callId: one(qs, 'callId'),
    ani: one(qs, 'ani'),
    refresh: one(qs, 'refresh') in REFRESH ? one(qs, 'refresh') : 'off',
  };
}

export function stateUrl(s) {
  const qs = new URLSearchParams({ view: s.view });
  if (s.range === 'custom') {
    qs.set('from', new Date(s.from).toISOString());
    qs.set('to', new Date(s.to).toISOString());
  } else qs.set('range', s.range);
  qs.set('granularity', s.granularity);
  qs.set('tz', s.tz);
  for (const q of s.queues) qs.append('queue', q);
  for (const a of s.agents) qs.append('agent', a);
  for (const [k, values] of Object.entries(dimParams(s.dims))) for (const v of values) qs.append(k, v);
  if (s.groupBy) qs.set('groupBy', s.groupBy);
  if (s.callId) qs.set('callId', s.callId);
  if (s.ani) qs.set('ani', s.ani);
  if (s.refresh !== 'off') qs.set('refresh', s.refresh);
  return '?' + qs;
}

/** A link to the current view with some keys changed (drill keys are dropped unless given). */
export function linkTo(current, changes) {
  return stateUrl({ ...current, callId: null, ani: null, ...changes });
}
