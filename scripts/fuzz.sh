#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each, two at a time on two
# cores) and reports executions and coverage; installs cargo-fuzz when missing.
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   scripts/fuzz.sh 600 http_api    # one target, ten minutes
#   scripts/fuzz.sh --build-only    # install cargo-fuzz and build the targets, no run
#
# libFuzzer first replays the kept inputs (fuzz/seeds/<target>, fuzz/regressions/<target>),
# so a crash fixed once stays fixed. A new crash fails the run and is written to
# fuzz/artifacts/<target>/: fix it, then keep the input in fuzz/regressions/<target>/.
#
# The stable toolchain builds the targets without a sanitizer (Rust is memory-safe outside
# `unsafe`; wasmtime's own fuzzing covers its `unsafe`). Set TTA_FUZZ_SANITIZER=address
# to build with AddressSanitizer (needs RUSTC_BOOTSTRAP=1 on a stable toolchain).
#
# TTA_FUZZ_TARGET_DIR puts the build outside the tree (default: fuzz/target). CI keeps it
# in a cache directory, so a clone on a machine that fuzzed before rebuilds only tta-host
# and the targets instead of an instrumented wasmtime (~15 min of two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=false
if [ "${1:-}" = --build-only ]; then
  build_only=true
  shift
fi
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(load_component smith_component workflow_config http_api)
sanitizer="${TTA_FUZZ_SANITIZER:-none}"
[ "$sanitizer" != none ] && export RUSTC_BOOTSTRAP=1

step() { printf '\n==> %s\n' "$*" >&2; }

target_dir=()
[ -n "${TTA_FUZZ_TARGET_DIR:-}" ] && target_dir=(--target-dir "$TTA_FUZZ_TARGET_DIR")

if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

step "building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build "${target_dir[@]}" --sanitizer "$sanitizer" -O --codegen-units 16
$build_only && exit 0

# Built guests are good seeds for the loader (they are not committed: they are built).
mkdir -p fuzz/corpus/load_component
for built in tests/fixtures/echo-no-wasi.wasm plugins/echo.wasm; do
  [ -f "$built" ] && cp "$built" fuzz/corpus/load_component/
done

logs="fuzz/target/logs"
mkdir -p "$logs"
run() {
  local target="$1"
  local dict=()
  [ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
  mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
  cargo fuzz run "${target_dir[@]}" --sanitizer "$sanitizer" -O --codegen-units 16 "$target" \
    "fuzz/corpus/$target" "fuzz/seeds/$target" "fuzz/regressions/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}" \
    >"$logs/$target.log" 2>&1
}

step "fuzzing ${targets[*]} for ${seconds} s each, two at a time"
failed=()
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for target in "${targets[@]:i:2}"; do
    run "$target" &
    pids+=("$!:$target")
  done
  for entry in "${pids[@]}"; do
    if ! wait "${entry%%:*}"; then
      failed+=("${entry#*:}")
    fi
  done
done

summary="fuzz/target/summary.md"
{
  echo "| target | executions | exec/s | coverage (edges) | features | corpus |"
  echo "|---|---:|---:|---:|---:|---:|"
  for target in "${targets[@]}"; do
    log="$logs/$target.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
    echo "| $target | ${runs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} |"
  done
} >"$summary"
cat "$summary"

if [ ${#failed[@]} -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo >&2
    echo "fuzz target $target failed; the end of its log ($logs/$target.log):" >&2
    grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)' "$logs/$target.log" | tail -40 >&2
  done
  echo >&2
  echo "error: fuzz targets failed: ${failed[*]}; the inputs are in fuzz/artifacts/<target>/ — fix, then keep them in fuzz/regressions/<target>/" >&2
  exit 1
fi
