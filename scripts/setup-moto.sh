#!/usr/bin/env bash
# Installs moto's S3 server (PyPI, pinned) into .tools/moto (git-ignored) for
# the integration tests of object options: unlike s3s-fs, moto keeps and
# returns storage class, encryption, ACLs, Cache-Control, metadata and tags.
# Idempotent: returns at once when the pinned version is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENT='moto[server]==5.2.5'
VENV=.tools/moto
STAMP=$VENV/.requirements
PY=${PYTHON:-python3}
log() { printf '[setup-moto] %s\n' "$*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQUIREMENT" ] && [ -x "$VENV/bin/moto_server" ]; then
  log "moto already in $VENV; nothing to do"
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
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$REQUIREMENT"
"$VENV/bin/moto_server" --help >/dev/null
printf '%s\n' "$REQUIREMENT" >"$STAMP"
log "done: $VENV/bin/moto_server"
