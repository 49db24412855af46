-- Info Mart core schema. Staging holds one row per event natural key (the best-quality
-- version seen so far); facts are derived from staging by set-based upserts of the
-- calls, agents and intervals a load touched.

-- Extraction cursor per member IDB: everything visible in `snapshot` is staged. A delta
-- committed in chunks keeps its target snapshot and the last (table, xid, id) done.
create table ctl_cursor (
  member_id        text primary key,
  source_id        text not null,
  incarnation      uuid,
  snapshot         pg_snapshot not null default '1:1:',
  pending_snapshot pg_snapshot,
  pending_table    text check (pending_table in ('call_event', 'agent_event')),
  pending_xid      xid8,
  pending_id       bigint,
  last_extract_at  timestamptz,
  last_event_ts    timestamptz,
  rows_total       bigint not null default 0,
  resets           integer not null default 0,
  updated_at       timestamptz not null default now()
);

-- One row per committed load (chunk) of one member.
create table ctl_load_audit (
  audit_id       bigint generated always as identity primary key,
  member_id      text not null,
  incarnation    uuid,
  snapshot_from  pg_snapshot not null,
  snapshot_to    pg_snapshot not null,
  final_chunk    boolean not null,
  call_rows      integer not null,
  agent_rows     integer not null,
  session_rows   integer not null,
  discarded_rows integer not null,
  reset_reason   text,
  committed_at   timestamptz not null default now()
);
create index ctl_load_audit_member on ctl_load_audit (member_id, audit_id);

-- Windows in which no member of an HA set had a collector session: potential data loss.
create table ctl_data_gap (
  source_id   text not null,
  gap_start   timestamptz not null,
  gap_end     timestamptz,          -- null: no member is connected now
  detected_at timestamptz not null default now(),
  primary key (source_id, gap_start)
);

-- Rows that cannot be transformed, with the reason; recorded once per natural key and reason.
create table ctl_discard (
  discard_id   bigint generated always as identity primary key,
  table_name   text not null,
  natural_key  text not null,
  member_id    text not null,
  reason       text not null,
  row_data     jsonb not null,
  discarded_at timestamptz not null default now(),
  unique (table_name, natural_key, reason)
);

create table stg_dss_session (
  member_id   text not null,
  incarnation uuid not null,
  dss_id      bigint not null,
  collector   text not null,
  source_id   text not null,
  conn_start  timestamptz not null,
  conn_end    timestamptz,
  conn_type   smallint not null,
  primary key (member_id, incarnation, dss_id)
);
create index stg_dss_session_source on stg_dss_session (source_id, conn_start);

-- quality: lower is better (covered by a session, then own site, then list order).
create table stg_call_event (
  call_id        uuid not null,
  seq            integer not null,
  source_id      text not null,
  event          text not null,
  event_ts       timestamptz not null,
  media          text not null,
  direction      text not null,
  ani            text,
  dnis           text,
  queue          text,
  agent_id       text,
  attrs          jsonb not null,
  member_id      text not null,
  quality        integer not null,
  discard_reason text,
  loaded_at      timestamptz not null default now(),
  primary key (call_id, seq)
);
create index stg_call_event_ts on stg_call_event (event_ts);

create table stg_agent_event (
  source_id      text not null,
  agent_id       text not null,
  seq            integer not null,
  event          text not null,
  event_ts       timestamptz not null,
  reason         text,
  member_id      text not null,
  quality        integer not null,
  discard_reason text,
  loaded_at      timestamptz not null default now(),
  primary key (source_id, agent_id, seq)
);

-- Work queues between load and transform, filled in the load transaction.
create table etl_dirty_call (call_id uuid primary key);
create table etl_dirty_agent (
  source_id text not null,
  agent_id  text not null,
  min_seq   integer not null,
  primary key (source_id, agent_id)
);
create table etl_dirty_source (source_id text primary key);

-- Public facts (docs/contracts.md).
create table interaction_fact (
  interaction_id bigint generated always as identity primary key,
  call_id        uuid not null unique,
  source_id      text not null,
  media          text not null,
  direction      text not null,
  queue          text,
  agent_id       text,
  start_ts       timestamptz not null,
  answer_ts      timestamptz,
  end_ts         timestamptz,
  outcome        text not null check (outcome in ('in_progress', 'answered', 'abandoned', 'transferred')),
  wait_s         numeric(12, 3),
  talk_s         numeric(12, 3),
  event_count    integer not null,
  updated_at     timestamptz not null default now()
);
create index interaction_fact_queue_start on interaction_fact (queue, start_ts);
create index interaction_fact_start on interaction_fact (start_ts);

create table agent_state_fact (
  agent_state_id bigint generated always as identity primary key,
  source_id      text not null,
  agent_id       text not null,
  seq            integer not null,   -- seq of the agent event that opened the span
  state          text not null,
  reason         text,
  start_ts       timestamptz not null,
  end_ts         timestamptz,
  unique (source_id, agent_id, seq)
);
create index agent_state_fact_start on agent_state_fact (start_ts);

create table ag_queue_15min (
  queue          text not null,
  interval_start timestamptz not null,
  offered        integer not null,
  answered       integer not null,
  abandoned      integer not null,
  answered_in_sl integer not null,
  total_wait_s   numeric(14, 3) not null,
  total_talk_s   numeric(14, 3) not null,
  primary key (queue, interval_start)
);
