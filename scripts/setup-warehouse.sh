#!/usr/bin/env bash
# Installs DuckDB, pyarrow and Polars (PyPI, pinned) into .tools/warehouse (git-ignored)
# for the integration tests of Parquet and JSON Lines: independent tools write
# the exports batchimg reads and read back the files it writes.
# Idempotent: returns at once when the pinned versions are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENT='duckdb==1.4.4 pyarrow==22.0.0 polars==2.1.0'
VENV=.tools/warehouse
STAMP=$VENV/.requirements
PY=${PYTHON:-python3}
log() { printf '[setup-warehouse] %s\n' "$*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQUIREMENT" ] && "$VENV/bin/python" -c 'import duckdb, pyarrow, polars' 2>/dev/null; then
  log "duckdb, pyarrow and polars already in $VENV; nothing to do"
  exit 0
fi
rm -rf "$VENV"
mkdir -p .tools
if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
  rm -rf "$VENV"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "python venv support missing: apt-get install python3-venv"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3-venv; } >/dev/null 2>&1
  fi
  "$PY" -m venv "$VENV"
fi
log "installing $REQUIREMENT (about 30 s)"
# shellcheck disable=SC2086 # three requirements, split on purpose
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $REQUIREMENT
"$VENV/bin/python" -c 'import duckdb, pyarrow, polars'
printf '%s\n' "$REQUIREMENT" >"$STAMP"
log "done: $VENV/bin/python"
