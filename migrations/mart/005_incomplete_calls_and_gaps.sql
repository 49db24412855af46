-- A call whose end never arrives (its remaining events were at a failed site) is closed
-- as `incomplete` once the mart has seen events etl.maxCallSeconds past its start; the
-- transform finds those candidates each cycle through the partial index, which holds
-- only the calls still in progress.
alter table interaction_fact drop constraint interaction_fact_outcome_check;
alter table interaction_fact add constraint interaction_fact_outcome_check
  check (outcome in ('in_progress', 'answered', 'abandoned', 'transferred', 'incomplete'));
create index interaction_fact_in_progress_start on interaction_fact (start_ts) where outcome = 'in_progress';

-- The members the ETL excludes (their site failed): an open session of one covers only
-- up to the member's last extraction, so a set whose members are all at the failed site
-- shows its outage as a data gap (src/mart/facts.ts, refreshDataGaps). A table of its
-- own, not a column of ctl_cursor: a load may hold its cursor row, and an exclusion must
-- not wait for it.
create table ctl_excluded_member (member_id text primary key, source_id text not null);
-- An open session of an old incarnation covers up to the last load of that incarnation.
create index ctl_load_audit_incarnation on ctl_load_audit (member_id, incarnation, audit_id);
