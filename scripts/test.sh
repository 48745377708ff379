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
