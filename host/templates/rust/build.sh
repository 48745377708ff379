#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, from this crate.
# Uses rustup's wasm32-wasip2 target when installed; otherwise Debian's Rust building std
# from source (packages rustc-web cargo-web rust-web-src lld-22 wasi-libc, and
# wasm-component-ld from crates.io), installing what is missing.
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-target}"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  cargo build --release --target wasm32-wasip2
else
  missing=()
  for check in /usr/bin/cargo:cargo-web /usr/lib/rustlib/src/rust/library:rust-web-src \
               /usr/lib/llvm-22/bin/wasm-ld:lld-22 /usr/lib/wasm32-wasi/libc.a:wasi-libc; do
    [ -e "${check%%:*}" ] || missing+=("${check##*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} rustc-web (apt-get)" >&2
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web "${missing[@]}" >&2 \
      || { echo "error: could not install ${missing[*]}; or run: rustup target add wasm32-wasip2" >&2; exit 1; }
  fi
  if ! command -v wasm-component-ld >/dev/null && [ ! -x "$HOME/.cargo/bin/wasm-component-ld" ]; then
    echo "installing wasm-component-ld (cargo install, about a minute)" >&2
    cargo install --locked wasm-component-ld@0.5.31 >&2
  fi
  PATH="/usr/lib/llvm-22/bin:/usr/bin:$PATH:$HOME/.cargo/bin" RUSTFLAGS="-L /usr/lib/wasm32-wasi" RUSTC_BOOTSTRAP=1 \
    env -u RUSTC -u RUSTUP_TOOLCHAIN -u CARGO /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target wasm32-wasip2
fi
cp "$target_dir/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm" >&2
