/**
 * The queue figures from the counts of ag_queue_15min, as the industry defines them
 * (docs/reporting-api.md, "Figures"). Ratios are always computed from counts, so a total
 * is computed from summed counts, never by averaging averages.
 */

/**
 * What the service level divides by (reporting.serviceLevelFormula). Short abandons count
 * in none of them: a caller who hangs up within etl.shortAbandonSeconds was not let down.
 * - `answered-over-handled` (default): answered in SL / (answered + abandoned). Calls still
 *   waiting count neither way until they are answered or abandoned.
 * - `answered-over-offered`: answered in SL / (offered − short abandons). Calls still
 *   waiting count against it.
 * - `answered-and-abandoned-in-sl-over-offered`: (answered in SL + abandoned in SL) /
 *   (offered − short abandons): a caller who hung up within the threshold is not held against it.
 */
export const SERVICE_LEVEL_FORMULAS = [
  'answered-over-handled',
  'answered-over-offered',
  'answered-and-abandoned-in-sl-over-offered',
] as const;
export type ServiceLevelFormula = (typeof SERVICE_LEVEL_FORMULAS)[number];

/** Counts of one or more queue intervals, as the report's SQL sums them. */
export interface QueueCounts {
  offered: number;
  answered: number;
  abandoned: number;
  abandoned_short: number;
  answered_in_sl: number;
  abandoned_in_sl: number;
  total_wait_s: number;
  total_talk_s: number;
}

export interface QueueFigures {
  offered: number;
  answered: number;
  abandoned: number;
  abandonedShort: number;
  answeredInSl: number;
  serviceLevelPct: number | null;
  asaSeconds: number | null;
  ahtSeconds: number | null;
  abandonRatePct: number | null;
}

/** 100 × part / whole, null when there is nothing to divide by. */
const pct = (part: number, whole: number): number | null => (whole > 0 ? (100 * part) / whole : null);

function serviceLevel(c: QueueCounts, formula: ServiceLevelFormula): number | null {
  const offered = c.offered - c.abandoned_short;
  switch (formula) {
    case 'answered-over-handled':
      return pct(c.answered_in_sl, c.answered + c.abandoned - c.abandoned_short);
    case 'answered-over-offered':
      return pct(c.answered_in_sl, offered);
    case 'answered-and-abandoned-in-sl-over-offered':
      return pct(c.answered_in_sl + c.abandoned_in_sl, offered);
  }
}

export function queueFigures(c: QueueCounts, formula: ServiceLevelFormula): QueueFigures {
  return {
    offered: c.offered,
    answered: c.answered,
    abandoned: c.abandoned,
    abandonedShort: c.abandoned_short,
    answeredInSl: c.answered_in_sl,
    serviceLevelPct: serviceLevel(c, formula),
    asaSeconds: c.answered === 0 ? null : c.total_wait_s / c.answered,
    ahtSeconds: c.answered === 0 ? null : c.total_talk_s / c.answered,
    abandonRatePct: pct(c.abandoned - c.abandoned_short, c.offered - c.abandoned_short),
  };
}
