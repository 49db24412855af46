-- Run once by the postgres image when a site's database volume is first created.
-- The IDBs stand in for the collectors' own databases, which in production live on
-- the collectors' servers: the collectors (or `twinmart sim`) create the idb schema
-- in them (migrations/idb/001_idb.sql). The mart database is POSTGRES_DB.
create database idb_voice_1;
create database idb_chat_1;
