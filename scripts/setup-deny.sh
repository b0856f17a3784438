#!/usr/bin/env bash
# Installs cargo-deny (pinned), which `make deny` runs, into the git-ignored
# .tools/. Idempotent: returns at once when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.20.2
BIN=.tools/bin/cargo-deny
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "cargo-deny $VERSION" ]; then
  exit 0
fi
echo "[setup-deny] installing cargo-deny $VERSION (2.5 to 4 minutes on 2 cores)" >&2
nice -n 10 cargo install --quiet --locked "cargo-deny@$VERSION" --root .tools
