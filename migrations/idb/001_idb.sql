-- The IDB schema as the collectors own it (docs/contracts.md). twinmart only reads
-- IDBs; this file exists so the simulator and `twinmart dev up` can create them.
-- Every table carries the writing transaction's id, indexed, for snapshot-difference
-- extraction.
create schema if not exists idb;

create table if not exists idb.meta (
  incarnation uuid not null,
  created_at timestamptz not null default now()
);

create table if not exists idb.dss_session (
  dss_id bigserial primary key,
  collector text not null,
  source_id text not null,
  conn_start timestamptz not null,
  conn_end timestamptz,
  conn_type smallint not null,
  xid xid8 not null default pg_current_xact_id()
);

create table if not exists idb.call_event (
  id bigserial primary key,
  call_id uuid not null,
  seq integer not null,
  source_id text not null,
  event text not null,
  event_ts timestamptz not null,
  media text not null,
  direction text not null,
  ani text,
  dnis text,
  queue text,
  agent_id text,
  attrs jsonb not null default '{}',
  dss_id bigint,
  xid xid8 not null default pg_current_xact_id(),
  unique (call_id, seq)
);

create table if not exists idb.agent_event (
  id bigserial primary key,
  agent_id text not null,
  seq integer not null,
  source_id text not null,
  event text not null,
  event_ts timestamptz not null,
  reason text,
  dss_id bigint,
  xid xid8 not null default pg_current_xact_id(),
  unique (source_id, agent_id, seq)
);

create index if not exists dss_session_xid on idb.dss_session (xid);
create index if not exists call_event_xid on idb.call_event (xid, id);
create index if not exists agent_event_xid on idb.agent_event (xid, id);

-- One incarnation per database: a restored or replaced IDB gets a new one.
insert into idb.meta (incarnation)
select gen_random_uuid() where not exists (select 1 from idb.meta);
