#!/bin/sh
# Run once by the postgres image after 10-idb-databases.sql: the roles of README's
# Security section, so no twinmart process connects as the superuser. They log in with
# TWINMART_DB_PASSWORD (passed to the database containers only for this).
set -eu
: "${TWINMART_DB_PASSWORD:?TWINMART_DB_PASSWORD must be set}"
psql -v ON_ERROR_STOP=1 -v pw="$TWINMART_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
create role twinmart_owner login password :'pw';
create role twinmart_etl login password :'pw';
create role twinmart_reporting login password :'pw';
create role twinmart_idb_reader login password :'pw';
-- The site's Temporal server keeps its persistence and visibility here, in databases of its own.
create role twinmart_temporal login password :'pw';
create database temporal owner twinmart_temporal;
create database temporal_visibility owner twinmart_temporal;
-- The owner migrates the mart (migration 008 grants the ETL and reporting roles their part).
alter database twinmart_mart owner to twinmart_owner;
SQL
# The IDBs are the collectors' (here the superuser, as `twinmart sim` writes them): the
# reader may use schema idb and read the tables the collectors create in it, nothing else.
for db in idb_voice_1 idb_chat_1; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" <<SQL
revoke temporary on database $db from public;
create schema if not exists idb;
grant usage on schema idb to twinmart_idb_reader;
grant select on all tables in schema idb to twinmart_idb_reader;
alter default privileges for role $POSTGRES_USER in schema idb grant select on tables to twinmart_idb_reader;
SQL
done
