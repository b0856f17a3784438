#!/usr/bin/env bash
# Everything batchimg's build, tests and demo need on a fresh machine.
# Idempotent: on a provisioned machine it returns in about a second.
#
# The package installs go first, one at a time (apt holds one lock). What is
# left is built or downloaded side by side: ImageMagick's C build, the local
# S3 server's cargo install, the Python tools' pip installs and the crates
# of batchimg's own build. Much of each is single-threaded or waits on the
# network, so together they take far less than one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "[setup] Rust is required: https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "[setup] python3 is required (it serves the demo's images)" >&2; exit 1; }
scripts/setup-jpeg.sh
scripts/setup-tmux.sh
scripts/setup-venv.sh

pids=()
names=()
beside() {
  "$@" &
  pids+=("$!")
  names+=("$*")
}
beside scripts/setup-imagemagick.sh
beside scripts/setup-s3s.sh
beside sh -c 'scripts/setup-moto.sh && scripts/setup-warehouse.sh'
# A fresh clone's crates download while the rest builds (later, the build has them).
if [ ! -d target ]; then
  beside sh -c 'cargo fetch --locked >/dev/null 2>&1 || echo "[setup] cargo fetch failed; the build will fetch" >&2'
fi
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "[setup] failed: ${names[$i]}" >&2
    failed=1
  fi
done
exit "$failed"
