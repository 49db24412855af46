/**
 * The CSV of each report (docs/reporting-api.md, "CSV"): its columns, in the order of the
 * JSON fields, and the file name `<report>_<from>_<to>[_<filters>]_<granularity>.csv`.
 */
import { csvFilename, fileInstant, TOTAL_LABEL, toCsv, type Column } from './csv';
import type { DimensionValue } from './dimensions';
import type { QueueFigures } from './figures';
import {
  AGENT_STATES,
  type AgentFigures,
  type AgentStateSpan,
  type AgentSummary,
  type AgentSummaryRow,
  type InteractionRow,
  type QueueIntervalRow,
  type QueueSummary,
} from './queries';

export interface CsvFile {
  filename: string;
  text: string;
}

/** The range and filters of an answer, which name its file. */
export interface FileParts {
  from?: string | null;
  to?: string | null;
  filters?: (string | null | undefined)[];
  granularity?: string;
}

const fileName = (report: string, p: FileParts): string =>
  csvFilename(report, [p.from && fileInstant(p.from), p.to && fileInstant(p.to), (p.filters ?? []).filter(Boolean).join('-'), p.granularity]);

const fields = <R>(...keys: (keyof R & string)[]): Column<R>[] =>
  keys.map((k) => ({ header: k, value: (r: R) => r[k] as string | number | null }));

const QUEUE_FIGURES = fields<QueueFigures>(
  'offered', 'answered', 'abandoned', 'abandonedShort', 'answeredInSl', 'serviceLevelPct', 'asaSeconds', 'ahtSeconds', 'abandonRatePct',
) as Column<QueueIntervalRow>[];

/** With groupBy, the dimension's value follows the interval, headed `dim.<key>`. */
export function queueSummaryCsv(answer: QueueSummary, parts: FileParts, groupBy: string | null = null): CsvFile {
  const dimension: Column<QueueIntervalRow>[] = groupBy === null ? [] : [{ header: `dim.${groupBy}`, value: (r) => r.dimension?.value ?? null }];
  const columns = [...fields<QueueIntervalRow>('queue', 'intervalStart'), ...dimension, ...QUEUE_FIGURES];
  const totals = { ...answer.totals, queue: TOTAL_LABEL, intervalStart: '' };
  return { filename: fileName('queue-summary', parts), text: toCsv(columns, answer.rows, totals) };
}

export function agentSummaryCsv(answer: AgentSummary, parts: FileParts): CsvFile {
  // One column per not-ready reason found anywhere in the answer; a reason an agent did not use is an empty cell.
  const reasons = [...new Set([answer.totals, ...answer.rows].flatMap((r) => Object.keys(r.notReadyByReason)))].sort();
  const columns: Column<AgentSummaryRow>[] = [
    ...fields<AgentSummaryRow>('agentId', 'intervalStart', 'callsHandled', 'talkSeconds', 'handleSeconds', 'ahtSeconds', 'occupancyPct'),
    ...AGENT_STATES.map((s) => ({ header: `stateSeconds.${s}`, value: (r: AgentFigures) => r.stateSeconds[s] })),
    ...reasons.map((reason) => ({ header: `notReadyByReason.${reason}`, value: (r: AgentFigures) => r.notReadyByReason[reason] })),
  ];
  const totals = { ...answer.totals, agentId: TOTAL_LABEL, intervalStart: '' };
  return { filename: fileName('agent-summary', parts), text: toCsv(columns, answer.rows, totals) };
}

export function agentStatesCsv(rows: AgentStateSpan[], parts: FileParts): CsvFile {
  const columns = fields<AgentStateSpan>('agentId', 'sourceId', 'state', 'reason', 'startTs', 'endTs', 'seconds', 'spanStartTs', 'spanEndTs');
  return { filename: fileName('agent-states', parts), text: toCsv(columns, rows) };
}

/**
 * The calls without their events (a list of its own per call); eventCount says how many.
 * One column `dims.<key>` per dimension any listed call has; a call without it, an empty cell.
 */
export function interactionsCsv(rows: InteractionRow[], parts: FileParts): CsvFile {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.dims)))].sort();
  const columns: Column<InteractionRow>[] = [
    ...fields<InteractionRow>(
      'callId', 'sourceId', 'media', 'direction', 'queue', 'agentId', 'startTs', 'answerTs', 'endTs', 'outcome',
      'waitSeconds', 'talkSeconds', 'eventCount', 'ani',
    ),
    ...keys.map((k) => ({ header: `dims.${k}`, value: (r: InteractionRow) => r.dims[k] ?? null })),
  ];
  return { filename: fileName('interactions', parts), text: toCsv(columns, rows) };
}

export function dimensionValuesCsv(rows: DimensionValue[], parts: FileParts): CsvFile {
  return { filename: fileName('dimensions', parts), text: toCsv(fields<DimensionValue>('key', 'value', 'calls'), rows) };
}
