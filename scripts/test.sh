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

# Real servers the tests start on loopback, from Debian: promtool (package `prometheus`)
# checks the /metrics exposition; redis-server and nginx make the cluster of
# tests/all/cluster.rs; docker-registry (the CNCF distribution registry) is the OCI
# registry of tests/all/oci.rs; prometheus scrapes a serve in tests/all/prometheus.rs;
# chromium and chromedriver (package `chromium-driver`) load /ui in tests/all/ui.rs.
missing=()
for check in promtool:prometheus prometheus:prometheus redis-server:redis-server nginx:nginx \
  docker-registry:docker-registry chromium:chromium chromedriver:chromium-driver; do
  command -v "${check%%:*}" >/dev/null 2>&1 || missing+=("${check##*:}")
done
# A headless browser draws text with whatever fonts there are: one is enough.
[[ " ${missing[*]} " == *" chromium "* ]] && missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export TTA_REQUIRE_PROMTOOL=1

# The guests, cargo-deny and the fuzz targets build beside the checks below: their builds
# and ours leave cores idle in turn (build-std, link steps, the long crates), so together
# they finish sooner. The tests wait for the guests; the last steps for the rest.
mkdir -p target
# The MCP tests drive the server with the official MCP Python SDK; its venv is made here,
# beside the guest build, so the tests do not install it while others are timed.
step "building guest plugins and fixtures, and the MCP SDK's venv, in the background (log: target/guest-build.log)"
(
  cargo xtask plugins >target/guest-build.log 2>&1 && built=0 || built=$?
  ./scripts/mcp-venv.sh >target/mcp-venv.log 2>&1 ||
    echo "warning: the MCP SDK's venv was not made (target/mcp-venv.log); the MCP tests try again" >>target/guest-build.log
  exit "$built"
) &
guests=$!
step "building cargo-deny and the fuzz targets in the background (log: target/background-build.log)"
(./scripts/deny.sh --install-only && ./scripts/fuzz.sh --build-only) >target/background-build.log 2>&1 &
background=$!

step "formatting (cargo fmt --check)"
cargo fmt --all --check
for workspace in plugins tests/fixtures fuzz; do
  cargo fmt --manifest-path "$workspace/Cargo.toml" --all --check
done

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "waiting for the guest plugins and fixtures (its log below)"
guests_built=true
wait "$guests" || guests_built=false
cat target/guest-build.log >&2
if ! $guests_built; then
  echo "error: building the guest plugins failed (above); run \`cargo xtask plugins\` to see it alone" >&2
  exit 1
fi

# --benches also runs the overhead benchmark once in test mode (numbers: cargo bench -p
# tta-host --bench overhead), in the same build as the tests. Examples are not built here:
# clippy checks them, and the one there is (`instructions`) is built and run below. The soak
# of `serve` runs for TTA_SOAK_SECONDS (60 unless set); its curve is printed below.
step "tests and the benchmark in test mode (cargo test --workspace --lib --bins --tests --benches)"
cargo test --workspace --lib --bins --tests --benches --locked
cat target/soak/report.md >&2 || true

if ! wait "$background"; then
  step "the background build failed (its log below); the steps below retry it and show the error"
  tail -40 target/background-build.log >&2
fi

step "dependencies: licenses, bans, sources, advisories (cargo deny, deny.toml)"
./scripts/deny.sh

step "fuzzing: every target for ${TTA_FUZZ_SECONDS:-60} s (scripts/fuzz.sh)"
./scripts/fuzz.sh "${TTA_FUZZ_SECONDS:-60}"

step "instructions per call under callgrind, against BENCHMARKS.instructions.json (fails past +10%)"
./scripts/instructions.sh
