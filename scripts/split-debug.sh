#!/usr/bin/env bash
# Splits a built binary's debug info into BIN.debug beside it and strips BIN,
# which keeps a `.gnu_debuglink` to the file: the binary ships small, and a
# panic's backtrace names functions and lines wherever BIN.debug sits next to
# it (Rust's backtraces and gdb follow the link; without the file the frames
# are unnamed). A binary already split is left as it is, so its debug file is
# never replaced by an empty one.
set -euo pipefail
BIN=${1:?usage: split-debug.sh BINARY}
log() { printf '[split-debug] %s\n' "$*" >&2; }
command -v objcopy >/dev/null || { log "objcopy (binutils) is required"; exit 1; }
if ! readelf -S "$BIN" | grep -q '\.debug_line'; then
  log "$BIN has no debug info to split (already split?); left as it is"
  exit 0
fi
objcopy --only-keep-debug "$BIN" "$BIN.debug"
objcopy --strip-all --add-gnu-debuglink="$BIN.debug" "$BIN"
log "$BIN: $(du -h "$BIN" | cut -f1), debug info in $BIN.debug ($(du -h "$BIN.debug" | cut -f1))"
