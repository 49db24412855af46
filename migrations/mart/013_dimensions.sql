-- The attached data a call's reports filter and group by (etl.dimensions, docs/contracts.md):
-- per configured attrs key, the value of the call's highest-seq usable event that has it,
-- as text of at most 200 characters. Calls transformed before a key was configured have
-- none until their facts are recomputed.
alter table interaction_fact add column dims jsonb not null default '{}';

-- Filters are containment tests (dims @> '{"segment": "gold"}'), which jsonb_path_ops serves.
create index interaction_fact_dims on interaction_fact using gin (dims jsonb_path_ops);
