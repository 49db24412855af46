/*
 * twinmart dashboard: plain browser script, no build step. Talks to the reporting
 * service of the site that served it (same origin): /health, /api/queue-summary,
 * /api/agent-summary, /api/interactions, /api/ops. Chart.js 4 (window.Chart) draws the
 * charts; every Chart instance is kept in window.twinmartCharts for tests.
 */
(function () {
  'use strict';

  const OPS_REFRESH_MS = 5000;
  const INTERVAL_MS = 15 * 60 * 1000;
  /** Up to this range every 15-minute interval gets a bar (zeros included); beyond, only intervals with data. */
  const FILL_GRID_MAX_MS = 7 * 24 * 3600 * 1000;
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  const COLORS = {
    offered: '#94a3b8',
    answered: '#2563eb',
    abandoned: '#f59e0b',
    sl: '#0f766e',
    grid: '#e5e7eb',
    text: '#475569',
  };
  const QUEUE_LINE_COLORS = ['#6366f1', '#0891b2', '#a855f7', '#65a30d', '#db2777', '#ea580c', '#0d9488', '#475569'];
  const STATE_ORDER = ['ready', 'after_call_work', 'not_ready', 'logged_in'];
  const STATE_LABELS = {
    ready: 'Ready',
    after_call_work: 'After-call work',
    not_ready: 'Not ready',
    logged_in: 'Logged in',
  };
  const STATE_COLORS = {
    ready: '#16a34a',
    after_call_work: '#f59e0b',
    not_ready: '#e11d48',
    logged_in: '#94a3b8',
  };
  const EXTRA_STATE_COLORS = ['#6366f1', '#0891b2', '#a855f7', '#64748b'];

  const state = {
    health: null,
    /** null until the first health answer: then true or false. */
    standby: null,
    queuesSeen: new Set(),
    agentsSeen: new Set(),
    opsTimer: null,
    reportSeq: 0,
  };

  const charts = { volume: null, serviceLevel: null, agentStates: null };
  window.twinmartCharts = charts;

  // ---------- small helpers ----------

  const $ = (sel) => document.querySelector(sel);

  /** Builds an element; strings become text nodes (never HTML). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function showAlert(el, message, kind) {
    if (!message) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.hidden = false;
    el.className = 'alert' + (kind ? ' alert--' + kind : '');
    el.textContent = message;
  }

  class ApiError extends Error {
    constructor(status, body, message) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path) {
    let res;
    try {
      res = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, null, 'reporting service not reachable (' + (e && e.message ? e.message : e) + ')');
    }
    let body = null;
    const text = await res.text();
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (res.status === 401 && body && typeof body.login === 'string') {
      // The service asks for a sign-in (reporting.auth): its login page opens the dashboard again.
      location.assign(body.login);
    }
    if (!res.ok) {
      throw new ApiError(res.status, body, describeError(res.status, body, text));
    }
    return body;
  }

  function describeError(status, body, text) {
    if (body && body.error === 'standby') {
      return 'standby: reports are served by ' + (body.activeSite || 'the active site');
    }
    const msg = body && typeof body.error === 'string' ? body.error : (text || '').slice(0, 300);
    if (status === 400) return 'The request was refused: ' + msg;
    if (status === 503) return 'Service unavailable: ' + msg;
    return 'HTTP ' + status + (msg ? ': ' + msg : '');
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  /** Date -> value for <input type="datetime-local"> in the browser's time zone. */
  function toLocalInput(d) {
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + 'T' + pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  }

  function fromLocalInput(v) {
    if (!v) return null;
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  // 24-hour clock: compact, and what contact-center reports use.
  const H23 = { hourCycle: 'h23' };
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', ...H23 });
  const timeSecFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const dayTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', ...H23 });
  const daySecFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const fullFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', ...H23 });
  const dateFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

  const fmtInt = (n) => (n == null ? '—' : nf0.format(n));
  const fmtPct = (n) => (n == null ? '—' : nf1.format(n));

  /** Seconds -> m:ss (under an hour) or h:mm:ss. */
  function fmtDuration(s) {
    if (s == null || Number.isNaN(Number(s))) return '—';
    const total = Math.round(Number(s));
    const hh = Math.floor(total / 3600);
    const mm = Math.floor((total % 3600) / 60);
    const ss = total % 60;
    return hh > 0 ? hh + ':' + pad2(mm) + ':' + pad2(ss) : mm + ':' + pad2(ss);
  }

  /** A timestamp: the time alone when it is today, else with the day (the year only when not this year). */
  /** Axis ticks: whole hours as "2 h", else h:mm. */
  function fmtHours(s) {
    const m = Math.round(Number(s) / 60);
    if (m === 0) return '0';
    if (m % 60 === 0) return m / 60 + ' h';
    return m < 60 ? m + ' min' : Math.floor(m / 60) + ':' + pad2(m % 60);
  }

  function fmtTs(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return timeSecFmt.format(d);
    return d.getFullYear() === now.getFullYear() ? daySecFmt.format(d) : fullFmt.format(d);
  }

  function fmtAgo(iso) {
    if (!iso) return 'never';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 0) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min ago';
    return fullFmt.format(d);
  }

  function badge(text, tone, attrs) {
    return h('span', Object.assign({ class: 'badge badge--' + (tone || 'muted') }, attrs || {}), text);
  }

  // ---------- header / role ----------

  function applyHealth(health) {
    state.health = health;
    $('#site-name').textContent = health.site || '—';
    $('#active-site').textContent = health.activeSite || '—';
    const roleBadge = $('#role-badge');
    roleBadge.textContent = health.role || 'unknown';
    roleBadge.dataset.role = health.role || 'unknown';
    roleBadge.className = 'badge ' + (health.role === 'active' ? 'badge--ok' : health.role === 'standby' ? 'badge--warn' : 'badge--muted');
    const mart = $('#mart-state');
    clear(mart).append(badge(health.mart === 'ok' ? 'ok' : health.mart || 'unknown', health.mart === 'ok' ? 'ok' : 'bad'));
    document.title = (health.site ? health.site + ' · ' : '') + 'twinmart reporting' + (health.role === 'standby' ? ' (standby)' : '');
    setStandby(health.role !== 'active', health.activeSite);
    if (health.mart && health.mart !== 'ok') {
      showBanner('The mart of site ' + health.site + ' is unreachable: reports cannot be served until it is back.');
    } else {
      showBanner(null);
    }
  }

  function showBanner(message) {
    const box = $('#health-error');
    box.hidden = !message;
    $('#health-error-text').textContent = message || '';
  }

  function setStandby(standby, activeSite) {
    const changed = standby !== state.standby;
    state.standby = standby;
    const notice = $('#standby-notice');
    notice.hidden = !standby;
    $('#standby-text').textContent = 'standby: reports are served by ' + (activeSite || 'the active site');
    const reports = $('#reports');
    reports.dataset.disabled = String(standby);
    reports.setAttribute('aria-disabled', String(standby));
    if (standby) reports.setAttribute('inert', '');
    else reports.removeAttribute('inert');
    $('#controls-fieldset').disabled = standby;
    $('#lookup-fieldset').disabled = standby;
    for (const id of ['#queue-filter', '#agent-filter']) {
      if (standby) $(id).removeAttribute('open');
    }
    document.body.classList.toggle('is-standby', standby);
    if (standby) {
      const msg = 'standby: reports are served by ' + (activeSite || 'the active site');
      for (const id of ['#queues-error', '#agents-error']) showAlert($(id), msg, 'standby');
    } else if (changed) {
      loadReports();
    }
  }

  async function loadHealth() {
    try {
      const health = await api('/health');
      applyHealth(health);
      return health;
    } catch (e) {
      showBanner('Health check failed: ' + e.message);
      $('#role-badge').textContent = 'unknown';
      $('#role-badge').className = 'badge badge--bad';
      return null;
    }
  }

  // ---------- filters ----------

  function fillMulti(detailsId, summaryId, values, allLabel, name) {
    const details = $(detailsId);
    const menu = details.querySelector('.multi__menu');
    const checked = new Set(selectedOf(detailsId));
    clear(menu);
    const sorted = [...values].sort((a, b) => a.localeCompare(b));
    if (!sorted.length) {
      menu.append(h('div', { class: 'multi__empty' }, 'None seen yet'));
    }
    for (const v of sorted) {
      const id = name + '-opt-' + v.replace(/[^a-zA-Z0-9_-]/g, '_');
      const input = h('input', { type: 'checkbox', id, value: v, name });
      input.checked = checked.has(v);
      input.addEventListener('change', () => updateMultiSummary(detailsId, summaryId, allLabel));
      menu.append(h('label', { class: 'multi__option', for: id }, input, h('span', null, v)));
    }
    if (sorted.length) {
      const clearBtn = h('button', { type: 'button', class: 'multi__clear' }, 'Clear selection');
      clearBtn.addEventListener('click', () => {
        menu.querySelectorAll('input[type=checkbox]').forEach((c) => (c.checked = false));
        updateMultiSummary(detailsId, summaryId, allLabel);
      });
      menu.append(clearBtn);
    }
    updateMultiSummary(detailsId, summaryId, allLabel);
  }

  function selectedOf(detailsId) {
    return [...$(detailsId).querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
  }

  function updateMultiSummary(detailsId, summaryId, allLabel) {
    const sel = selectedOf(detailsId);
    $(summaryId).textContent = sel.length === 0 ? allLabel : sel.length <= 2 ? sel.join(', ') : sel.length + ' selected';
  }

  function setLast24h() {
    const to = new Date();
    to.setSeconds(0, 0);
    to.setMinutes(to.getMinutes() + 1); // include the current minute
    const from = new Date(to.getTime() - 24 * 3600 * 1000);
    $('#from').value = toLocalInput(from);
    $('#to').value = toLocalInput(to);
  }

  function readRange() {
    const from = fromLocalInput($('#from').value);
    const to = fromLocalInput($('#to').value);
    if (!from || !to) return { error: 'Choose both a start and an end date and time.' };
    return { from, to };
  }

  // ---------- reports ----------

  async function loadReports() {
    if (state.standby) return;
    const range = readRange();
    const controlsError = $('#controls-error');
    if (range.error) {
      showAlert(controlsError, range.error);
      return;
    }
    showAlert(controlsError, null);
    const seq = ++state.reportSeq;
    const qs = new URLSearchParams({ from: range.from.toISOString(), to: range.to.toISOString() });
    const qq = new URLSearchParams(qs);
    for (const q of selectedOf('#queue-filter')) qq.append('queue', q);
    const aq = new URLSearchParams(qs);
    for (const a of selectedOf('#agent-filter')) aq.append('agent', a);
    document.body.classList.add('is-loading');
    const [queues, agents] = await Promise.allSettled([api('/api/queue-summary?' + qq), api('/api/agent-summary?' + aq)]);
    if (seq !== state.reportSeq) return; // a newer Apply superseded this one
    document.body.classList.remove('is-loading');
    handleReport(queues, '#queues-error', (data) => renderQueues(data, range));
    handleReport(agents, '#agents-error', renderAgents);
    document.body.dataset.reportsLoaded = String(seq);
  }

  function handleReport(result, errorSel, render) {
    const box = $(errorSel);
    if (result.status === 'fulfilled') {
      // The service bounds every answer; say so rather than let a cut report pass as whole.
      showAlert(box, result.value.truncated ? 'Only the first part of this report is shown (the answer was cut at its row limit): narrow the time range or the filters.' : null, 'warn');
      try {
        render(result.value);
      } catch (e) {
        showAlert(box, 'Could not draw this report: ' + (e && e.message ? e.message : e), 'error');
      }
      return;
    }
    const e = result.reason;
    if (e && e.body && e.body.error === 'standby') {
      // The role changed under us: the health poll shows the notice; say it here too.
      showAlert(box, e.message, 'standby');
      loadHealth();
      return;
    }
    showAlert(box, e && e.message ? e.message : String(e), 'error');
  }

  function intervalLabel(ms, multiDay) {
    const d = new Date(ms);
    return multiDay ? dayTimeFmt.format(d) : timeFmt.format(d);
  }

  function renderQueues(data, range) {
    const rows = Array.isArray(data.rows) ? data.rows : [];
    for (const r of rows) state.queuesSeen.add(r.queue);
    fillMulti('#queue-filter', '#queue-filter-summary', state.queuesSeen, 'All queues', 'queue');

    $('#sl-threshold').textContent = data.serviceLevelSeconds != null ? '· answered within ' + data.serviceLevelSeconds + ' s' : '';
    const fromMs = new Date(data.from || range.from).getTime();
    const toMs = new Date(data.to || range.to).getTime();
    const multiDay = toMs - fromMs > 24 * 3600 * 1000 || new Date(fromMs).getDate() !== new Date(toMs - 1).getDate();
    $('#queues-sub').textContent =
      'Per 15-minute interval · ' + dateFmt.format(new Date(fromMs)) + ' ' + timeFmt.format(new Date(fromMs)) +
      ' – ' + dateFmt.format(new Date(toMs)) + ' ' + timeFmt.format(new Date(toMs));

    // Aggregate the selected queues per interval.
    const byInterval = new Map();
    const queues = [];
    for (const r of rows) {
      const t = new Date(r.intervalStart).getTime();
      let agg = byInterval.get(t);
      if (!agg) byInterval.set(t, (agg = { offered: 0, answered: 0, abandoned: 0, answeredInSl: 0, queues: new Map() }));
      agg.offered += r.offered;
      agg.answered += r.answered;
      agg.abandoned += r.abandoned;
      agg.answeredInSl += r.answeredInSl;
      agg.queues.set(r.queue, r);
      if (!queues.includes(r.queue)) queues.push(r.queue);
    }
    queues.sort((a, b) => a.localeCompare(b));
    let times;
    if (toMs - fromMs <= FILL_GRID_MAX_MS && Number.isFinite(fromMs) && Number.isFinite(toMs)) {
      times = [];
      for (let t = Math.ceil(fromMs / INTERVAL_MS) * INTERVAL_MS; t < toMs; t += INTERVAL_MS) times.push(t);
      for (const t of byInterval.keys()) if (!times.includes(t)) times.push(t);
      times.sort((a, b) => a - b);
    } else {
      times = [...byInterval.keys()].sort((a, b) => a - b);
    }
    const labels = times.map((t) => intervalLabel(t, multiDay));
    const intervals = times.map((t) => new Date(t).toISOString());
    const get = (t, k) => (byInterval.get(t) ? byInterval.get(t)[k] : 0);
    const sl = (t) => {
      const a = byInterval.get(t);
      return a && a.offered > 0 ? (100 * a.answeredInSl) / a.offered : null;
    };

    const volumeData = {
      labels,
      intervals,
      datasets: [
        { label: 'Offered', data: times.map((t) => get(t, 'offered')), backgroundColor: COLORS.offered, borderRadius: 2, maxBarThickness: 18 },
        { label: 'Answered', data: times.map((t) => get(t, 'answered')), backgroundColor: COLORS.answered, borderRadius: 2, maxBarThickness: 18 },
        { label: 'Abandoned', data: times.map((t) => get(t, 'abandoned')), backgroundColor: COLORS.abandoned, borderRadius: 2, maxBarThickness: 18 },
      ],
    };
    const slDatasets = [
      {
        label: queues.length > 1 ? 'All selected queues' : queues[0] || 'Service level',
        data: times.map(sl),
        borderColor: COLORS.sl,
        backgroundColor: 'rgba(15,118,110,0.08)',
        fill: 'origin',
        borderWidth: 2.5,
        pointRadius: times.length > 120 ? 0 : 2.5,
        spanGaps: false,
        tension: 0.2,
      },
    ];
    if (queues.length > 1 && queues.length <= QUEUE_LINE_COLORS.length) {
      queues.forEach((q, i) => {
        slDatasets.push({
          label: q,
          data: times.map((t) => {
            const r = byInterval.get(t) && byInterval.get(t).queues.get(q);
            return r && r.offered > 0 ? (100 * r.answeredInSl) / r.offered : null;
          }),
          borderColor: QUEUE_LINE_COLORS[i],
          backgroundColor: QUEUE_LINE_COLORS[i],
          borderWidth: 1.5,
          borderDash: [5, 3],
          pointRadius: 0,
          pointHoverRadius: 3,
          // Per-queue lines start hidden (the legend shows them): the overall line stays readable.
          hidden: !wasShown(charts.serviceLevel, q),
          spanGaps: false,
          tension: 0.2,
        });
      });
    }
    const slData = { labels, intervals, datasets: slDatasets };

    charts.volume = upsertChart(charts.volume, '#chart-volume', 'bar', volumeData, volumeOptions());
    charts.serviceLevel = upsertChart(charts.serviceLevel, '#chart-sl', 'line', slData, slOptions());

    renderQueueTable(rows, data.totals, multiDay);
    renderKpis(data.totals);
  }

  /** Whether the user had made a queue's line visible in the existing chart (kept across Apply). */
  function wasShown(chart, label) {
    if (!chart) return false;
    const i = chart.data.datasets.findIndex((d) => d.label === label);
    return i > 0 && chart.isDatasetVisible(i);
  }

  function renderKpis(t) {
    const box = clear($('#queue-kpis'));
    if (!t) return;
    const kpi = (label, value, cls) => h('div', { class: 'kpi' + (cls ? ' ' + cls : '') }, h('dt', null, label), h('dd', null, value));
    box.append(
      kpi('Offered', fmtInt(t.offered)),
      kpi('Answered', fmtInt(t.answered)),
      kpi('Abandoned', fmtInt(t.abandoned)),
      kpi('Service level', t.serviceLevelPct == null ? '—' : fmtPct(t.serviceLevelPct) + ' %', 'kpi--accent'),
      kpi('ASA', fmtDuration(t.asaSeconds)),
      kpi('AHT', fmtDuration(t.ahtSeconds)),
    );
  }

  function renderQueueTable(rows, totals, multiDay) {
    const table = $('#queue-table');
    const tbody = clear(table.querySelector('tbody'));
    const tfoot = clear(table.querySelector('tfoot'));
    if (!rows.length) {
      tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 8 }, 'No calls in this range.')));
    }
    let prev = null;
    for (const r of rows) {
      const t = new Date(r.intervalStart).getTime();
      const first = t !== prev;
      prev = t;
      tbody.append(
        h('tr', { class: first ? 'group-start' : null, dataset: { queue: r.queue, interval: r.intervalStart } },
          h('td', { class: 'nowrap' + (first ? '' : ' repeat') }, (multiDay ? dateFmt.format(new Date(t)) + ' ' : '') + timeFmt.format(new Date(t))),
          h('td', null, r.queue),
          h('td', { class: 'num' }, fmtInt(r.offered)),
          h('td', { class: 'num' }, fmtInt(r.answered)),
          h('td', { class: 'num' }, fmtInt(r.abandoned)),
          h('td', { class: 'num' }, slCell(r.serviceLevelPct)),
          h('td', { class: 'num' }, fmtDuration(r.asaSeconds)),
          h('td', { class: 'num' }, fmtDuration(r.ahtSeconds)),
        ),
      );
    }
    if (totals) {
      tfoot.append(
        h('tr', { class: 'totals' },
          h('th', { scope: 'row', colspan: 2 }, 'Total'),
          h('td', { class: 'num' }, fmtInt(totals.offered)),
          h('td', { class: 'num' }, fmtInt(totals.answered)),
          h('td', { class: 'num' }, fmtInt(totals.abandoned)),
          h('td', { class: 'num' }, slCell(totals.serviceLevelPct)),
          h('td', { class: 'num' }, fmtDuration(totals.asaSeconds)),
          h('td', { class: 'num' }, fmtDuration(totals.ahtSeconds)),
        ),
      );
    }
  }

  function slCell(v) {
    if (v == null) return '—';
    const tone = v >= 80 ? 'good' : v >= 60 ? 'fair' : 'poor';
    return h('span', { class: 'sl sl--' + tone }, fmtPct(v));
  }

  function renderAgents(data) {
    const rows = Array.isArray(data.rows) ? data.rows : [];
    for (const r of rows) state.agentsSeen.add(r.agentId);
    fillMulti('#agent-filter', '#agent-filter-summary', state.agentsSeen, 'All agents', 'agent');

    const states = [...STATE_ORDER];
    for (const r of rows) for (const k of Object.keys(r.stateSeconds || {})) if (!states.includes(k)) states.push(k);

    const tbody = clear($('#agent-table tbody'));
    if (!rows.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 7 }, 'No agent activity in this range.')));
    for (const r of rows) {
      const s = r.stateSeconds || {};
      tbody.append(
        h('tr', { dataset: { agent: r.agentId } },
          h('td', null, r.agentId),
          h('td', { class: 'num' }, fmtInt(r.callsHandled)),
          h('td', { class: 'num' }, fmtDuration(r.talkSeconds)),
          h('td', { class: 'num' }, fmtDuration(s.ready || 0)),
          h('td', { class: 'num' }, fmtDuration(s.not_ready || 0)),
          h('td', { class: 'num' }, fmtDuration(s.after_call_work || 0)),
          h('td', { class: 'num' }, fmtDuration(s.logged_in || 0)),
        ),
      );
    }

    let extra = 0;
    const datasets = states.map((k) => ({
      label: STATE_LABELS[k] || k.replace(/_/g, ' '),
      state: k,
      data: rows.map((r) => Number((r.stateSeconds || {})[k] || 0)),
      backgroundColor: STATE_COLORS[k] || EXTRA_STATE_COLORS[extra++ % EXTRA_STATE_COLORS.length],
      borderRadius: 2,
      maxBarThickness: 22,
    }));
    const maxTotal = Math.max(0, ...rows.map((r) => Object.values(r.stateSeconds || {}).reduce((a, b) => a + Number(b || 0), 0)));
    const step = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].find((s) => maxTotal / s <= 8) || 172800;
    // A bar per agent: give the chart the height it needs.
    $('#agent-chart-box').style.height = Math.max(220, 60 + rows.length * 30) + 'px';
    charts.agentStates = upsertChart(
      charts.agentStates,
      '#chart-agents',
      'bar',
      { labels: rows.map((r) => r.agentId), datasets },
      agentOptions(step),
    );
  }

  // ---------- charts ----------

  function baseOptions() {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { position: 'bottom', align: 'start', labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true, pointStyle: 'rectRounded', padding: 14 } },
        tooltip: { backgroundColor: '#0f172a', titleFont: { weight: '600' }, padding: 10, cornerRadius: 6 },
      },
    };
  }

  function volumeOptions() {
    const o = baseOptions();
    o.datasets = { bar: { categoryPercentage: 0.86, barPercentage: 0.92 } };
    o.scales = {
      x: { grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 14 } },
      y: { beginAtZero: true, grid: { color: COLORS.grid }, border: { display: false }, ticks: { precision: 0 }, title: { display: true, text: 'calls' } },
    };
    return o;
  }

  function slOptions() {
    const o = baseOptions();
    o.scales = {
      x: { grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 14 } },
      y: { min: 0, max: 100, grid: { color: COLORS.grid }, border: { display: false }, ticks: { stepSize: 20, callback: (v) => v + ' %' } },
    };
    o.plugins.tooltip.callbacks = { label: (ctx) => ctx.dataset.label + ': ' + (ctx.parsed.y == null ? '—' : fmtPct(ctx.parsed.y) + ' %') };
    return o;
  }

  function agentOptions(step) {
    const o = baseOptions();
    o.indexAxis = 'y';
    o.interaction = { mode: 'nearest', axis: 'y', intersect: false };
    o.scales = {
      x: { stacked: true, beginAtZero: true, grid: { color: COLORS.grid }, border: { display: false }, ticks: { stepSize: step, callback: (v) => fmtHours(v) } },
      y: { stacked: true, grid: { display: false } },
    };
    o.plugins.tooltip.callbacks = { label: (ctx) => ctx.dataset.label + ': ' + fmtDuration(ctx.parsed.x) };
    return o;
  }

  function upsertChart(existing, canvasSel, type, data, options) {
    if (typeof window.Chart !== 'function') {
      throw new Error('Chart.js did not load (/static/chart.umd.js)');
    }
    if (existing) {
      existing.data = data;
      existing.options = options;
      existing.update();
      return existing;
    }
    return new window.Chart($(canvasSel), { type, data, options });
  }

  // ---------- interaction lookup ----------

  async function lookup(ev) {
    if (ev) ev.preventDefault();
    if (state.standby) return;
    const q = $('#lookup-input').value.trim();
    const box = $('#lookup-error');
    const results = clear($('#lookup-results'));
    if (!q) {
      showAlert(box, 'Enter a call id or a caller number.', 'error');
      return;
    }
    showAlert(box, null);
    const params = new URLSearchParams();
    if (UUID_RE.test(q)) params.set('callId', q);
    else params.set('ani', q.replace(/[\s().\/-]/g, '')); // "+1 (415) 555-0100" -> "+14155550100"
    results.append(h('p', { class: 'muted' }, 'Searching…'));
    try {
      const data = await api('/api/interactions?' + params);
      clear(results);
      const rows = Array.isArray(data.rows) ? data.rows : [];
      if (!rows.length) {
        results.append(h('p', { class: 'muted empty-result' }, 'No interaction found for ' + q + '.'));
        return;
      }
      results.append(h('p', { class: 'muted result-count' }, rows.length === 1 ? '1 interaction' : rows.length + ' interactions, newest first',
        data.truncated ? h('span', { class: 'text-bad' }, ' (more matched than shown: search by call id for one call)') : null));
      for (const r of rows) results.append(renderInteraction(r));
    } catch (e) {
      clear(results);
      showAlert(box, e.message, e.body && e.body.error === 'standby' ? 'standby' : 'error');
      if (e.body && e.body.error === 'standby') loadHealth();
    }
  }

  const OUTCOME_TONE = { answered: 'ok', transferred: 'info', abandoned: 'warn', in_progress: 'muted' };

  function renderInteraction(r) {
    const field = (label, value, cls) => h('div', { class: 'kv' }, h('dt', null, label), h('dd', { class: cls || null }, value == null || value === '' ? '—' : value));
    const events = Array.isArray(r.events) ? r.events : [];
    const startMs = r.startTs ? new Date(r.startTs).getTime() : null;
    return h('article', { class: 'call', dataset: { callId: r.callId } },
      h('header', { class: 'call__head' },
        h('div', null,
          h('div', { class: 'call__title' }, r.ani ? 'Call from ' + r.ani : 'Call'),
          h('div', { class: 'call__id mono' }, r.callId)),
        badge((r.outcome || 'unknown').replace('_', ' '), OUTCOME_TONE[r.outcome] || 'muted')),
      h('div', { class: 'call__body' },
        h('dl', { class: 'kvs' },
          field('Caller (ANI)', r.ani, 'mono'),
          field('Queue', r.queue),
          field('Agent', r.agentId),
          field('Media · direction', [r.media, r.direction].filter(Boolean).join(' · ')),
          field('Source', r.sourceId, 'mono'),
          field('Started', fmtTs(r.startTs)),
          field('Answered', r.answerTs ? fmtTs(r.answerTs) : null),
          field('Ended', r.endTs ? fmtTs(r.endTs) : null),
          field('Wait', fmtDuration(r.waitSeconds), 'num'),
          field('Talk', fmtDuration(r.talkSeconds), 'num'),
          field('Events', fmtInt(r.eventCount), 'num'),
        ),
        h('div', { class: 'timeline-wrap' },
          h('h4', null, 'Event timeline'),
          events.length
            ? h('ol', { class: 'timeline' },
                events.map((e) => {
                  const t = e.ts ? new Date(e.ts).getTime() : null;
                  const offset = startMs != null && t != null ? '+' + fmtDuration((t - startMs) / 1000) : '';
                  return h('li', { class: 'timeline__item timeline__item--' + e.event, dataset: { event: e.event, seq: e.seq } },
                    h('span', { class: 'timeline__dot', 'aria-hidden': 'true' }),
                    h('span', { class: 'timeline__seq num' }, '#' + e.seq),
                    h('span', { class: 'timeline__event' }, e.event),
                    h('span', { class: 'timeline__time', title: e.ts || '' }, e.ts ? timeSecFmt.format(new Date(e.ts)) : '—'),
                    h('span', { class: 'timeline__offset num muted' }, offset),
                    h('span', { class: 'timeline__who muted' }, [e.queue, e.agentId].filter(Boolean).join(' · ')));
                }))
            : h('p', { class: 'muted' }, 'No events staged for this call.'),
        ),
      ),
    );
  }

  // ---------- operations ----------

  const PHASE_TONE = { normal: 'ok', 'failing-over': 'bad', degraded: 'warn', reintroducing: 'info' };
  const SITE_TONE = { active: 'ok', failed: 'bad', rebuilding: 'info' };
  const MEMBER_TONE = { ok: 'ok', unreachable: 'bad', error: 'bad', excluded: 'warn', pending: 'muted', superseded: 'muted', removed: 'warn' };

  async function loadOps() {
    const errBox = $('#ops-error');
    try {
      const ops = await api('/api/ops');
      showAlert(errBox, ops && ops.error ? 'Temporal: ' + ops.error : null, 'warn');
      renderDr(ops ? ops.dr : null);
      renderEtl(ops ? ops.etl : null);
      $('#ops-updated').textContent = 'updated ' + timeSecFmt.format(new Date());
      document.body.dataset.opsLoaded = 'true';
    } catch (e) {
      showAlert(errBox, 'Operations status unavailable: ' + e.message, 'error');
      $('#ops-updated').textContent = 'last attempt failed at ' + timeSecFmt.format(new Date());
    }
  }

  /** Per failed member, what each survivor had not read of it when last measured: the bound on what may be lost. */
  function unreadTable(unread) {
    const members = Object.entries(unread || {});
    if (!members.length) return null;
    const lag = (l) => (l ? nf0.format(l.rowsBehind) + ' events, ' + (l.secondsBehind == null ? '?' : nf1.format(l.secondsBehind)) + ' s (measured ' + fmtAgo(l.measuredAt) + ')' : 'never measured');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact data--wrap', id: 'dr-unread' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Failed member'), h('th', { scope: 'col' }, 'Unread by the survivors at most'))),
      h('tbody', null, members.map(([m, bySite]) => h('tr', null,
        h('td', { class: 'mono' }, m),
        h('td', null, Object.entries(bySite).map(([site, l]) => h('div', null, site + ': ' + lag(l)))))))));
  }

  function section(title, ...children) {
    return h('div', { class: 'ops-section' }, h('h4', null, title), ...children);
  }

  function renderDr(dr) {
    const body = clear($('#dr-body'));
    if (!dr) {
      body.append(h('p', { class: 'muted' }, 'DR workflow status not available (workflow twinmart-dr not running or Temporal not reachable).'));
      return;
    }
    const rep = dr.reporting || {};
    const facts = h('dl', { class: 'facts' },
      h('div', null, h('dt', null, 'Phase'), h('dd', null, badge(dr.phase, PHASE_TONE[dr.phase] || 'muted', { id: 'dr-phase' }))),
      h('div', null, h('dt', null, 'Reporting active at'), h('dd', { id: 'dr-reporting' }, rep.active || '—', rep.primary && rep.primary !== rep.active ? h('span', { class: 'muted' }, ' (primary ' + rep.primary + ')') : null)),
      h('div', null, h('dt', null, 'Awaiting confirmation'), h('dd', null, rep.awaitingConfirmation ? badge('confirmReporting ' + rep.awaitingConfirmation, 'warn') : h('span', { class: 'muted' }, 'no'))),
      h('div', null, h('dt', null, 'Last failover RTO'), h('dd', { id: 'dr-rto', class: 'num' }, dr.lastFailover && dr.lastFailover.rtoSeconds != null ? nf1.format(dr.lastFailover.rtoSeconds) + ' s' : '—',
        dr.lastFailover ? h('span', { class: 'muted' }, ' (' + dr.lastFailover.site + ', ' + fmtAgo(dr.lastFailover.declaredAt) + ')') : null)),
    );
    body.append(facts);

    const sites = Object.entries(dr.sites || {});
    if (sites.length) {
      body.append(section('Sites', h('div', { class: 'chips' }, sites.map(([s, st]) => h('span', { class: 'chip' }, h('span', { class: 'chip__name' }, s), badge(st, SITE_TONE[st] || 'muted'))))));
    }

    const pending = dr.pending || [];
    body.append(section('Pending confirmations',
      pending.length
        ? h('ul', { class: 'plain-list' }, pending.map((p) => h('li', null,
            badge(p.kind, p.overdue ? 'bad' : 'muted'), ' ', h('strong', null, p.what), ' · ', p.site, ' · since ', fmtAgo(p.since),
            p.overdue ? h('span', { class: 'overdue' }, ' overdue') : null)))
        : h('p', { class: 'muted' }, 'none')));

    const suspected = Object.entries(dr.suspected || {});
    body.append(section('Suspected failures',
      suspected.length
        ? h('ul', { class: 'plain-list' }, suspected.map(([s, v]) => h('li', null, badge(s, 'bad'), ' ', v.failures + ' failed probes since ' + fmtAgo(v.since), h('div', { class: 'muted small' }, v.reason))))
        : h('p', { class: 'muted' }, 'none')));

    if (dr.dataLoss) {
      const dl = dr.dataLoss;
      const loss = dl.potentialLoss || [];
      body.append(section('Data-loss report · failure of ' + dl.failedSite + ' · ' + fmtTs(dl.at),
        h('p', null, loss.length ? h('span', null, badge('potential loss', 'bad'), ' sets with no surviving member: ', h('strong', null, loss.join(', '))) : badge('no potential loss: every set has a surviving member', 'ok')),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact data--wrap' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'HA set'), h('th', { scope: 'col' }, 'Surviving members'), h('th', { scope: 'col' }, 'Last event per surviving site'))),
          h('tbody', null, (dl.sets || []).map((s) => h('tr', { class: loss.includes(s.sourceId) ? 'row-bad' : null },
            h('td', { class: 'mono' }, s.sourceId),
            h('td', null, s.survivingMembers && s.survivingMembers.length ? s.survivingMembers.join(', ') : h('span', { class: 'text-bad' }, 'none')),
            h('td', null, s.lastEventBySite ? Object.entries(s.lastEventBySite).map(([site, ts]) => h('div', null, site + ': ' + (ts ? fmtTs(ts) : 'no events'))) : '—')))))),
        unreadTable(dl.unreadByMember)));
    }

    if (dr.reintroduction) {
      const r = dr.reintroduction;
      body.append(section('Reintroduction', h('p', null, r.site + ' since ' + fmtAgo(r.at) + ' · caught up: ' + (r.caughtUp ? 'yes' : 'no') + (r.parity ? ' · parity: ' + r.parity : ''))));
    }
    const cfg = dr.configuration;
    if (cfg && cfg.differing && cfg.differing.length) {
      body.append(h('div', { class: 'alert alert--error', id: 'dr-config-differs' },
        'Configuration differs between ' + Object.keys(cfg.digests).join(', ') + ' in ' + cfg.differing.join(', ') +
        ': the marts would keep different facts, and a reintroduction refuses to start.'));
    }
    if (dr.lastError) body.append(h('div', { class: 'alert alert--error' }, 'Last error: ' + dr.lastError));

    const drill = dr.lastDrill;
    if (drill || dr.drilling) {
      body.append(section('Last DR drill' + (dr.drilling ? ' (a drill of ' + dr.drilling + ' is running)' : ''),
        drill ? h('div', { id: 'dr-drill' },
          h('p', null, badge(drill.ready ? 'ready' : 'not ready', drill.ready ? 'ok' : 'bad'), ' failover of ', h('strong', null, drill.site),
            ' · ' + fmtTs(drill.at) + ' (' + fmtAgo(drill.at) + ')'),
          drill.problems.length ? h('ul', { class: 'plain-list' }, drill.problems.map((p) => h('li', { class: 'text-bad' }, p))) : null,
          h('p', null, drill.exposure.length
            ? h('span', null, badge('exposed', 'warn'), ' sets with no member at a survivor: ', h('strong', null, drill.exposure.map((e) => e.sourceId).join(', ')))
            : h('span', { class: 'muted' }, 'every HA set has a surviving member'))) : null));
    }

    const timeline = (dr.timeline || []).slice(-10).reverse();
    body.append(section('Timeline (last ' + timeline.length + ')',
      timeline.length
        ? h('ol', { class: 'steps' }, timeline.map((t) => h('li', null,
            h('span', { class: 'steps__time num', title: t.at }, fmtTs(t.at)),
            h('span', { class: 'steps__step' }, t.step, t.site ? h('span', { class: 'muted' }, ' · ' + t.site) : null,
              t.by ? h('span', { class: 'muted steps__by' }, ' · by ' + t.by) : null),
            t.detail ? h('span', { class: 'steps__detail muted' }, t.detail) : null)))
        : h('p', { class: 'muted' }, 'no DR steps yet')));

    if ((dr.rejected || []).length) {
      const last = dr.rejected.slice(-3).reverse();
      body.append(section('Rejected commands', h('ul', { class: 'plain-list' }, last.map((r) => h('li', null, h('strong', null, r.command), ' · ' + r.reason + ' · ' + fmtAgo(r.at) + (r.by ? ' · by ' + r.by : ''))))));
    }
  }

  function renderEtl(etl) {
    const body = clear($('#etl-body'));
    const sites = Object.entries(etl || {});
    if (!sites.length) {
      body.append(h('p', { class: 'muted' }, 'No ETL status available.'));
      return;
    }
    for (const [site, st] of sites) {
      const card = h('div', { class: 'etl-site', dataset: { site } });
      if (!st) {
        card.append(h('div', { class: 'etl-site__head' }, h('strong', null, site), badge('not running', 'bad')),
          h('p', { class: 'muted small' }, 'Workflow twinmart-etl-' + site + ' is not running or did not answer.'));
        body.append(card);
        continue;
      }
      const lc = st.lastCycle;
      card.append(
        h('div', { class: 'etl-site__head' }, h('strong', null, site), st.paused ? badge('paused', 'warn') : badge('running', 'ok'),
          (st.excludedSites || []).length ? badge('excluding ' + st.excludedSites.join(', '), 'warn') : null),
        h('dl', { class: 'facts facts--inline' },
          h('div', null, h('dt', null, 'Cycle'), h('dd', { class: 'num' }, fmtInt(st.cycle))),
          h('div', null, h('dt', null, 'Last cycle'), h('dd', { title: lc ? lc.finishedAt : '' }, lc ? fmtAgo(lc.finishedAt) : 'none yet')),
          h('div', null, h('dt', null, 'Rows last cycle'), h('dd', { class: 'num' }, lc ? fmtInt(lc.rows) : '—')),
          h('div', null, h('dt', null, 'Excluded sites'), h('dd', null, (st.excludedSites || []).length ? st.excludedSites.join(', ') : 'none')),
        ),
      );
      const members = Object.entries(st.members || {});
      card.append(h('div', { class: 'table-wrap' }, h('table', { class: 'data data--compact' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'Member'), h('th', { scope: 'col' }, 'State'),
          h('th', { scope: 'col', class: 'num' }, 'Rows loaded'), h('th', { scope: 'col', class: 'num' }, 'Last'), h('th', { scope: 'col' }, 'Last ok'))),
        h('tbody', null, members.length ? members.map(([id, m]) => h('tr', { dataset: { member: id, state: m.state } },
          h('td', null, h('div', { class: 'mono' }, id), h('div', { class: 'muted small' }, m.sourceId + ' · ' + m.site)),
          h('td', null, badge(m.state, MEMBER_TONE[m.state] || 'muted'), m.lastError ? h('div', { class: 'muted small clip', title: m.lastError }, m.lastError) : null),
          h('td', { class: 'num' }, fmtInt(m.rowsTotal)),
          h('td', { class: 'num' }, fmtInt(m.lastRows)),
          h('td', { class: 'nowrap' }, fmtAgo(m.lastOkAt)))) : h('tr', { class: 'empty' }, h('td', { colspan: 5 }, 'no members'))))));
      body.append(card);
    }
  }

  // ---------- start ----------

  function start() {
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
    $('#tz-note').textContent = 'Times are in ' + tz + '. Intervals are included when they start inside the range.';
    $('#tz-footer').textContent = tz;
    setLast24h();
    $('#controls').addEventListener('submit', (e) => {
      e.preventDefault();
      loadReports();
    });
    $('#last24').addEventListener('click', () => {
      setLast24h();
      loadReports();
    });
    $('#lookup-form').addEventListener('submit', lookup);
    // Close a filter menu when clicking elsewhere.
    document.addEventListener('click', (e) => {
      for (const d of document.querySelectorAll('details.multi[open]')) if (!d.contains(e.target)) d.removeAttribute('open');
    });

    loadHealth(); // an active role loads the reports (setStandby)
    loadOps();
    state.opsTimer = setInterval(() => {
      loadOps();
      loadHealth();
    }, OPS_REFRESH_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
