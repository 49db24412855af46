-- The roles of a mart (README, Security). Migrations run as the mart's owner; the ETL
-- (twinmart_etl) writes staging, facts and ctl tables; reporting (twinmart_reporting)
-- reads the tables reports are made of and nothing else. The roles are cluster-wide and
-- made by whoever provisions the server (`twinmart dev up`, deploy/initdb); a superuser
-- migrating a bare test database gets them as NOLOGIN roles.
do $$
declare
  r text;
begin
  foreach r in array array['twinmart_etl', 'twinmart_reporting'] loop
    if not exists (select from pg_roles where rolname = r) then
      begin
        execute format('create role %I nologin', r);
      exception when insufficient_privilege then
        raise exception 'role % does not exist and % may not create it: create it first (README, Security)', r, current_user;
      end;
    end if;
  end loop;
  -- Only the roles named here connect; PUBLIC's default CONNECT and TEMP go.
  execute format('revoke all on database %I from public', current_database());
  execute format('grant connect on database %I to twinmart_etl, twinmart_reporting', current_database());
  execute format('grant temporary on database %I to twinmart_etl', current_database());
end
$$;

revoke create on schema public from public;
grant usage on schema public to twinmart_etl, twinmart_reporting;

grant select, insert, update, delete on all tables in schema public to twinmart_etl;
grant usage, select, update on all sequences in schema public to twinmart_etl;
-- Tables of later migrations are the ETL's to write too; reporting gets its grants by name.
alter default privileges in schema public grant select, insert, update, delete on tables to twinmart_etl;
alter default privileges in schema public grant usage, select, update on sequences to twinmart_etl;
revoke all on twinmart_migration from twinmart_etl;

grant select on interaction_fact, agent_state_fact, ag_queue_15min, stg_call_event, ctl_reporting to twinmart_reporting;

-- ANALYZE is the owner's (PostgreSQL 15 has no MAINTAIN privilege): the transform keeps the
-- statistics of the tables it grows through this function, which analyzes those alone.
create function ctl_analyze(tables text[]) returns void
language plpgsql security definer set search_path = public, pg_temp as $$
declare
  t text;
begin
  foreach t in array tables loop
    if t not in ('stg_call_event', 'stg_agent_event', 'interaction_fact', 'agent_state_fact') then
      raise exception 'ctl_analyze: % is not a table the transform analyzes', t;
    end if;
  end loop;
  if cardinality(tables) > 0 then
    execute 'analyze (skip_locked) ' || array_to_string(tables, ', ');
  end if;
end
$$;
revoke all on function ctl_analyze(text[]) from public;
grant execute on function ctl_analyze(text[]) to twinmart_etl;
