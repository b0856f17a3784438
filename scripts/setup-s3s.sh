#!/usr/bin/env bash
# Installs the local S3-compatible server used by the tests and the demo
# (s3s-fs, pinned: 0.15+ needs a newer rustc) into the git-ignored .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.14.1
BIN=.tools/bin/s3s-fs
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "[setup-s3s] s3s-fs $VERSION already installed" >&2
  exit 0
fi
echo "[setup-s3s] installing s3s-fs $VERSION (about 2.5 minutes)" >&2
cargo install --quiet --locked "s3s-fs@$VERSION" --features binary --root .tools
