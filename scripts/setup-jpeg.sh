#!/usr/bin/env bash
# What the lossless JPEG engine needs: cmake and nasm to build the
# libjpeg-turbo 3 that the `turbojpeg` crate bundles (Debian 12 and 13 ship
# libturbojpeg 2.1, too old for the crate), and libjpeg-turbo's cjpeg/djpeg,
# which the tests use as the reference. Idempotent: returns at once when all
# three are on PATH.
set -euo pipefail
log() { printf '[setup-jpeg] %s\n' "$*" >&2; }
if command -v cmake >/dev/null && command -v nasm >/dev/null && command -v djpeg >/dev/null \
   && command -v cjpeg >/dev/null; then
  log "cmake, nasm, cjpeg and djpeg already present; nothing to do"
  exit 0
fi
case "$(uname -s)" in
  Darwin) brew install cmake nasm jpeg-turbo; exit 0 ;;
esac
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "need root (or sudo) to install packages"; exit 1; }
  SUDO=sudo
fi
command -v apt-get >/dev/null || { log "install cmake, nasm and libjpeg-turbo's cjpeg/djpeg yourself"; exit 1; }
log "apt-get install cmake nasm libjpeg-turbo-progs"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  cmake nasm libjpeg-turbo-progs >/dev/null
