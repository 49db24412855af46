-- agent-summary finds the spans overlapping a range through a GiST index of each span as
-- a point (start, end) in seconds since the epoch, not as a tstzrange (migration 003).
-- Every agent event inserts a span and closes the one before it, and the close changes
-- end_ts, so each span enters this index twice. A range entry cost the transform's span
-- upsert about twice what a point entry does (BENCHMARKS.md). A span overlaps [a, b)
-- when start < b and end > a: the point lies in a quadrant, which the report asks for
-- with `<@ box` and then checks exactly on the timestamps. An open span ends at infinity.
-- Both operations of the expression are immutable, so no time zone setting can reach it.
drop index agent_state_fact_span;
drop function span_range(timestamptz, timestamptz);

create function span_point(start_ts timestamptz, end_ts timestamptz) returns point
  language sql immutable parallel safe
  as $$ select point(extract(epoch from start_ts - timestamptz 'epoch')::float8,
                     coalesce(extract(epoch from end_ts - timestamptz 'epoch')::float8, 'infinity')) $$;
create index agent_state_fact_span on agent_state_fact using gist (span_point(start_ts, end_ts));
