#!/usr/bin/env bash
# Makes the venv the MCP tests run the official MCP Python SDK from (target/tmp/mcp-venv),
# unless it is there already. tests/all/mcp.rs makes it itself when it is missing; this
# only does it earlier. The pinned release is the tests' (`MCP_SDK` in tests/all/mcp.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tmp/mcp-venv
sdk=$(sed -n 's/^const MCP_SDK: &str = "\(.*\)";$/\1/p' tests/all/mcp.rs)
if "$venv/bin/python" -c "import mcp, httpx2" 2>/dev/null; then
  exit 0
fi
echo "making $venv with $sdk" >&2
mkdir -p target/tmp
python3 -m venv "$venv"
"$venv/bin/pip" install -q "$sdk"
