-- The queue figures as the industry defines them (docs/reporting-api.md, "Figures"): per
-- queue and interval, the abandons shorter than etl.shortAbandonSeconds (they count against
-- neither the service level nor the abandon rate) and the other abandons within the
-- queue's service-level threshold (one of the service-level formulas counts them).
alter table ag_queue_15min
  add column abandoned_short integer not null default 0,
  add column abandoned_in_sl integer not null default 0;

-- Intervals already aggregated get them from their facts at the default thresholds (5 s
-- short, 20 s service level: a migration cannot read the configuration); calls the
-- transform touches from now on count with the configured ones.
update ag_queue_15min q
   set abandoned_short = c.abandoned_short, abandoned_in_sl = c.abandoned_in_sl
  from (select queue, date_bin('15 minutes', start_ts, timestamptz '2000-01-01 00:00:00+00') as interval_start,
               count(*) filter (where outcome = 'abandoned' and wait_s < 5)::integer as abandoned_short,
               count(*) filter (where outcome = 'abandoned' and wait_s >= 5 and wait_s <= 20)::integer as abandoned_in_sl
          from interaction_fact
         where queue is not null
         group by 1, 2) c
 where q.queue = c.queue and q.interval_start = c.interval_start
   and (c.abandoned_short, c.abandoned_in_sl) <> (0, 0);
