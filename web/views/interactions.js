/**
 * Calls: the calls of one queue in one interval (the drill from the queue view), or one
 * call by id, or a caller's calls by number (the lookup). Each is a link of its own.
 */
import { api } from '../lib/api.js';
import { csvLink } from '../lib/csv.js';
import { $, badge, clear, h } from '../lib/dom.js';
import { fmtDuration, fmtInt } from '../lib/format.js';
import { dimParams } from '../lib/url-state.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OUTCOME_TONE = { answered: 'ok', transferred: 'info', abandoned: 'warn', in_progress: 'muted' };

/** The lookup box's text as the link's key: a UUID is a call id, anything else a caller number. */
export function lookupChanges(text) {
  const q = text.trim();
  if (!q) return null;
  return UUID_RE.test(q) ? { callId: q, ani: null } : { callId: null, ani: q.replace(/[\s().\/-]/g, '') }; // "+1 (415) 555-0100" -> "+14155550100"
}

export async function load(ctx) {
  const { state } = ctx;
  const results = clear($('#interactions-body'));
  const exportBox = clear($('#interactions-export'));
  $('#lookup-input').value = state.callId || state.ani || '';
  if (state.callId || state.ani) {
    const params = state.callId ? { callId: state.callId } : { ani: state.ani };
    $('#interactions-title').textContent = state.callId ? 'Call ' + state.callId : 'Calls from ' + state.ani;
    const data = await api('/api/interactions', params);
    exportBox.append(csvLink('/api/interactions', params, 'interactions'));
    const rows = Array.isArray(data.rows) ? data.rows : [];
    results.append(rows.length
      ? h('p', { class: 'muted result-count' }, rows.length === 1 ? '1 interaction' : rows.length + ' interactions, newest first')
      : h('p', { class: 'muted empty-result' }, 'No interaction found.'));
    for (const r of rows) results.append(callCard(ctx, r));
    return data;
  }
  const queue = state.queues.length === 1 ? state.queues[0] : null;
  if (!queue) {
    $('#interactions-title').textContent = 'Calls';
    results.append(h('p', { class: 'muted' }, 'Open an interval in the queue view to list its calls, or look a call up above.'));
    return null;
  }
  const params = { queue, from: new Date(ctx.range.from).toISOString(), to: new Date(ctx.range.to).toISOString(), ...dimParams(state.dims) };
  const filters = Object.entries(state.dims).map(([k, values]) => k + ' ' + values.join(' or '));
  $('#interactions-title').textContent = 'Calls of ' + queue + (filters.length ? ' (' + filters.join(', ') + ')' : '') + ' · ' + ctx.fmt.dayTime(ctx.range.from) + ' – ' + ctx.fmt.time(ctx.range.to);
  const data = await api('/api/interactions', params);
  exportBox.append(csvLink('/api/interactions', params, 'interactions'));
  results.append(callTable(ctx, Array.isArray(data.rows) ? data.rows : []));
  return data;
}

/** Attached data as `key value` pairs, for calls that have any (etl.dimensions). */
const dimsText = (dims) => Object.entries(dims || {}).map(([k, v]) => k + ' ' + v).join(' · ');

function callTable(ctx, rows) {
  const attached = rows.some((r) => dimsText(r.dims));
  return h('div', { class: 'table-wrap table-wrap--tall' }, h('table', { class: 'data data--compact', id: 'calls-table' },
      h('caption', { class: 'visually-hidden' }, 'Calls of the interval'),
      h('thead', null, h('tr', null, ['Started', 'Call', 'Caller', 'Outcome'].map((t) => h('th', { scope: 'col' }, t)),
        h('th', { scope: 'col', class: 'num' }, 'Wait'), h('th', { scope: 'col', class: 'num' }, 'Talk'), h('th', { scope: 'col' }, 'Agent'),
        attached && h('th', { scope: 'col' }, 'Attached data'))),
      h('tbody', null, rows.length
        ? rows.map((r) => h('tr', { dataset: { callId: r.callId, outcome: r.outcome } },
            h('td', { class: 'nowrap' }, ctx.fmt.ts(r.startTs)),
            h('td', { class: 'mono' }, h('a', { href: ctx.link({ callId: r.callId }) }, r.callId.slice(0, 8) + '…')),
            h('td', { class: 'mono' }, r.ani || '—'),
            h('td', null, badge((r.outcome || 'unknown').replace('_', ' '), OUTCOME_TONE[r.outcome] || 'muted')),
            h('td', { class: 'num' }, fmtDuration(r.waitSeconds)),
            h('td', { class: 'num' }, fmtDuration(r.talkSeconds)),
            h('td', null, r.agentId ? h('a', { href: ctx.link({ view: 'agent-states', agents: [r.agentId] }) }, r.agentId) : '—'),
            attached && h('td', { class: 'small' }, dimsText(r.dims) || '—')))
        : h('tr', { class: 'empty' }, h('td', { colspan: 7 }, 'No calls in this interval.')))));
}

function callCard(ctx, r) {
  const field = (label, value, cls) => h('div', { class: 'kv' }, h('dt', null, label), h('dd', { class: cls || null }, value == null || value === '' ? '—' : value));
  const events = Array.isArray(r.events) ? r.events : [];
  const startMs = r.startTs ? Date.parse(r.startTs) : null;
  return h('article', { class: 'call', dataset: { callId: r.callId } },
    h('header', { class: 'call__head' },
      h('div', null, h('div', { class: 'call__title' }, r.ani ? 'Call from ' + r.ani : 'Call'), h('div', { class: 'call__id mono' }, r.callId)),
      badge((r.outcome || 'unknown').replace('_', ' '), OUTCOME_TONE[r.outcome] || 'muted')),
    h('div', { class: 'call__body' },
      h('dl', { class: 'kvs' },
        field('Caller (ANI)', r.ani, 'mono'),
        field('Queue', r.queue),
        field('Agent', r.agentId),
        field('Media · direction', [r.media, r.direction].filter(Boolean).join(' · ')),
        field('Source', r.sourceId, 'mono'),
        field('Started', ctx.fmt.ts(r.startTs)),
        field('Answered', r.answerTs ? ctx.fmt.ts(r.answerTs) : null),
        field('Ended', r.endTs ? ctx.fmt.ts(r.endTs) : null),
        field('Wait', fmtDuration(r.waitSeconds), 'num'),
        field('Talk', fmtDuration(r.talkSeconds), 'num'),
        field('Events', fmtInt(r.eventCount), 'num'),
        dimsText(r.dims) && field('Attached data', dimsText(r.dims))),
      h('div', { class: 'timeline-wrap' },
        h('h4', null, 'Event timeline'),
        events.length
          ? h('ol', { class: 'timeline' }, events.map((e) => {
              const t = e.ts ? Date.parse(e.ts) : null;
              return h('li', { class: 'timeline__item timeline__item--' + e.event, dataset: { event: e.event, seq: e.seq } },
                h('span', { class: 'timeline__dot', 'aria-hidden': 'true' }),
                h('span', { class: 'timeline__seq num' }, '#' + e.seq),
                h('span', { class: 'timeline__event' }, e.event),
                h('span', { class: 'timeline__time', title: e.ts || '' }, t != null ? ctx.fmt.timeSec(t) : '—'),
                h('span', { class: 'timeline__offset num muted' }, startMs != null && t != null ? '+' + fmtDuration((t - startMs) / 1000) : ''),
                h('span', { class: 'timeline__who muted' }, [e.queue, e.agentId].filter(Boolean).join(' · ')));
            }))
          : h('p', { class: 'muted' }, 'No events staged for this call.'))));
}
