/**
 * Chart.js (window.Chart, the UMD build) with the theme's colours. Every chart is kept
 * in window.twinmartCharts, so the browser test can read the numbers drawn.
 */

export const charts = {};
window.twinmartCharts = charts;

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Colours read from the stylesheet, so the light and dark themes need no second palette here. */
export function palette() {
  return {
    offered: css('--chart-offered'),
    answered: css('--chart-answered'),
    abandoned: css('--chart-abandoned'),
    sl: css('--chart-sl'),
    grid: css('--chart-grid'),
    text: css('--muted'),
    ready: css('--state-ready'),
    after_call_work: css('--state-acw'),
    not_ready: css('--state-not-ready'),
    logged_in: css('--state-logged-in'),
  };
}

export const SERIES_COLORS = ['#6366f1', '#0891b2', '#a855f7', '#65a30d', '#db2777', '#ea580c', '#0d9488', '#64748b'];

export function baseOptions() {
  const p = palette();
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    color: p.text,
    interaction: { mode: 'index', intersect: false },
    plugins: {
      legend: { position: 'bottom', align: 'start', labels: { color: p.text, boxWidth: 10, boxHeight: 10, usePointStyle: true, pointStyle: 'rectRounded', padding: 14 } },
      tooltip: { backgroundColor: '#0f172a', titleFont: { weight: '600' }, padding: 10, cornerRadius: 6 },
    },
  };
}

export function axis(extra) {
  const p = palette();
  return { grid: { color: p.grid }, border: { display: false }, ticks: { color: p.text }, ...extra, ...(extra && extra.ticks ? { ticks: { color: p.text, ...extra.ticks } } : {}) };
}

export function upsertChart(name, canvas, type, data, options) {
  if (typeof window.Chart !== 'function') throw new Error('Chart.js did not load (/static/chart.umd.js)');
  const existing = charts[name];
  if (existing && existing.canvas === canvas) {
    // A series the user hid or showed in the legend stays so across refreshes.
    for (const d of data.datasets) {
      const i = existing.data.datasets.findIndex((o) => o.label === d.label);
      if (i >= 0) d.hidden = !existing.isDatasetVisible(i);
    }
    existing.data = data;
    existing.options = options;
    existing.update();
    return existing;
  }
  if (existing) existing.destroy();
  charts[name] = new window.Chart(canvas, { type, data, options });
  return charts[name];
}

/**
 * A chart's numbers as a table, for screen readers and anyone who wants the figures:
 * a row per label, a column per series.
 */
export function chartTable(caption, data, format) {
  const doc = document;
  const el = (tag, text, attrs) => {
    const e = doc.createElement(tag);
    if (text != null) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const table = el('table', null, { class: 'data data--compact' });
  table.append(el('caption', caption));
  const head = el('tr');
  head.append(el('th', '', { scope: 'col' }), ...data.datasets.map((d) => el('th', d.label, { scope: 'col', class: 'num' })));
  table.appendChild(el('thead')).append(head);
  const body = table.appendChild(el('tbody'));
  data.labels.forEach((label, i) => {
    const tr = body.appendChild(el('tr'));
    tr.append(el('th', label, { scope: 'row' }), ...data.datasets.map((d) => el('td', format(d.data[i]), { class: 'num' })));
  });
  const details = el('details', null, { class: 'chart-table' });
  details.append(el('summary', 'Numbers of this chart as a table'), table);
  return details;
}
