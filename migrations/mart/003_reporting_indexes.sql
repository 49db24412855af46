-- Indexes the reporting service's reports read by (src/reporting/queries.ts).

-- queue-summary over all queues: a range of intervals (the primary key leads with queue).
create index ag_queue_15min_interval on ag_queue_15min (interval_start);

-- agent-summary: calls answered in the range, for all agents or the chosen ones.
create index interaction_fact_answer on interaction_fact (answer_ts);
create index interaction_fact_agent_answer on interaction_fact (agent_id, answer_ts);

-- agent-summary: the state spans overlapping the range. Neither "start before its end"
-- nor "end after its start" is selective alone (most history lies on one side of any
-- range), so the spans are indexed as ranges. An open span (end_ts null) is unbounded
-- above; a span ending before it starts, which the transform should never write, is
-- empty instead of an error, so that this index can never make the ETL's insert fail.
create function span_range(start_ts timestamptz, end_ts timestamptz) returns tstzrange
  language sql immutable parallel safe
  as $$ select tstzrange(start_ts, case when end_ts < start_ts then start_ts else end_ts end, '[)') $$;
create index agent_state_fact_span on agent_state_fact using gist (span_range(start_ts, end_ts));
create index agent_state_fact_agent_start on agent_state_fact (agent_id, start_ts);

-- interactions: the calls of one caller number.
create index stg_call_event_ani on stg_call_event (ani) where ani is not null;
