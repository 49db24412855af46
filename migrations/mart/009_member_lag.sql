-- How far this mart was behind each member IDB when last measured (the DR health probe,
-- every dr.probeSeconds): rows on the IDB beyond this mart's cursor, and when that cursor
-- was last read. Kept while the member is unreachable, so after a site failure it says
-- what the failed site's members held that this mart had not read yet.
create table ctl_member_lag (
  member_id    text primary key,
  rows_behind  bigint not null,
  last_read_at timestamptz,
  measured_at  timestamptz not null default now()
);
