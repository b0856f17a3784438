#!/usr/bin/env bash
# tmux, which the integration tests use as a real terminal: NO_COLOR and
# --color are checked on what a pane shows (tests/it/operations.rs).
# Idempotent: returns at once when tmux is on PATH.
set -euo pipefail
log() { printf '[setup-tmux] %s\n' "$*" >&2; }
if command -v tmux >/dev/null; then
  log "tmux already present; nothing to do"
  exit 0
fi
case "$(uname -s)" in
  Darwin) brew install tmux; exit 0 ;;
esac
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "need root (or sudo) to install packages"; exit 1; }
  SUDO=sudo
fi
command -v apt-get >/dev/null || { log "install tmux yourself"; exit 1; }
log "apt-get install tmux"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends tmux >/dev/null
