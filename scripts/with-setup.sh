#!/usr/bin/env bash
# Brings a fresh clone up to date, then runs the given command:
#   bash scripts/with-setup.sh <command...>
# Installs dependencies and rebuilds only when their inputs changed (scripts/build.js),
# makes sure the default PostgreSQL answers and a Temporal CLI exists (building it with
# Go on a machine that has none, about 6 minutes), and exports its path as
# TWINMART_TEMPORAL_CLI for the command.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: bash scripts/with-setup.sh <command...>" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# npm writes node_modules/.package-lock.json on every install: older than the
# lockfile means the lockfile changed since.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

node scripts/build.js

TWINMART_TEMPORAL_CLI="$(node dist/src/dev/ensure.js)"
export TWINMART_TEMPORAL_CLI

exec "$@"
