#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, from the C sources: clang-22 compiles for
# wasm32-wasi against wasi-libc, and wasm-component-ld links and adds the WASI preview1
# adapter. Installs clang-22, wasi-libc (apt) and wasm-component-ld (cargo) when missing.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
command -v clang-22 >/dev/null || missing+=(clang-22 libclang-rt-22-dev-wasm32 lld-22)
[ -e /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt-get)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
linker="$(command -v wasm-component-ld || echo "$HOME/.cargo/bin/wasm-component-ld")"
if [ ! -x "$linker" ]; then
  echo "installing wasm-component-ld (cargo install, about a minute)" >&2
  cargo install --locked wasm-component-ld@0.5.31 >&2
fi
# Debian's clang-22 finds wasi-libc under the wasm32-wasi triple, which it calls deprecated.
PATH="/usr/lib/llvm-22/bin:$PATH" clang-22 --target=wasm32-wasi -Wno-deprecated -mexec-model=reactor \
  -O2 -Wall -Wextra -Isdk ./*.c sdk/primitive_plugin.c sdk/primitive_plugin_component_type.o \
  -fuse-ld="$linker" -o {{name}}.wasm
echo "built {{name}}.wasm" >&2
