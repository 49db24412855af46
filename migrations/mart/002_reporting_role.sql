-- Whether this site's reporting serves users (active) or waits (standby), set by the DR
-- workflow. One row; a mart created at a non-primary site starts as standby.
create table ctl_reporting (
  singleton   boolean primary key default true check (singleton),
  role        text not null check (role in ('active', 'standby')),
  active_site text not null,
  changed_at  timestamptz not null default now()
);
