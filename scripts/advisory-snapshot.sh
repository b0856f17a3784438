#!/usr/bin/env bash
# `make deny` without the network: the RustSec advisory database from the
# snapshot in ../shared/advisory-db (or $ADVISORY_SNAPSHOT), made into the git
# checkout cargo-deny reads (.tools/advisory-dbs, git-ignored), and a config
# that points cargo-deny there (.tools/deny-offline.toml). Prints which
# database and date it used. Exit 1 when there is no snapshot either.
#
# cargo-deny names a database's checkout after its URL; the name below is
# what the pinned cargo-deny (scripts/setup-deny.sh) gives the default URL,
# https://github.com/RustSec/advisory-db.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPSHOT=${ADVISORY_SNAPSHOT:-../shared/advisory-db}
DBS=.tools/advisory-dbs
DB=$DBS/advisory-db-3157b0e258782691
log() { printf '[deny] %s\n' "$*" >&2; }

if [ ! -f "$SNAPSHOT/SNAPSHOT" ] || [ ! -d "$SNAPSHOT/crates" ]; then
  log "no advisory database snapshot at $SNAPSHOT"
  exit 1
fi
about=$(head -1 "$SNAPSHOT/SNAPSHOT")
# The copy is made again when the snapshot changes.
if [ ! -f "$DB/SNAPSHOT" ] || ! cmp -s "$SNAPSHOT/SNAPSHOT" "$DB/SNAPSHOT"; then
  rm -rf "$DB"
  mkdir -p "$DB"
  cp -R "$SNAPSHOT/." "$DB/"
  chmod -R u+w "$DB"
  # cargo-deny reads the checkout's HEAD (its date decides staleness): the
  # commit is dated as the snapshot is.
  date=$(printf '%s' "$about" | grep -o '[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' | tail -1)
  stamp="${date:-1970-01-01}T00:00:00Z"
  (cd "$DB" && git init -q -b main && git add -A \
    && GIT_AUTHOR_DATE=$stamp GIT_COMMITTER_DATE=$stamp \
       git -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "$about")
fi
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$PWD/$DBS\"|" deny.toml > .tools/deny-offline.toml
log "advisories from the snapshot in $SNAPSHOT: $about"
