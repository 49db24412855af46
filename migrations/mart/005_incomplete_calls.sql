-- A call whose end never arrives (its remaining events were at a failed site) is closed
-- as `incomplete` once the mart has seen events etl.maxCallSeconds past its start; the
-- transform finds those candidates each cycle through the partial index, which holds
-- only the calls still in progress.
alter table interaction_fact drop constraint interaction_fact_outcome_check;
alter table interaction_fact add constraint interaction_fact_outcome_check
  check (outcome in ('in_progress', 'answered', 'abandoned', 'transferred', 'incomplete'));
create index interaction_fact_in_progress_start on interaction_fact (start_ts) where outcome = 'in_progress';
