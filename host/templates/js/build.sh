#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, from index.js with componentize-js
# (installed into node_modules by npm on first use). `http` and `fetch-event` are off,
# so the component imports no wasi:http.
set -euo pipefail
cd "$(dirname "$0")"
cli=node_modules/@bytecodealliance/componentize-js/src/cli.js
if [ ! -f "$cli" ]; then
  echo "installing componentize-js (npm install)" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
fi
node "$cli" index.js --wit wit --world-name primitive-plugin --disable http fetch-event --out {{name}}.wasm
echo "built {{name}}.wasm" >&2
