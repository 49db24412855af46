-- The etl.dimensions keys the facts' dims were computed with (docs/contracts.md). A
-- transform started with other keys queues every fact it can still rebuild and records
-- its own, so a key added or removed reaches the calls already transformed, not only those
-- recomputed later by chance (src/etl/transform.ts, transformSite). No row until a
-- transform records one: a mart migrated with facts in it does not know their keys.
-- The ETL writes it through the default privileges of 008; reporting does not read it.
create table ctl_fact_dimensions (
  singleton   boolean primary key default true check (singleton),
  dimensions  text[] not null,
  recorded_at timestamptz not null default now()
);
