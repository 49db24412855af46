-- Which IDB a cursor was read from, beyond idb.meta's incarnation (which a restore keeps):
-- the server's system identifier and timeline, and the newest row visible in the cursor
-- snapshot (its witness). A restored, re-created or promoted IDB changes one of them, and
-- the member is read from the start again (docs/architecture.md, "Restored and standby IDBs").
-- Null for cursors written before this migration: recorded by their next load.
alter table ctl_cursor
  add column system_id     text,
  add column timeline      integer,
  add column witness_table text check (witness_table in ('call_event', 'agent_event', 'dss_session')),
  add column witness_id    bigint,
  add column witness_xid   xid8,
  add column witness_hash  text;
