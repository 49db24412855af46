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

/** ag_queue_15min's bins: the points the buckets of a range are found from start on them. */
const ORIGIN = `timestamptz '2000-01-01 00:00:00+00'`;

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

/** SQL for the instant at which the next bucket after the one holding `ts` starts. */
function bucketEnd(granularity: Granularity, ts: string, tz: string): string {
  switch (granularity) {
    case '15min':
      return `(${bucketStart(granularity, ts, tz)} + interval '15 minutes')`;
    case 'hour':
      return `(${bucketStart(granularity, ts, tz)} + interval '1 hour')`;
    case 'day':
    case 'month':
      return `((date_trunc('${granularity}', ${ts} at time zone ${tz}) + interval '1 ${granularity}') at time zone ${tz})`;
  }
}

/**
 * SQL for the buckets overlapping [from, to): (bucket_start, bucket_end), each clipped to
 * the range as (clip_start, clip_end). Found from the range's 15-minute points, each of
 * which lies in exactly one bucket and every bucket holds at least one of them.
 */
export function bucketsOf(granularity: Granularity, from: string, to: string, tz: string): string {
  return `select distinct on (bucket_start) bucket_start, bucket_end,
                 greatest(bucket_start, ${from}) as clip_start, least(bucket_end, ${to}) as clip_end
            from (select ${bucketStart(granularity, 'p', tz)} as bucket_start, ${bucketEnd(granularity, 'p', tz)} as bucket_end
                    from generate_series(date_bin('15 minutes', ${from}, ${ORIGIN}), ${to}, interval '15 minutes') p
                   where p < ${to}) b
           order by bucket_start`;
}
