/**
 * Queue view: volume and service level per bucket, the table per bucket and queue (and
 * value of the grouping dimension), totals.
 */
import { api } from '../lib/api.js';
import { axis, baseOptions, chartTable, palette, SERIES_COLORS, upsertChart } from '../lib/charts.js';
import { csvLink } from '../lib/csv.js';
import { $, clear, h } from '../lib/dom.js';
import { fmtDuration, fmtInt, fmtPct } from '../lib/format.js';
import { term } from '../lib/glossary.js';
import { bucketEnd } from '../lib/range.js';
import { dimParams } from '../lib/url-state.js';

const FIFTEEN_MIN = 15 * 60_000;
/** Up to this range every 15-minute interval gets a bar (zeros included); beyond, only intervals with data. */
const FILL_GRID_MAX_MS = 7 * 24 * 3600_000;

export async function load(ctx) {
  const { state } = ctx;
  const params = { ...ctx.rangeParams(), queue: state.queues, ...dimParams(state.dims), groupBy: state.groupBy };
  // The values the dimension filters offer: those of the range and queues shown.
  const [summary, dimensions] = await Promise.allSettled([
    api('/api/queue-summary', params),
    api('/api/dimensions', { from: params.from, to: params.to, queue: state.queues }),
  ]);
  if (dimensions.status === 'fulfilled') ctx.seen.dimensions = dimensions.value;
  if (summary.status === 'rejected') throw summary.reason;
  render(ctx, summary.value, params);
  return summary.value;
}

/** A grouped row's value of the dimension; calls without it are grouped as null. */
const NO_VALUE = '(none)';
const dimensionValue = (r) => (r.dimension.value == null ? NO_VALUE : r.dimension.value);

