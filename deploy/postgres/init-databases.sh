#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# one role for Temporal (it creates its own two databases) and one role and database
# for lienthong's store. Passwords come from the environment, never from this file.
set -eu
: "${TEMPORAL_DB_PASSWORD:?set TEMPORAL_DB_PASSWORD}"
: "${LIENTHONG_DB_PASSWORD:?set LIENTHONG_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v temporal_password="$TEMPORAL_DB_PASSWORD" -v lienthong_password="$LIENTHONG_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE lienthong LOGIN PASSWORD :'lienthong_password';
CREATE DATABASE lienthong OWNER lienthong;
SQL
