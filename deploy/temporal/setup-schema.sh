#!/bin/sh
# One-shot job (temporalio/admin-tools): create Temporal's two databases on PostgreSQL
# and bring their schemas to the version this admin-tools image ships. Safe to re-run:
# `create` skips an existing database and `update-schema` only applies what is missing.
set -eu
: "${POSTGRES_SEEDS:?}" "${DB_PORT:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
schema=/etc/temporal/schema/postgresql/v12

for db in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  name=${db%%:*}; kind=${db##*:}
  echo "temporal schema: $name ($kind)"
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -p $DB_PORT -u $POSTGRES_USER --db $name"
  $tool create
  $tool setup-schema -v 0.0
  $tool update-schema -d "$schema/$kind/versioned"
done
echo "temporal schema: up to date"
