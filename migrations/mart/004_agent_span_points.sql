-- agent-summary finds the spans overlapping a range through a GiST index of each span as
-- a point (start, end) in seconds since the epoch, not as a tstzrange (migration 003).
-- Every agent event inserts a span and closes the one before it, and the close changes
-- end_ts, so each span enters this index twice. A range entry cost the transform's span
-- upsert about twice what a point entry does (BENCHMARKS.md). A span overlaps [a, b)
-- when start < b and end > a: the point lies in a quadrant, which the report asks for
-- with `<@ box` and then checks exactly on the timestamps. An open span ends at infinity.
-- The report turns its bounds into seconds with the same function as the index: the
-- rounding to float8 is then the same monotone map on both sides, so the quadrant never
-- leaves out a span that overlaps. Both operations of epoch_seconds are immutable, so no
-- time zone setting can reach it.
drop index agent_state_fact_span;
drop function span_range(timestamptz, timestamptz);

create function epoch_seconds(ts timestamptz) returns float8
  language sql immutable parallel safe
  as $$ select extract(epoch from ts - timestamptz 'epoch')::float8 $$;
create function span_point(start_ts timestamptz, end_ts timestamptz) returns point
  language sql immutable parallel safe
  as $$ select point(epoch_seconds(start_ts), coalesce(epoch_seconds(end_ts), 'infinity')) $$;
create index agent_state_fact_span on agent_state_fact using gist (span_point(start_ts, end_ts));
