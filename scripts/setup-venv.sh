#!/usr/bin/env bash
# Python's venv module, which the tools' installs (moto, DuckDB, Polars,
# pyarrow, the deploy linters) each make their environment with. Debian
# packages it apart (python3-venv); installed here, before those installs run
# side by side, so that none of them needs apt's lock.
# Idempotent: returns at once when `python3 -m venv` works.
set -euo pipefail
log() { printf '[setup-venv] %s\n' "$*" >&2; }
PY=${PYTHON:-python3}
# Debian ships ensurepip in python3-venv: importable means venv works.
if "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  exit 0
fi
TRY=$(mktemp -d)
trap 'rm -rf "$TRY"' EXIT
if "$PY" -m venv "$TRY/venv" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  log "python venv support missing: apt-get install python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  log "python venv support missing: sudo apt-get install python3-venv"
  sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
else
  log "python3 -m venv does not work here; the tools' installs will say why"
fi
