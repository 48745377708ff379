#!/usr/bin/env bash
# `cargo deny` over the host's dependency graph (deny.toml): licenses, bans, sources, and
# advisories against the RustSec database. Any advisory fails the check.
#
# Our machines reach only package registries, so by default the advisories come from the
# dated offline snapshot in shared/rustsec-advisory-db (beside the checkout; its SNAPSHOT.md
# says from when), laid out as cargo-deny lays out its fetched copy and read with
# --offline. Where github.com is reachable, --fetch checks against the live database.
#
#   scripts/deny.sh                  # check, advisories from the snapshot
#   scripts/deny.sh --fetch          # check, advisories fetched from github.com
#   scripts/deny.sh --install-only   # install cargo-deny when missing, no check
#
# TTA_ADVISORY_DB names another snapshot directory.
set -euo pipefail
cd "$(dirname "$0")/.."
# deny.toml's db-path is `${TTA_ADVISORY_DBS:-$CARGO_HOME/advisory-dbs}`, and cargo-deny
# does not expand `$CARGO_HOME`: unset, every run (even --version) makes a directory of
# that literal name in the checkout. The databases live under target/.
dbs="$PWD/target/advisory-dbs"
export TTA_ADVISORY_DBS="$dbs"

if ! cargo deny --version >/dev/null 2>&1; then
  printf '\n==> installing cargo-deny\n' >&2
  cargo install cargo-deny --locked --version 0.20.2
fi
[ "${1:-}" = --install-only ] && exit 0

# `--offline` reads the crates of every target deny.toml names: fetch those first.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

if [ "${1:-}" = --fetch ]; then
  exec cargo deny check advisories
fi

snapshot="${TTA_ADVISORY_DB:-$(cd .. && pwd)/shared/rustsec-advisory-db}"
if [ ! -f "$snapshot/SNAPSHOT.md" ]; then
  echo "error: no RustSec advisory snapshot at $snapshot (expected shared/rustsec-advisory-db beside the checkout); set TTA_ADVISORY_DB, or run scripts/deny.sh --fetch where github.com is reachable" >&2
  exit 1
fi
# cargo-deny 0.20 keeps the database of its default URL in <db-path>/advisory-db-<hash of
# the URL> and reads it as a git repository: the snapshot is copied there and committed,
# again only when the snapshot changed.
db="$dbs/advisory-db-3157b0e258782691"
stamp=$(cat "$snapshot/SNAPSHOT.md")
if [ ! -d "$db/.git" ] || [ "$(cat "$db/.snapshot" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -r "$snapshot/." "$db/"
  chmod -R u+w "$db"
  (
    cd "$db"
    git init -q
    git add -A
    git -c user.email=ci@localhost -c user.name=tta-host -c commit.gpgsign=false commit -qm "RustSec advisory snapshot"
  )
  printf '%s' "$stamp" >"$db/.snapshot"
fi
date=$(grep -o '([0-9-]*)' "$snapshot/SNAPSHOT.md" | head -1)
echo "advisories: RustSec snapshot $date ($snapshot)" >&2
if ! cargo deny --offline check advisories; then
  echo "error: cargo deny found advisories (above); update the crate or, with a reason, add it to [advisories].ignore in deny.toml" >&2
  exit 1
fi
