#!/usr/bin/env bash
# Instructions per call, counted by callgrind (not timed, so machine noise cannot move it),
# compared with the committed baseline in BENCHMARKS.instructions.json. Fails when the
# instrumented call (sampled or unsampled) grows by more than 10%.
#
#   scripts/instructions.sh            check against the baseline
#   scripts/instructions.sh --update   write the measured counts as the new baseline
#
# Uses the dev profile (what the tests build; tta-host at opt-level 1, dependencies at 2),
# so the counts are for regressions, not for comparing with the timed benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  echo "installing valgrind (apt-get)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
fi
cargo build --locked -q -p tta-host --example instructions
bin=target/debug/examples/instructions
calls=200
"$bin" sampled 5 # compiles echo into the artifact cache outside valgrind

# Callgrind runs a process on one core: the scenarios run side by side, their counts unmoved.
scenarios="bare_fresh uninstrumented unsampled sampled"
outs="$(mktemp -d)"
pids=""
for scenario in $scenarios; do
  valgrind --tool=callgrind --callgrind-out-file="$outs/$scenario" --collect-atstart=no \
    --toggle-collect='tta_measure_*' "$bin" "$scenario" "$calls" >/dev/null 2>&1 &
  pids="$pids $!"
done
for pid in $pids; do
  wait "$pid" || { echo "error: a callgrind run failed (run it alone: valgrind --tool=callgrind $bin sampled 5)" >&2; exit 1; }
done
results=""
for scenario in $scenarios; do
  total="$(awk '/^(summary|totals):/ {print $2; exit}' "$outs/$scenario")"
  per_call=$((total / calls))
  printf '%-16s %10d instructions per call\n' "$scenario" "$per_call" >&2
  results="$results $scenario=$per_call"
done
rm -rf "$outs"

python3 - "$@" $results <<'PY'
import json, sys
args = sys.argv[1:]
update = "--update" in args
measured = dict(a.split("=") for a in args if "=" in a)
measured = {k: int(v) for k, v in measured.items()}
empty = [name for name, count in measured.items() if count <= 0]
if empty:
    print(f"error: callgrind counted no instructions for {', '.join(empty)}: the example ran no calls "
          f"(run it alone: target/debug/examples/instructions {empty[0]} 5)", file=sys.stderr)
    sys.exit(1)
path = "BENCHMARKS.instructions.json"
if update:
    with open(path, "w") as f:
        json.dump({"profile": "dev", "calls": 200, "instructions_per_call": measured}, f, indent=2)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)
    sys.exit(0)
baseline = json.load(open(path))["instructions_per_call"]
failed = False
for name in ("unsampled", "sampled"):
    growth = measured[name] / baseline[name] - 1
    verdict = "ok" if growth <= 0.10 else "REGRESSION"
    failed |= growth > 0.10
    print(f"{name:<16} {measured[name]:>10} vs baseline {baseline[name]:>10}  {growth:+.1%}  {verdict}", file=sys.stderr)
print(f"instrumentation over the uninstrumented call: sampled {measured['sampled'] - measured['uninstrumented']:+d}, "
      f"unsampled {measured['unsampled'] - measured['uninstrumented']:+d} instructions; "
      f"tta-host uninstrumented / bare fresh instance = {measured['uninstrumented'] / measured['bare_fresh']:.2f}x", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
