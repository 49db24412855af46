-- Retention (docs/retention.md): what the purge leaves behind so the transform stays right
-- without the rows it deleted, the indexes that let it find old rows without scanning, and
-- the ANALYZE of what it emptied.

-- Calls whose staged events were purged: their facts are final. A late event for one
-- (an IDB read again from the start, a site back after a long outage) is staged, ignored
-- by the transform and purged again; recomputed from that event alone, the fact would lose
-- everything the purged events said. Kept as long as the fact.
create table ctl_purged_call (
  call_id  uuid primary key,
  start_ts timestamptz not null
);
create index ctl_purged_call_start on ctl_purged_call (start_ts);

-- Per agent, the seq below which staged events were purged: the transform recomputes spans
-- from here at the lowest, so a late event below it cannot delete the spans of the purged
-- events (they are no longer in staging to be rebuilt).
create table ctl_purged_agent (
  source_id  text not null,
  agent_id   text not null,
  below_seq  integer not null,
  primary key (source_id, agent_id)
);

-- Old rows found by time, not by a scan of the whole table.
create index ctl_load_audit_committed on ctl_load_audit (committed_at);
create index ctl_discard_discarded on ctl_discard (discarded_at);

-- Retention runs as twinmart_etl; ANALYZE is the owner's, so ctl_analyze (008) now also
-- analyzes the tables retention deletes from, and still no others. Its grants stay.
create or replace function ctl_analyze(tables text[]) returns void
language plpgsql security definer set search_path = public, pg_temp as $$
declare
  t text;
begin
  foreach t in array tables loop
    if t not in ('stg_call_event', 'stg_agent_event', 'interaction_fact', 'agent_state_fact',
                 'stg_dss_session', 'ctl_load_audit', 'ctl_discard', 'ctl_data_gap', 'ctl_purged_call', 'ag_queue_15min') then
      raise exception 'ctl_analyze: % is not a table the transform or retention analyzes', t;
    end if;
  end loop;
  if cardinality(tables) > 0 then
    execute 'analyze (skip_locked) ' || array_to_string(tables, ', ');
  end if;
end
$$;
