#!/usr/bin/env bash
# The project's test command: installs what the build needs, checks formatting and clippy (with
# the workspace lints, warnings denied) and the docs (warnings denied), checks that the
# guest SDK and a guest written against it build and pass their tests with Rust 1.86 (the
# toolchain Metashrew indexers pin), builds the example guests to wasm32 (integration/build.rs) and
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
# The host triple named explicitly: cargo then builds build-script dependencies the same way for
# clippy's check and for the tests, so RocksDB's C++ is compiled once, not twice.
host=(--target "$(rustc -vV | sed -n 's/^host: //p')")
cargo clippy --workspace --all-targets --locked "${host[@]}" -- -D warnings
# Every public item's docs build, intra-doc links resolve.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked "${host[@]}"
msrv=(--locked --target-dir target/msrv)
cargo +1.86.0 build "${msrv[@]}" --target wasm32-unknown-unknown \
  -p metashrew-support -p metashrew-core -p compat
cargo +1.86.0 check "${msrv[@]}" --target wasm32-unknown-unknown -p metashrew-core \
  --features test-utils,debug-log
cargo +1.86.0 test "${msrv[@]}" -p metashrew-support -p metashrew-core
cargo +1.86.0 test "${msrv[@]}" -p metashrew-core --features debug-log
cargo test --workspace --locked "${host[@]}"
