/**
 * twinmart dashboard: browser modules, no build step, same origin only. This file holds
 * what every view shares: the site's role, the view settings (all in the URL, see
 * lib/url-state.js), navigation, and the refresh timers. Each view is a module of views/.
 */
import { ApiError, api, isStandby } from './lib/api.js';
import { charts } from './lib/charts.js';
import { $, badge, clear, h, showAlert } from './lib/dom.js';
import { timeFormats } from './lib/format.js';
import { GRANULARITIES, RELATIVE_RANGES, fromZonedInput, resolveRelative, toZonedInput } from './lib/range.js';
import { REFRESH, linkTo, parseState, stateUrl } from './lib/url-state.js';
import * as agentStates from './views/agent-states.js';
import * as agents from './views/agents.js';
import * as interactions from './views/interactions.js';
import * as ops from './views/ops.js';
import * as queues from './views/queues.js';

const VIEWS = { queues, agents, interactions, 'agent-states': agentStates, ops };
/** Health and the operations view refresh on their own at this pace, whatever the report's auto-refresh. */
const OPS_REFRESH_MS = 5000;
const MAX_RANGE_MS = 31 * 24 * 3600_000;

const page = {
  state: parseState(location.search),
  /** The last /health answer, and whether it said standby (null until the first). */
  health: null,
  standby: null,
  seen: { queues: new Set(), agents: new Set(), dimensions: { keys: [], rows: [] } },
  loadSeq: 0,
  /** Whether the next load follows a change of view, which a screen reader is told of (a refresh is not). */
  announce: false,
  refreshTimer: null,
  opsTimer: null,
};

// ---------- navigation: every change of view is a URL ----------

function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else if (url !== location.search) history.pushState(null, '', url);
  page.state = parseState(location.search);
  show();
}

function setState(changes, opts) {
  navigate(stateUrl({ ...page.state, ...changes }), opts);
}

function resolvedRange(s) {
  return s.range === 'custom' ? { from: s.from, to: s.to } : resolveRelative(s.range, s.tz, Date.now());
}

function context() {
  const s = page.state;
  const range = resolvedRange(s);
  return {
    state: s,
    range,
    fmt: timeFormats(s.tz),
    seen: page.seen,
    link: (changes) => linkTo(s, changes),
    rangeParams: () => ({ from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), granularity: s.granularity, tz: s.tz }),
  };
}

