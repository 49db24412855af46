/**
 * Reports as CSV (RFC 4180): a header row, one line per row of the JSON answer and, for
 * the reports with totals, a last line of totals; the cells are the JSON values as they
 * are (null is an empty cell). A text cell a spreadsheet would read as a formula gets a
 * leading `'`: queue names and caller numbers are chosen by others (CSV injection).
 */

export interface Column<R> {
  header: string;
  value: (row: R) => string | number | null | undefined;
}

/** Text a spreadsheet runs as a formula when it leads a cell. */
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return JSON.stringify(value);
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The first cell of the totals line. */
export const TOTAL_LABEL = 'Total';

/** Lines end with CRLF, as RFC 4180 has them; `totals`, a row like the others, comes last. */
export function toCsv<R>(columns: Column<R>[], rows: R[], totals?: R): string {
  const line = (row: R) => `${columns.map((c) => csvCell(c.value(row))).join(',')}\r\n`;
  const header = `${columns.map((c) => csvCell(c.header)).join(',')}\r\n`;
  return header + rows.map(line).join('') + (totals ? line(totals) : '');
}

const UNSAFE = /[^A-Za-z0-9.-]+/g;
const MAX_PART = 60;

/** A compact UTC instant for a file name: 20240301T100000Z. */
export const fileInstant = (iso: string): string => iso.replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

/**
 * `<report>_<part>_<part>….csv`, each part of letters, digits, `.` and `-` only (anything
 * else becomes `-`) and cut short, so no header or path can be made of a queue's name.
 */
export function csvFilename(report: string, parts: (string | null | undefined)[]): string {
  const safe = parts.filter((p): p is string => !!p).map((p) => p.replace(UNSAFE, '-').slice(0, MAX_PART));
  return `${[report, ...safe].join('_')}.csv`;
}
