/**
 * CSV export: a plain download link to the same endpoint and parameters as the table on
 * screen plus format=csv, so the file holds the service's numbers and its file name
 * (Content-Disposition) carries the range, the filters and the granularity.
 */
import { apiUrl } from './api.js';
import { h } from './dom.js';

export function csvLink(path, params, what) {
  return h('a', { class: 'button button--small export', href: apiUrl(path, { ...params, format: 'csv' }), download: '', dataset: { export: what } }, 'Download CSV');
}
