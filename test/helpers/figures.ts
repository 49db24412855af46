/**
 * The queue figures as the tests compute them from counts they summed with their own SQL,
 * by the default formula (answered in SL over answered and abandoned, short abandons left out).
 */
export interface Counts { offered: number; answered: number; abandoned: number; abandoned_short: number; answered_in_sl: number; total_wait_s: number; total_talk_s: number }

/** a as a percentage of b; null when b is 0. */
export const pct = (a: number, b: number) => (b > 0 ? (100 * a) / b : null);

export const queueFigures = (c: Counts) => ({
  offered: c.offered,
  answered: c.answered,
  abandoned: c.abandoned,
  abandonedShort: c.abandoned_short,
  answeredInSl: c.answered_in_sl,
  serviceLevelPct: pct(c.answered_in_sl, c.answered + c.abandoned - c.abandoned_short),
  asaSeconds: c.answered > 0 ? c.total_wait_s / c.answered : null,
  ahtSeconds: c.answered > 0 ? c.total_talk_s / c.answered : null,
  abandonRatePct: pct(c.abandoned - c.abandoned_short, c.offered - c.abandoned_short),
});
