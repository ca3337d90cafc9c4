#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine (idempotent, quiet when all is there):
#  - clang: secp256k1-sys (pulled in by the `bitcoin` crate) compiles C code for wasm32, which
#    gcc cannot target; libclang is for RocksDB's bindings (bindgen);
#  - the Rust toolchain and wasm32 target pinned in rust-toolchain.toml;
#  - Rust 1.86 with its wasm32 target: the toolchain Metashrew indexers pin (alkanes-rs), with
#    which scripts/test.sh builds the guest SDK and the `compat` guest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# rustup reads rust-toolchain.toml; this makes sure its target is present even on rustup
# versions that do not install listed targets by themselves.
if command -v rustup >/dev/null 2>&1; then
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  rustup toolchain list | grep -q "^${toolchain}" || rustup toolchain install "$toolchain" --profile minimal
  rustup target list --installed --toolchain "$toolchain" | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown --toolchain "$toolchain"
  rustup component list --installed --toolchain "$toolchain" | grep -q '^clippy' \
    || rustup component add clippy rustfmt --toolchain "$toolchain"
  msrv=1.86.0
  rustup toolchain list | grep -q "^${msrv}" \
    || rustup toolchain install "$msrv" --profile minimal --target wasm32-unknown-unknown
  rustup target list --installed --toolchain "$msrv" | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown --toolchain "$msrv"
fi
