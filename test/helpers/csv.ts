import assert from 'node:assert/strict';

/** RFC 4180 as the service writes it: CRLF lines, quoted fields with doubled quotes. */
export function parseCsv(text: string): string[][] {
  assert.ok(text.endsWith('\r\n'), 'the last line ends with CRLF');
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(cell), (cell = '');
    else if (ch === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += ch;
  }
  return rows;
}

/** The CSV's lines under its header row, as records by column name. */
export function csvRecords(text: string): Record<string, string>[] {
  const [header, ...body] = parseCsv(text);
  return body.map((r) => Object.fromEntries(header!.map((k, i) => [k, r[i] ?? ''])));
}