function render(ctx, data, params) {
  const { state, fmt } = ctx;
  const rows = Array.isArray(data.rows) ? data.rows : [];
  for (const r of rows) ctx.seen.queues.add(r.queue);
  const { from, to } = ctx.range;
  const multiDay = !fmt.sameDay(from, to - 1);
  const g = state.granularity;
  const groupBy = data.groupBy || null;
  // The dashed lines: one per value of the grouping dimension, or else per queue.
  const seriesOf = groupBy ? dimensionValue : (r) => r.queue;

  $('#sl-threshold').textContent = slCaption(data);
  $('#queues-sub').textContent = 'Per ' + granularityName(g) + ' · ' + fmt.dayTime(from) + ' – ' + fmt.dayTime(to) + ' · ' + state.tz;

  const byBucket = new Map();
  const series = [];
  const add = (agg, r) => {
    agg.offered += r.offered;
    agg.answered += r.answered;
    agg.abandoned += r.abandoned;
    agg.answeredInSl += r.answeredInSl;
  };
  const zero = () => ({ offered: 0, answered: 0, abandoned: 0, answeredInSl: 0 });
  for (const r of rows) {
    const t = Date.parse(r.intervalStart);
    let agg = byBucket.get(t);
    if (!agg) byBucket.set(t, (agg = { ...zero(), series: new Map() }));
    add(agg, r);
    const name = seriesOf(r);
    if (!agg.series.has(name)) agg.series.set(name, zero());
    add(agg.series.get(name), r);
    if (!series.includes(name)) series.push(name);
  }
  series.sort();
  const times = new Set(byBucket.keys());
  if (g === '15min' && to - from <= FILL_GRID_MAX_MS) {
    for (let t = Math.ceil(from / FIFTEEN_MIN) * FIFTEEN_MIN; t < to; t += FIFTEEN_MIN) times.add(t);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const labels = sorted.map((t) => fmt.bucket(t, g, multiDay));
  const intervals = sorted.map((t) => new Date(t).toISOString());
  const get = (t, k) => (byBucket.get(t) ? byBucket.get(t)[k] : 0);
  const slOf = (a) => (a && a.offered > 0 ? (100 * a.answeredInSl) / a.offered : null);
  const p = palette();

  const bar = { borderRadius: 2, maxBarThickness: 18 };
  const volume = {
    labels,
    intervals,
    datasets: [
      { label: 'Offered', data: sorted.map((t) => get(t, 'offered')), backgroundColor: p.offered, ...bar },
      { label: 'Answered', data: sorted.map((t) => get(t, 'answered')), backgroundColor: p.answered, ...bar },
      { label: 'Abandoned', data: sorted.map((t) => get(t, 'abandoned')), backgroundColor: p.abandoned, ...bar },
    ],
  };
  const slSets = [{
    label: groupBy ? 'All ' + groupBy + ' values' : series.length > 1 ? 'All selected queues' : series[0] || 'Service level',
    data: sorted.map((t) => slOf(byBucket.get(t))),
    borderColor: p.sl, backgroundColor: 'rgba(15,118,110,0.08)', fill: 'origin', borderWidth: 2.5,
    pointRadius: sorted.length > 120 ? 0 : 2.5, spanGaps: false, tension: 0.2,
  }];
  if (series.length > 1 && series.length <= SERIES_COLORS.length) {
    series.forEach((name, i) => slSets.push({
      label: groupBy ? groupBy + ' ' + name : name,
      data: sorted.map((t) => slOf(byBucket.get(t) && byBucket.get(t).series.get(name))),
      borderColor: SERIES_COLORS[i], backgroundColor: SERIES_COLORS[i], borderWidth: 1.5, borderDash: [5, 3],
      pointRadius: 0, pointHoverRadius: 3,
      // Per-queue (or per-value) lines start hidden (the legend shows them): the overall line stays readable.
      hidden: true, spanGaps: false, tension: 0.2,
    }));
  }
  const sl = { labels, intervals, datasets: slSets };

  const volumeOptions = baseOptions();
  volumeOptions.datasets = { bar: { categoryPercentage: 0.86, barPercentage: 0.92 } };
  volumeOptions.scales = {
    x: axis({ grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 14 } }),
    y: axis({ beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'calls', color: p.text } }),
  };
  const slOptions = baseOptions();
  slOptions.scales = {
    x: axis({ grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 14 } }),
    y: axis({ min: 0, max: 100, ticks: { stepSize: 20, callback: (v) => v + ' %' } }),
  };
  slOptions.plugins.tooltip.callbacks = { label: (c) => c.dataset.label + ': ' + (c.parsed.y == null ? '—' : fmtPct(c.parsed.y) + ' %') };
  upsertChart('volume', $('#chart-volume'), 'bar', volume, volumeOptions);
  upsertChart('serviceLevel', $('#chart-sl'), 'line', sl, slOptions);
  $('#chart-volume-table').replaceChildren(chartTable('Offered, answered and abandoned calls per ' + granularityName(g), volume, fmtInt));
  $('#chart-sl-table').replaceChildren(chartTable('Service level per ' + granularityName(g) + ', percent', sl, fmtPct));

  clear($('#queues-export')).append(csvLink('/api/queue-summary', params, 'queues'));
  renderKpis(data.totals);
  renderTable(ctx, rows, data.totals, multiDay, groupBy);
}

/** What the service level on screen divides, as the service computes it (reporting.serviceLevelFormula). */
const SL_FORMULAS = {
  'answered-over-handled': 'of answered and abandoned calls',
  'answered-over-offered': 'of offered calls',
  'answered-and-abandoned-in-sl-over-offered': 'answered or abandoned within it, of offered calls',
};

function slCaption(data) {
  if (data.serviceLevelSeconds == null) return '';
  const short = data.shortAbandonSeconds ? '; abandons within ' + data.shortAbandonSeconds + ' s left out' : '';
  return '· answered within ' + data.serviceLevelSeconds + ' s, ' + (SL_FORMULAS[data.serviceLevelFormula] || 'of offered calls') + short;
}

const granularityName = (g) => ({ '15min': '15-minute interval', hour: 'hour', day: 'day', month: 'month' })[g];