/** Shows the view of the URL: controls, navigation, and the view's data. */
function show() {
  const s = page.state;
  syncControls(s);
  for (const a of document.querySelectorAll('.section-nav a')) {
    a.href = linkTo(s, { view: a.dataset.view });
    if (a.dataset.view === s.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const name of Object.keys(VIEWS)) $('#view-' + name).hidden = name !== s.view;
  document.body.dataset.view = s.view;
  $('#controls').hidden = s.view === 'ops';
  // The standby's link to the active site follows the view, so it opens the same report there.
  if (standbyHref()) $('#standby-link').href = standbyHref();
  scheduleRefresh();
  page.announce = true;
  load();
}

async function load() {
  const s = page.state;
  const seq = ++page.loadSeq;
  const errorBox = $('#' + s.view + '-error');
  // A load it supersedes will not finish the page's loading state: this one does.
  delete document.body.dataset.loading;
  const done = () => {
    if (seq === page.loadSeq) document.body.dataset.loaded = location.search;
  };
  if (s.view !== 'ops') {
    if (page.standby === null) return; // the first health answer loads the view
    if (page.standby) {
      showAlert(errorBox, standbyMessage(), 'standby');
      return done();
    }
  }
  const ctx = context();
  // Resolved again on every load: a relative range moves with the clock.
  $('#range-note').textContent = ctx.fmt.full(ctx.range.from) + ' – ' + ctx.fmt.full(ctx.range.to) + ' (' + s.tz + '); intervals count when they start inside the range.';
  const problem = ctx.range.to <= ctx.range.from ? 'The end of the range must be after its start.' : ctx.range.to - ctx.range.from > MAX_RANGE_MS ? 'Choose a range of at most 31 days.' : null;
  if (problem && s.view !== 'ops') {
    showAlert(errorBox, problem, 'error');
    return done();
  }
  document.body.dataset.loading = 'true';
  try {
    const data = await VIEWS[s.view].load(ctx);
    if (seq !== page.loadSeq) return; // a newer view superseded this one
    // The service bounds every answer; say so rather than let a cut report pass as whole.
    showAlert(errorBox, data && data.truncated ? 'Only the first part of this report is shown (the answer was cut at its row limit): narrow the range or the filters.' : null, 'warn');
    if (page.announce) $('#view-status').textContent = $('#view-' + s.view + ' h2').textContent + ' shown' + (data && Array.isArray(data.rows) ? ', ' + data.rows.length + (data.rows.length === 1 ? ' row' : ' rows') : '') + '.';
    page.announce = false;
  } catch (e) {
    if (seq !== page.loadSeq) return;
    showAlert(errorBox, e instanceof ApiError ? e.message : 'Could not show this view: ' + (e && e.message ? e.message : e), isStandby(e) ? 'standby' : 'error');
    if (isStandby(e)) loadHealth();
  } finally {
    // Also after a refused request: a filter the service refused can be cleared.
    if (seq === page.loadSeq) {
      fillFilters();
      delete document.body.dataset.loading;
    }
    done();
  }
}

// ---------- auto-refresh: paused while the tab is hidden ----------

function scheduleRefresh() {
  clearInterval(page.refreshTimer);
  page.refreshTimer = null;
  const ms = REFRESH[page.state.refresh];
  $('#refresh-note').textContent = ms && !document.hidden ? 'Refreshing every ' + $('#refresh').selectedOptions[0].textContent + '.' : ms ? 'Refresh paused while the tab is hidden.' : '';
  if (ms && !document.hidden && page.state.view !== 'ops') page.refreshTimer = setInterval(load, ms);
  document.body.dataset.refreshing = String(page.refreshTimer !== null);
}

function scheduleOps() {
  clearInterval(page.opsTimer);
  page.opsTimer = document.hidden ? null : setInterval(() => {
    loadHealth();
    if (page.state.view === 'ops') load();
  }, OPS_REFRESH_MS);
}

document.addEventListener('visibilitychange', () => {
  scheduleRefresh();
  scheduleOps();
  // Back in view: show what happened meanwhile at once rather than at the next tick.
  if (!document.hidden && (page.refreshTimer || page.state.view === 'ops')) load();
});

// ---------- the site's role ----------

function standbyMessage() {
  return 'standby: reports are served by ' + ((page.health && page.health.activeSite) || 'the active site');
}

/** The same view at the active site, when its address is known. */
function standbyHref() {
  const base = page.health && page.health.activeReportingUrl;
  return base ? base + '/' + location.search : null;
}

function applyHealth(health) {
  page.health = health;
  $('#site-name').textContent = health.site || '—';
  $('#active-site').textContent = health.activeSite || '—';
  const role = $('#role-badge');
  role.textContent = health.role || 'unknown';
  role.dataset.role = health.role || 'unknown';
  role.className = 'badge ' + (health.role === 'active' ? 'badge--ok' : health.role === 'standby' ? 'badge--warn' : 'badge--muted');
  clear($('#mart-state')).append(badge(health.mart === 'ok' ? 'ok' : health.mart || 'unknown', health.mart === 'ok' ? 'ok' : 'bad'));
  document.title = (health.site ? health.site + ' · ' : '') + 'twinmart reporting' + (health.role === 'standby' ? ' (standby)' : '');
  showBanner(health.mart && health.mart !== 'ok' ? 'The mart of site ' + health.site + ' is unreachable: reports cannot be served until it is back.' : null);

  const standby = health.role !== 'active';
  const changed = standby !== page.standby;
  page.standby = standby;
  $('#standby-notice').hidden = !standby;
  $('#standby-text').textContent = standbyMessage();
  const link = $('#standby-link');
  const href = standbyHref();
  link.hidden = !standby || !href;
  if (href) link.href = href;
  $('#controls-fieldset').disabled = standby;
  $('#lookup-fieldset').disabled = standby;
  document.body.classList.toggle('is-standby', standby);
  if (changed) load();
}

function showBanner(message) {
  $('#health-error').hidden = !message;
  $('#health-error-text').textContent = message || '';
}

async function loadHealth() {
  try {
    applyHealth(await api('/health'));
  } catch (e) {
    showBanner('Health check failed: ' + e.message);
    $('#role-badge').textContent = 'unknown';
    $('#role-badge').className = 'badge badge--bad';
  }
}

// ---------- controls ----------

function options(select, entries) {
  clear(select).append(...entries.map(([value, label]) => h('option', { value }, label)));
}

function zones(current) {
  const all = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return [...new Set([current, browser, 'UTC', ...all].filter(Boolean))];
}

function syncControls(s) {
  $('#range').value = s.range;
  $('#granularity').value = s.granularity;
  if (!$('#tz').querySelector('option[value="' + CSS.escape(s.tz) + '"]')) $('#tz').prepend(h('option', { value: s.tz }, s.tz));
  $('#tz').value = s.tz;
  $('#refresh').value = s.refresh;
  const range = resolvedRange(s);
  for (const el of document.querySelectorAll('[data-custom]')) el.hidden = s.range !== 'custom';
  $('#from').value = toZonedInput(range.from, s.tz);
  $('#to').value = toZonedInput(range.to, s.tz);
  $('#tz-footer').textContent = s.tz;
  // Controls that only some views use (granularity, the filters) show only there.
  for (const el of document.querySelectorAll('[data-for]')) el.hidden = !el.dataset.for.split(' ').includes(s.view);
  fillFilters();
}

/** The filter menus list the names seen in reports so far, plus those the URL selects. */
function fillFilters() {
  fillMulti('#queue-filter', '#queue-filter-summary', page.seen.queues, page.state.queues, 'All queues', 'queue');
  fillMulti('#agent-filter', '#agent-filter-summary', page.seen.agents, page.state.agents, 'All agents', 'agent');
  fillDimensions();
}

/**
 * A filter menu per configured dimension, listing the values of the range
 * (/api/dimensions), and the group-by choice; none without etl.dimensions. A menu is
 * made once per key, so an open one keeps the choices not applied yet.
 */
function fillDimensions() {
  const { keys, rows } = page.seen.dimensions;
  const box = $('#dimension-filters');
  for (const field of [...box.children]) if (!keys.includes(field.dataset.key)) field.remove();
  keys.forEach((key, i) => {
    const id = 'dim-filter-' + i;
    let field = box.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (!field || field.querySelector('details').id !== id) {
      field?.remove();
      field = h('div', { class: 'field field--multi', dataset: { key } },
        h('span', { class: 'field__label', id: id + '-label' }, key),
        h('details', { class: 'multi', id },
          h('summary', { 'aria-labelledby': id + '-label ' + id + '-summary' }, h('span', { id: id + '-summary' })),
          h('div', { class: 'multi__menu', role: 'group', 'aria-labelledby': id + '-label' })));
      box.append(field);
    }
    const seen = rows.filter((r) => r.key === key).map((r) => r.value);
    fillMulti('#' + id, '#' + id + '-summary', seen, page.state.dims[key] || [], 'Any ' + key, id);
  });
  const shown = keys.length > 0 && page.state.view === 'queues';
  $('#group-by-field').hidden = !shown;
  if (shown) {
    // Made anew only when the keys change, so a refresh does not close an open list.
    const select = $('#group-by');
    if ([...select.options].map((o) => o.value).join('\n') !== ['', ...keys].join('\n')) options(select, [['', 'None'], ...keys.map((k) => [k, k])]);
    select.value = keys.includes(page.state.groupBy) ? page.state.groupBy : '';
  }
}

const dimensionChoices = () =>
  Object.fromEntries(page.seen.dimensions.keys.map((key, i) => [key, checked('#dim-filter-' + i)]).filter(([, values]) => values.length));

function fillMulti(detailsSel, summarySel, seen, selected, allLabel, name) {
  // An open menu may hold choices not applied yet: an auto-refresh must not undo them.
  if ($(detailsSel).open) return;
  const menu = $(detailsSel + ' .multi__menu');
  const values = [...new Set([...seen, ...selected])].sort();
  clear(menu);
  if (!values.length) menu.append(h('div', { class: 'multi__empty' }, 'None seen yet'));
  values.forEach((v, i) => {
    const id = name + '-opt-' + i;
    const input = h('input', { type: 'checkbox', id, value: v, name });
    input.checked = selected.includes(v);
    menu.append(h('label', { class: 'multi__option', for: id }, input, h('span', null, v)));
  });
  if (values.length) {
    const clearButton = h('button', { type: 'button', class: 'multi__clear' }, 'Clear selection');
    clearButton.addEventListener('click', () => menu.querySelectorAll('input').forEach((c) => (c.checked = false)));
    menu.append(clearButton);
  }
  $(summarySel).textContent = selected.length === 0 ? allLabel : selected.length <= 2 ? selected.join(', ') : selected.length + ' selected';
}

const checked = (sel) => [...document.querySelectorAll(sel + ' input:checked')].map((c) => c.value);

/** Apply: the custom range and the filters, which are not applied on every keystroke or tick. */
function apply(e) {
  e.preventDefault();
  const s = page.state;
  const changes = s.view === 'queues' ? { queues: checked('#queue-filter'), dims: dimensionChoices() } : s.view === 'agents' ? { agents: checked('#agent-filter') } : {};
  if (s.range === 'custom') {
    const from = fromZonedInput($('#from').value, s.tz);
    const to = fromZonedInput($('#to').value, s.tz);
    if (from == null || to == null) return showAlert($('#controls-error'), 'Choose both a start and an end date and time.');
    Object.assign(changes, { from, to });
  }
  showAlert($('#controls-error'), null);
  for (const d of document.querySelectorAll('details.multi[open]')) d.removeAttribute('open');
  setState(changes);
}

function start() {
  options($('#range'), [...Object.entries(RELATIVE_RANGES), ['custom', 'Custom range']]);
  options($('#granularity'), Object.entries(GRANULARITIES));
  options($('#tz'), zones(page.state.tz).map((z) => [z, z]));
  clear($('#agent-table thead')).append(agents.agentHeadings());
  // Charts take their colours when drawn (theme.js sets the theme): draw the view again.
  document.addEventListener('twinmart-theme', () => {
    if (Object.keys(charts).length) load();
  });

  $('#range').addEventListener('change', (e) => {
    const value = e.target.value;
    // Custom starts from the range shown, so the user edits it rather than typing it anew.
    if (value === 'custom') {
      const r = resolvedRange(page.state);
      setState({ range: 'custom', from: r.from, to: r.to });
    } else setState({ range: value, from: null, to: null });
  });
  $('#granularity').addEventListener('change', (e) => setState({ granularity: e.target.value }));
  $('#tz').addEventListener('change', (e) => setState({ tz: e.target.value }));
  $('#refresh').addEventListener('change', (e) => setState({ refresh: e.target.value }));
  $('#group-by').addEventListener('change', (e) => setState({ groupBy: e.target.value || null }));
  $('#controls').addEventListener('submit', apply);
  $('#lookup-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const changes = interactions.lookupChanges($('#lookup-input').value);
    if (!changes) return showAlert($('#interactions-error'), 'Enter a call id or a caller number.', 'error');
    setState(changes);
  });
  // Links inside the page change the view without a reload; a modified click opens a tab as usual.
  document.addEventListener('click', (e) => {
    for (const d of document.querySelectorAll('details.multi[open]')) if (!d.contains(e.target)) d.removeAttribute('open');
    const a = e.target.closest && e.target.closest('a[href^="?"]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute('href'));
    window.scrollTo(0, 0);
    // The link is gone with the old view: keyboard and screen-reader users continue at the new view's heading.
    $('#view-' + page.state.view + ' h2').focus({ preventScroll: true });
  });
  window.addEventListener('popstate', () => navigate(location.search, { replace: true }));

  // The URL always spells out the whole view, defaults included, so a copied link is complete.
  navigate(stateUrl(page.state), { replace: true });
  loadHealth();
  scheduleOps();
}

start();
