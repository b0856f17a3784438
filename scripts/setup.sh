#!/usr/bin/env bash
# Everything batchimg's build, tests and demo need on a fresh machine.
# Idempotent: on a provisioned machine it returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "[setup] Rust is required: https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "[setup] python3 is required (it serves the demo's images)" >&2; exit 1; }
scripts/setup-imagemagick.sh
scripts/setup-jpeg.sh
scripts/setup-s3s.sh
scripts/setup-moto.sh
scripts/setup-warehouse.sh
scripts/setup-tmux.sh
