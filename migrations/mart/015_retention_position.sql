-- Where a retention run's next batch of staged call events goes on from (docs/retention.md):
-- the last staged event a batch looked at, by its key. Kept here, written in the batch's own
-- transaction, rather than handed back to the workflow: a call id does not belong in a
-- workflow's history, and a retried batch reads the position its predecessor committed.
-- One row per step that scans by position; the first batch of a run starts afresh.
-- The ETL role writes it through the default privileges of 008; a seed leaves it behind.
create table ctl_retention_position (
  step     text primary key,
  event_ts timestamptz not null,
  call_id  uuid not null,
  seq      integer not null
);
