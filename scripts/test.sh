#!/usr/bin/env bash
# Runs every check CI runs, installing what is missing: builds the guests from source,
# checks formatting and lints, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    step "installing rustup component $tool"
    rustup component add "$([ "$tool" = fmt ] && echo rustfmt || echo clippy)"
  fi
done

# promtool (Debian's `prometheus` package) checks the /metrics exposition in the tests.
if ! command -v promtool >/dev/null 2>&1; then
  step "installing promtool (apt-get install prometheus)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
export TTA_REQUIRE_PROMTOOL=1

step "building guest plugins and fixtures (cargo xtask plugins)"
cargo xtask plugins

step "formatting (cargo fmt --check)"
cargo fmt --all --check
for workspace in plugins tests/fixtures; do
  cargo fmt --manifest-path "$workspace/Cargo.toml" --all --check
done

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (cargo test --workspace)"
cargo test --workspace --locked

step "the overhead benchmark runs once in test mode (numbers: cargo bench -p tta-host --bench overhead)"
cargo test --locked -p tta-host --bench overhead

step "instructions per call under callgrind, against BENCHMARKS.instructions.json (fails past +10%)"
./scripts/instructions.sh