function renderKpis(t) {
  const box = clear($('#queue-kpis'));
  if (!t) return;
  const kpi = (key, label, value, cls) => h('div', { class: 'kpi' + (cls ? ' ' + cls : ''), dataset: { kpi: key } }, h('dt', null, term(key, label)), h('dd', null, value));
  box.append(
    kpi('offered', 'Offered', fmtInt(t.offered)),
    kpi('answered', 'Answered', fmtInt(t.answered)),
    kpi('abandoned', 'Abandoned', fmtInt(t.abandoned)),
    kpi('serviceLevel', 'Service level', t.serviceLevelPct == null ? '—' : fmtPct(t.serviceLevelPct) + ' %', 'kpi--accent'),
    kpi('asa', 'ASA', fmtDuration(t.asaSeconds)),
    kpi('aht', 'AHT', fmtDuration(t.ahtSeconds)),
    kpi('abandonRate', 'Abandon rate', t.abandonRatePct == null ? '—' : fmtPct(t.abandonRatePct) + ' %'),
  );
}

/** Column headings with their definitions, once: the same cells fill the body and the totals. */
const COLUMNS = [
  ['offered', 'Offered', (r) => fmtInt(r.offered)],
  ['answered', 'Answered', (r) => fmtInt(r.answered)],
  ['abandoned', 'Abandoned', (r) => fmtInt(r.abandoned)],
  ['abandonedShort', 'Short abandon', (r) => fmtInt(r.abandonedShort)],
  ['serviceLevel', 'SL %', (r) => slCell(r.serviceLevelPct)],
  ['asa', 'ASA', (r) => fmtDuration(r.asaSeconds)],
  ['aht', 'AHT', (r) => fmtDuration(r.ahtSeconds)],
  ['abandonRate', 'Abandon %', (r) => fmtPct(r.abandonRatePct)],
];

function renderTable(ctx, rows, totals, multiDay, groupBy) {
  const { state, fmt } = ctx;
  const table = $('#queue-table');
  const labels = groupBy ? 3 : 2;
  clear(table.querySelector('thead')).append(h('tr', null,
    h('th', { scope: 'col' }, 'Interval'), h('th', { scope: 'col' }, 'Queue'), groupBy && h('th', { scope: 'col' }, groupBy),
    COLUMNS.map(([key, label]) => h('th', { scope: 'col', class: 'num' }, term(key, label)))));
  const tbody = clear(table.querySelector('tbody'));
  const tfoot = clear(table.querySelector('tfoot'));
  if (!rows.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: COLUMNS.length + labels }, 'No calls in this range.')));
  let prev = null;
  for (const r of rows) {
    const t = Date.parse(r.intervalStart);
    const first = t !== prev;
    prev = t;
    // The drill: the calls of this queue in this bucket (of this row's value of the
    // grouping dimension), as a link of its own. The API cannot filter by a missing value,
    // so a row of calls without one has no drill.
    const value = groupBy ? r.dimension.value : null;
    const label = fmt.bucket(t, state.granularity, multiDay);
    const drill = groupBy && value == null ? null : ctx.link({
      view: 'interactions', queues: [r.queue], agents: [], dims: groupBy ? { ...state.dims, [groupBy]: [value] } : state.dims,
      range: 'custom', from: t, to: bucketEnd(t, state.granularity, state.tz),
    });
    tbody.append(h('tr', { class: first ? 'group-start' : null, dataset: { queue: r.queue, interval: r.intervalStart, ...(groupBy && { dimension: dimensionValue(r) }) } },
      h('td', { class: 'nowrap' }, drill ? h('a', { href: drill, class: 'drill', title: 'Calls of ' + r.queue + ' in this interval' }, label) : label),
      h('td', null, r.queue),
      groupBy && h('td', { class: r.dimension.value == null ? 'muted' : null }, dimensionValue(r)),
      COLUMNS.map(([, , cell]) => h('td', { class: 'num' }, cell(r)))));
  }
  if (totals) {
    tfoot.append(h('tr', { class: 'totals' }, h('th', { scope: 'row', colspan: labels }, 'Total'), COLUMNS.map(([, , cell]) => h('td', { class: 'num' }, cell(totals)))));
  }
}

function slCell(v) {
  if (v == null) return '—';
  const tone = v >= 80 ? 'good' : v >= 60 ? 'fair' : 'poor';
  return h('span', { class: 'sl sl--' + tone }, fmtPct(v));
}
