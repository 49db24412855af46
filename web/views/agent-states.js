/** One agent's state timeline over the range: a bar of spans to scale, and the spans as a table. */
import { api } from '../lib/api.js';
import { palette } from '../lib/charts.js';
import { csvLink } from '../lib/csv.js';
import { $, clear, h } from '../lib/dom.js';
import { fmtDuration } from '../lib/format.js';
import { STATE_LABELS } from './agents.js';

export async function load(ctx) {
  const agent = ctx.state.agents[0];
  $('#agent-states-title').textContent = agent ? 'State timeline of ' + agent : 'State timeline';
  const box = clear($('#agent-states-body'));
  const exportBox = clear($('#agent-states-export'));
  if (!agent) {
    box.append(h('p', { class: 'muted' }, 'Choose an agent in the agent view: each agent links to its timeline.'));
    return null;
  }
  const params = { agent, from: new Date(ctx.range.from).toISOString(), to: new Date(ctx.range.to).toISOString() };
  const data = await api('/api/agent-states', params);
  exportBox.append(csvLink('/api/agent-states', params, 'agent-states'));
  const rows = Array.isArray(data.rows) ? data.rows : [];
  const { from, to } = ctx.range;
  const p = palette();
  const span = to - from;
  // Spans clipped to the range, placed by percentage so the bar scales with the screen.
  const bar = h('div', { class: 'state-bar', role: 'img', 'aria-label': 'States of ' + agent + ' from ' + ctx.fmt.dayTime(from) + ' to ' + ctx.fmt.dayTime(to) + '; the table below lists them' },
    rows.map((r) => {
      const s = Math.max(from, Date.parse(r.startTs));
      const e = Math.min(to, r.endTs ? Date.parse(r.endTs) : Date.now());
      if (!(e > s)) return null;
      return h('span', {
        class: 'state-bar__span',
        style: 'left:' + ((100 * (s - from)) / span).toFixed(3) + '%;width:' + ((100 * (e - s)) / span).toFixed(3) + '%;background:' + (p[r.state] || p.text),
        title: (STATE_LABELS[r.state] || r.state) + ' ' + ctx.fmt.timeSec(s) + '–' + ctx.fmt.timeSec(e),
      });
    }));
  const legend = h('ul', { class: 'legend' }, Object.entries(STATE_LABELS).map(([k, label]) => h('li', null, h('span', { class: 'legend__swatch', style: 'background:' + p[k] }), label)));
  const table = h('div', { class: 'table-wrap table-wrap--tall' }, h('table', { class: 'data data--compact', id: 'agent-states-table' },
    h('caption', { class: 'visually-hidden' }, 'State spans of ' + agent),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Reason'), h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, 'To'), h('th', { scope: 'col', class: 'num' }, 'Duration'))),
    h('tbody', null, rows.length
      ? rows.map((r) => h('tr', { dataset: { state: r.state } },
          h('td', null, STATE_LABELS[r.state] || r.state),
          h('td', null, r.reason || '—'),
          h('td', { class: 'nowrap' }, ctx.fmt.ts(r.startTs)),
          h('td', { class: 'nowrap' }, r.endTs ? ctx.fmt.ts(r.endTs) : 'open'),
          h('td', { class: 'num' }, fmtDuration(r.seconds))))
      : h('tr', { class: 'empty' }, h('td', { colspan: 5 }, 'No state changes of ' + agent + ' in this range.')))));
  box.append(bar, h('div', { class: 'state-bar__axis muted small' }, h('span', null, ctx.fmt.dayTime(from)), h('span', null, ctx.fmt.dayTime(to))), legend, table);
  return data;
}
