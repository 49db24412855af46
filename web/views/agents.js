/** Agent view: per agent and bucket, calls, talk, AHT, occupancy and time per state; a drill to each agent's timeline. */
import { api } from '../lib/api.js';
import { axis, baseOptions, chartTable, palette, SERIES_COLORS, upsertChart } from '../lib/charts.js';
import { csvLink } from '../lib/csv.js';
import { $, clear, h } from '../lib/dom.js';
import { fmtDuration, fmtHours, fmtInt, fmtPct } from '../lib/format.js';
import { term } from '../lib/glossary.js';

const STATES = ['ready', 'after_call_work', 'not_ready', 'logged_in'];
export const STATE_LABELS = { ready: 'Ready', after_call_work: 'After-call work', not_ready: 'Not ready', logged_in: 'Logged in' };

export async function load(ctx) {
  const params = { ...ctx.rangeParams(), agent: ctx.state.agents };
  const data = await api('/api/agent-summary', params);
  render(ctx, data, params);
  return data;
}

function render(ctx, data, params) {
  const { state, fmt } = ctx;
  const rows = Array.isArray(data.rows) ? data.rows : [];
  for (const r of rows) ctx.seen.agents.add(r.agentId);
  const multiDay = !fmt.sameDay(ctx.range.from, ctx.range.to - 1);

  const tbody = clear($('#agent-table tbody'));
  if (!rows.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 11 }, 'No agent activity in this range.')));
  for (const r of rows) {
    tbody.append(h('tr', { dataset: { agent: r.agentId, interval: r.intervalStart } },
      h('td', null, h('a', { class: 'drill', href: ctx.link({ view: 'agent-states', agents: [r.agentId] }), title: 'State timeline of ' + r.agentId }, r.agentId)),
      h('td', { class: 'nowrap' }, fmt.bucket(Date.parse(r.intervalStart), state.granularity, multiDay)),
      figureCells(r)));
  }
  const tfoot = clear($('#agent-table tfoot'));
  if (data.totals) tfoot.append(h('tr', { class: 'totals' }, h('th', { scope: 'row', colspan: 2 }, 'Total'), figureCells(data.totals)));

  // The chart sums each agent's buckets: one stacked bar per agent.
  const agents = [];
  const perAgent = new Map();
  const states = [...STATES];
  for (const r of rows) {
    if (!perAgent.has(r.agentId)) {
      perAgent.set(r.agentId, {});
      agents.push(r.agentId);
    }
    const sum = perAgent.get(r.agentId);
    for (const [k, v] of Object.entries(r.stateSeconds || {})) {
      sum[k] = (sum[k] || 0) + Number(v || 0);
      if (!states.includes(k)) states.push(k);
    }
  }
  const p = palette();
  let extra = 0;
  const chartData = {
    labels: agents,
    datasets: states.map((k) => ({
      label: STATE_LABELS[k] || k.replace(/_/g, ' '),
      state: k,
      data: agents.map((a) => perAgent.get(a)[k] || 0),
      backgroundColor: p[k] || SERIES_COLORS[extra++ % SERIES_COLORS.length],
      borderRadius: 2,
      maxBarThickness: 22,
    })),
  };
  const maxTotal = Math.max(0, ...agents.map((a) => Object.values(perAgent.get(a)).reduce((x, y) => x + y, 0)));
  const step = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].find((s) => maxTotal / s <= 8) || 172800;
  const options = baseOptions();
  options.indexAxis = 'y';
  options.interaction = { mode: 'nearest', axis: 'y', intersect: false };
  options.scales = {
    x: axis({ stacked: true, beginAtZero: true, ticks: { stepSize: step, callback: (v) => fmtHours(v) } }),
    y: axis({ stacked: true, grid: { display: false } }),
  };
  options.plugins.tooltip.callbacks = { label: (c) => c.dataset.label + ': ' + fmtDuration(c.parsed.x) };
  // A bar per agent: give the chart the height it needs.
  $('#agent-chart-box').style.height = Math.max(220, 60 + agents.length * 30) + 'px';
  upsertChart('agentStates', $('#chart-agents'), 'bar', chartData, options);
  $('#chart-agents-table').replaceChildren(chartTable('Time per state per agent (h:mm:ss)', chartData, fmtDuration));
  clear($('#agents-export')).append(csvLink('/api/agent-summary', params, 'agents'));
}

/** The figures of a row or of the totals, in the order of the headings. */
function figureCells(r) {
  const s = r.stateSeconds || {};
  const reasons = Object.entries(r.notReadyByReason || {}).map(([k, v]) => k + ' ' + fmtDuration(v)).join(', ');
  return [
    h('td', { class: 'num' }, fmtInt(r.callsHandled)),
    h('td', { class: 'num' }, fmtDuration(r.talkSeconds)),
    h('td', { class: 'num' }, fmtDuration(r.ahtSeconds)),
    h('td', { class: 'num' }, fmtPct(r.occupancyPct)),
    ...STATES.map((k) => h('td', { class: 'num' }, fmtDuration(s[k] || 0))),
    h('td', { class: 'small' }, reasons || '—'),
  ];
}

/** The agent table's headings, with the figures' definitions. */
export function agentHeadings() {
  return h('tr', null,
    h('th', { scope: 'col' }, 'Agent'), h('th', { scope: 'col' }, 'Interval'),
    h('th', { scope: 'col', class: 'num' }, term('calls', 'Calls')),
    h('th', { scope: 'col', class: 'num' }, term('talk', 'Talk')),
    h('th', { scope: 'col', class: 'num' }, term('aht', 'AHT')),
    h('th', { scope: 'col', class: 'num' }, term('occupancy', 'Occ. %')),
    STATES.map((k) => h('th', { scope: 'col', class: 'num' }, STATE_LABELS[k])),
    h('th', { scope: 'col' }, 'Not ready by reason'));
}
