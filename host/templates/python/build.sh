#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, from app.py with componentize-py
# (installed into .venv from PyPI when it is not on PATH).
set -euo pipefail
cd "$(dirname "$0")"
componentize=componentize-py
if ! command -v "$componentize" >/dev/null; then
  componentize=.venv/bin/componentize-py
  if [ ! -x "$componentize" ]; then
    echo "installing componentize-py 0.25.1 into .venv (pip)" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet componentize-py==0.25.1
  fi
fi
"$componentize" --wit-path wit --world primitive-plugin componentize app --output {{name}}.wasm
echo "built {{name}}.wasm" >&2
