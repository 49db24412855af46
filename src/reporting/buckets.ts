/**
 * The time buckets of the summaries: 15 minutes, or the hour, day or month of the time
 * zone the user picks, as SQL over a timestamptz. A local day is one bucket whatever its
 * length (23 or 25 hours of 15-minute intervals on a DST change), and every bucket starts
 * on a 15-minute boundary of UTC (every zone's offset is a multiple of 15 minutes), so a
 * bucket is always a whole number of ag_queue_15min intervals.
 */

export const GRANULARITIES = ['15min', 'hour', 'day', 'month'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** The zone and size of the buckets; `tz` is an IANA zone name, bound as a parameter. */
export interface Bucketing {
  granularity: Granularity;
  tz: string;
}

/**
 * SQL for the instant at which the bucket holding `ts` starts; `tz` is the placeholder of
 * the zone's bind parameter (such as `$5::text`). Quarter hours and hours are found by
 * subtracting the local time past the bucket's start, not by truncating the local time
 * and converting it back: that would map both 01:00 hours of a fall-back night onto one instant.
 */
export function bucketStart(granularity: Granularity, ts: string, tz: string): string {
  const local = `(${ts} at time zone ${tz})`;
  switch (granularity) {
    case '15min':
      return `(${ts} - (${local} - date_bin('15 minutes', ${local}, timestamp '2000-01-01 00:00:00')))`;
    case 'hour':
      return `(${ts} - (${local} - date_trunc('hour', ${local})))`;
    case 'day':
    case 'month':
      return `(date_trunc('${granularity}', ${local}) at time zone ${tz})`;
  }
}

const STEP: Record<Granularity, string> = {
  '15min': `interval '15 minutes'`,
  hour: `interval '1 hour'`,
  day: `interval '1 day'`,
  month: `interval '1 month'`,
};

/**
 * SQL for the buckets overlapping [from, to), as rows (bucket_start, bucket_end): one row
 * per bucket, so that joined laterally to each agent span it yields the few buckets that
 * span crosses (joining every span to every bucket of a month would be millions of pairs).
 * Days and months step in local time, so a DST day ends at the next local midnight.
 */
export function bucketsOverlapping(granularity: Granularity, from: string, to: string, tz: string): string {
  const step = STEP[granularity];
  if (granularity === '15min' || granularity === 'hour') {
    return `select b as bucket_start, b + ${step} as bucket_end
              from generate_series(${bucketStart(granularity, from, tz)}, ${to}, ${step}) b
             where b < ${to}`;
  }
  return `select b at time zone ${tz} as bucket_start, (b + ${step}) at time zone ${tz} as bucket_end
            from generate_series(date_trunc('${granularity}', ${from} at time zone ${tz}), ${to} at time zone ${tz}, ${step}) b
           where b at time zone ${tz} < ${to}`;
}
