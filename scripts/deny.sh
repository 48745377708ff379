#!/usr/bin/env bash
# `cargo deny` over the host's dependency graph (deny.toml): licenses, bans and sources
# always; advisories against the RustSec database, which is fetched from github.com.
# Where github.com is unreachable (our CI machines reach only package registries) the
# advisory check says so and is skipped, unless TTA_DENY_ADVISORIES=required.
#
#   scripts/deny.sh                  # check
#   scripts/deny.sh --install-only   # install cargo-deny when missing, no check
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  printf '\n==> installing cargo-deny\n' >&2
  cargo install cargo-deny --locked --version 0.20.2
fi
[ "${1:-}" = --install-only ] && exit 0

cargo deny --offline check licenses bans sources

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if timeout 300 cargo deny check advisories >"$log" 2>&1; then
  tail -1 "$log"
elif grep -q "failed to fetch advisory database" "$log"; then
  if [ "${TTA_DENY_ADVISORIES:-}" = required ]; then
    cat "$log" >&2
    echo "error: the RustSec advisory database could not be fetched and TTA_DENY_ADVISORIES=required" >&2
    exit 1
  fi
  echo "warning: advisories NOT checked: the RustSec advisory database (github.com/RustSec/advisory-db) is unreachable from this machine; run scripts/deny.sh where it is, or set TTA_DENY_ADVISORIES=required to fail instead" >&2
else
  cat "$log" >&2
  echo "error: cargo deny found advisories (above); update the crate or, with a reason, add it to [advisories].ignore in deny.toml" >&2
  exit 1
fi
