import { readFile } from 'node:fs/promises';

/**
 * The last lines of a log file, for error messages: a process that failed to start
 * usually said why in its log, and the reader should not have to go and look.
 * `fromByte` skips what earlier runs appended to the same file.
 */
export async function logTail(file: string, lines = 30, fromByte = 0): Promise<string> {
  let text: string;
  try {
    text = (await readFile(file)).subarray(fromByte).toString('utf8');
  } catch (e) {
    return `(cannot read ${file}: ${(e as Error).message})`;
  }
  const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
  return `--- last lines of ${file} ---\n${tail || '(empty)'}`;
}
