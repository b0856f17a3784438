#!/usr/bin/env bash
# Everything batchimg's build, tests and demo need on a fresh machine.
# Idempotent: on a provisioned machine it returns in about a second.
#
# Usage: scripts/setup.sh [CARGO-COMMAND...]
# CARGO-COMMAND is the build the caller runs next (`build --release --locked`
# from `make build`, `test --no-run ...` from `make test`, `clippy ...` from
# `make lint`). When ImageMagick
# has to be built, that build's other crates compile beside it: only
# magick_rust needs MagickWand, and cargo's --keep-going builds everything
# that does not wait on it, so the caller's own build is left with
# magick_rust and batchimg.
#
# What needs no Debian package starts at once, in the background: the local
# S3 server's cargo install, the Python tools' pip installs and the download
# of batchimg's crates. The package installs go meanwhile, one at a time (apt
# holds one lock); then ImageMagick's C build and batchimg's early build join
# the others. Much of each is single-threaded or waits on the network, so
# together they take far less than one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "[setup] Rust is required: https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "[setup] python3 is required (it serves the demo's images)" >&2; exit 1; }

have_magick() {
  pkg-config --atleast-version=7.1.1 MagickWand 2>/dev/null
}
# Asked before the packages go in (they bring pkg-config itself).
magick_missing=0
have_magick || magick_missing=1

pids=()
names=()
beside() {
  "$@" &
  pids+=("$!")
  names+=("$*")
}
# A step in the foreground that fails ends the background ones too.
trap 'status=$?; [ "$status" -eq 0 ] || kill "${pids[@]}" 2>/dev/null; exit "$status"' EXIT
# python3 -m venv, which the pip installs need (a package on Debian, at times).
scripts/setup-venv.sh
beside scripts/setup-s3s.sh
beside sh -c 'scripts/setup-moto.sh && scripts/setup-warehouse.sh'
if [ ! -d target ]; then
  # A fresh clone's crates download while the packages install.
  beside sh -c 'cargo fetch --locked >/dev/null 2>&1 || echo "[setup] cargo fetch failed; the build will fetch" >&2'
fi

scripts/setup-jpeg.sh
scripts/setup-tmux.sh
scripts/setup-imagemagick.sh --packages

beside scripts/setup-imagemagick.sh
if [ "$magick_missing" = 1 ] && [ $# -gt 0 ]; then
  # Its errors are expected (magick_rust, and what depends on it, cannot
  # build yet); the caller's build that follows reports any that are real.
  mkdir -p .tools
  echo "[setup] while ImageMagick builds, cargo $1 --keep-going builds what does not need it (about 10 minutes on 2 cores in all; progress in .tools/early-build.log)" >&2
  beside sh -c 'sub=$1; shift; cargo "$sub" --keep-going "$@" >.tools/early-build.log 2>&1 || true' early-build "$@"
fi
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "[setup] failed: ${names[$i]}" >&2
    failed=1
  fi
done
exit "$failed"
