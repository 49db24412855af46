#!/bin/sh
# The one-shot jobs of the sites' Temporal clusters in docker-compose.yml (image
# temporalio/admin-tools), each safe to run again:
#   setup.sh schema <site>   the site's cluster schemas brought up to date
#   setup.sh link            the clusters connected to each other, the global namespace
#                            registered active at dc1 and replicated to dc2, with
#                            twinmart's search attributes
set -eu
: "${TWINMART_DB_PASSWORD:?TWINMART_DB_PASSWORD must be set}"
export SQL_PASSWORD="$TWINMART_DB_PASSWORD" # read by temporal-sql-tool: not on a command line
schema=/etc/temporal/schema/postgresql/v12
if [ "$1" = schema ]; then
  site=$2
  for db in temporal temporal_visibility; do
    dir=$schema/temporal/versioned
    [ "$db" = temporal_visibility ] && dir=$schema/visibility/versioned
    sql="temporal-sql-tool --plugin postgres12 --ep $site-db -p 5432 -u twinmart_temporal --db $db"
    $sql setup-schema -v 0.0 2>/dev/null || true # already there
    $sql update-schema -d "$dir"
  done
  exit 0
fi
[ "$1" = link ] || { echo "usage: setup.sh schema <site> | link" >&2; exit 2; }
until temporal operator cluster health --address temporal-dc1:7233 && temporal operator cluster health --address temporal-dc2:7233; do sleep 2; done
temporal operator cluster upsert --address temporal-dc1:7233 --frontend-address temporal-dc2:7233 --enable-connection
temporal operator cluster upsert --address temporal-dc2:7233 --frontend-address temporal-dc1:7233 --enable-connection
# A cluster lists the other once its metadata refreshes: until then the create is refused.
until temporal operator namespace describe --address temporal-dc1:7233 --namespace twinmart >/dev/null 2>&1 ||
  temporal operator namespace create --address temporal-dc1:7233 --namespace twinmart --global \
    --active-cluster dc1 --cluster dc1 --cluster dc2 --retention 7d; do sleep 5; done
for attr in TwinmartSite TwinmartPhase; do
  temporal operator search-attribute create --address temporal-dc1:7233 --namespace twinmart --name $attr --type Keyword 2>/dev/null || true
done
