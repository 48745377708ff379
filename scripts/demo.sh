#!/usr/bin/env bash
# The demo: builds the host and every plugin from source (installing the guest toolchain
# if it is missing), loads the plugins, and runs a few calls, good and bad.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "building tta-host and the stand-in LLM provider (release)"
cargo build --release --locked -p tta-host -p tta-llm-standin
step "building the plugins from source (cargo xtask plugins)"
cargo xtask plugins

tta=./target/release/tta-host
step "tta-host load plugins/*.wasm"
"$tta" load plugins/*.wasm

step "tta-host run orchestrator: calls uppercase and word-count through invoke"
"$tta" run orchestrator --input '{"text": "Every guest call is traced, metered and correlated"}'
echo

step "tta-host run orchestrator --trace: the trace as a tree (host spans, guest spans, events, logs)"
"$tta" run orchestrator --input '{"text": "one trace across three components"}' --trace >/dev/null
echo

step "the same call with JSON logs (the TTA.dev log format), joined to an incoming W3C traceparent"
"$tta" --log-format json run word-count --input '{"text": "a b c"}' --correlation-id req-abc-123 \
  --traceparent 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
echo

step "one primitive in Python, JavaScript and C: the same output, span, log and metric from each"
for name in slugify-py slugify-js slugify-c; do
  "$tta" run "$name" --input '{"text": "Hello, WebAssembly components!"}' --trace
  echo
done

step "a guest instrumented with the OpenTelemetry SDK over wasi:otel: its spans land under the call"
"$tta" run tests/fixtures/otel-sdk.wasm --input '{}' --trace >/dev/null
echo

step "tta-host new hello --lang c: a new primitive project, built and run on the first try"
scratch="$(mktemp -d)"
"$tta" new hello --lang c --dir "$scratch/hello"
"$scratch/hello/build.sh"
(cd "$scratch/hello" && "$OLDPWD/$tta" run hello.wasm --input-file input.json --trace)
rm -rf "$scratch"
echo

step "the metrics of one run, in the Prometheus exposition /metrics serves (excerpt)"
"$tta" run orchestrator --input '{"text": "metered"}' --print-metrics 2>&1 >/dev/null |
  grep -E '^(primitive_executions_total|primitive_duration_seconds_(count|sum)|primitive_fuel_consumed_sum|tta_guest_)' || true
echo

step "an LLM-style primitive reports tokens and cost as llm.* span attributes; the host turns them into llm_* metrics"
"$tta" run summarize --input '{"text": "Every guest call is traced. Fuel is metered. Cost is tracked per model.", "model": "extractive-large"}' \
  --print-metrics 2>&1 >/dev/null | grep -E '^llm_' || true
echo

step "tta-host validate workflows/*.toml, then run the LLM-style pipeline workflow with its trace"
"$tta" validate workflows/*.toml
"$tta" run workflows/llm-pipeline.toml --input '{"text": "Every guest call is traced. Fuel is metered. Cost is tracked per model.", "tier": "thorough"}' --trace
echo

step "a real LLM call: the assistant workflow (validate, route by size, llm_call with retry and a fallback model, format)"
# Against $TTA_LLM_BASE_URL (OpenAI, a local Ollama, …; key in $OPENAI_API_KEY, model in
# $TTA_LLM_MODEL) when set, else against a stand-in OpenAI-compatible provider on loopback.
standin_pid=
if [ -n "${TTA_LLM_BASE_URL:-}" ]; then
  base="$TTA_LLM_BASE_URL"
  model="${TTA_LLM_MODEL:-gpt-4o-mini}"
  key_var=OPENAI_API_KEY
else
  export TTA_DEMO_LLM_KEY="sk-demo-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  rm -f target/demo-llm.url
  ./target/release/llm-standin --api-key-env TTA_DEMO_LLM_KEY >target/demo-llm.url &
  standin_pid=$!
  for _ in $(seq 50); do [ -s target/demo-llm.url ] && break; sleep 0.1; done
  base="$(head -1 target/demo-llm.url)"
  model=gpt-4o-mini
  key_var=TTA_DEMO_LLM_KEY
fi
origin="$(printf '%s' "$base" | sed -E 's#^(https?://[^/]+).*#\1#')"
secret=()
[ -n "${!key_var:-}" ] && secret=(--secret "api_key=env:$key_var")
"$tta" run workflows/llm-assistant.toml --input '{"question": "What does a WebAssembly sandbox protect a host from?"}' \
  --config-value "base_url=$base" --config-value "model=$model" --config-value stream=true \
  "${secret[@]}" --allow-http "$origin" --trace || echo "exit code $?"
echo
[ -n "$standin_pid" ] && kill "$standin_pid"

step "the order saga with a declined card: the completed reservation is compensated (exit code 4)"
"$tta" run workflows/order-saga.toml --input '{"sku": "book-42", "qty": 1, "amount": 2000}' --trace || echo "exit code $?"

step "tta-host run json-validate on a bad record: the guest's typed error, exit code 4"
"$tta" run json-validate --input '{"name": "", "age": 200}' || echo "exit code $?"

step "tta-host run spin-forever with a 200 ms deadline: the sandbox stops it, exit code 6"
"$tta" run tests/fixtures/spin-forever.wasm --fuel 100000000000 --timeout-ms 200 || echo "exit code $?"

step "tta-host run memory-hog: stopped at the 256 MiB memory limit, exit code 6"
"$tta" run tests/fixtures/memory-hog.wasm || echo "exit code $?"

step "tta-host serve: the multi-tenant HTTP API (deploy/tta.toml, two tenants), checked first"
"$tta" --config deploy/tta.toml serve --check
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
"$tta" --config deploy/tta.toml --no-metrics serve --listen 127.0.0.1:18080 --uploads-dir target/demo-uploads 2>target/demo-serve.log &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf localhost:18080/readyz >/dev/null && break; sleep 0.1; done
api=http://127.0.0.1:18080
step "POST /v1/primitives/word-count/execute as tenant acme, joined to a caller's trace"
curl -s -D - "$api/v1/primitives/word-count/execute" -H 'Authorization: Bearer demo-acme-key' \
  -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' -H 'x-correlation-id: demo-1' \
  -d '{"text": "served over HTTP"}'
echo
step "the same with no key (401), and tenant beta asking for a primitive it may not use (404)"
curl -s "$api/v1/primitives/word-count/execute" -d '{}'; echo
curl -s "$api/v1/primitives/summarize/execute" -H 'Authorization: Bearer demo-beta-key' -d '{}'; echo
step "tenant acme uploads an infinite loop and runs it: its fuel quota stops it, a problem document"
curl -s -X PUT "$api/v1/primitives/spin-forever" -H 'Authorization: Bearer demo-acme-key' \
  --data-binary @tests/fixtures/spin-forever.wasm >/dev/null
curl -s "$api/v1/primitives/spin-forever/execute" -H 'Authorization: Bearer demo-acme-key' -d '{}'; echo
step "POST /v1/workflows/text-report/run as tenant beta"
curl -s "$api/v1/workflows/text-report/run" -H 'Authorization: Bearer demo-beta-key' -d '{"text": "one two three"}'; echo
step "GET /v1/traces as tenant acme: its recent traces, kept in memory (open $api/ui with the key for the waterfall)"
sleep 1.2
curl -s "$api/v1/traces?limit=3" -H 'Authorization: Bearer demo-acme-key'; echo
step "tta-host run --flamegraph: where a workflow's fuel went (target/demo-flamegraph.svg), as folded stacks"
"$tta" run workflows/text-report.toml --input '{"text": "one two three"}' --flamegraph target/demo-flamegraph.svg \
  --folded target/demo-folded.txt >/dev/null 2>&1
cat target/demo-folded.txt
step "tta-host run --record, then replay: the workflow run again on its recorded answers, and on a changed component"
"$tta" run workflows/text-report.toml --input '{"text": "one two three"}' --record target/demo.ttarec >/dev/null
"$tta" replay target/demo.ttarec
"$tta" run tests/fixtures/clock-random.wasm --input '{"change": "import"}' --record target/demo-clock.ttarec >/dev/null
"$tta" replay target/demo-clock.ttarec --with tests/fixtures/clock-random-v2.wasm || echo "(exit $?: the new version asked an import differently)"
step "SIGTERM: the server drains and exits; its access log"
kill -TERM "$serve_pid"; wait "$serve_pid" || true
grep http_request target/demo-serve.log | tail -5
