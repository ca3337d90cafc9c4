#!/usr/bin/env bash
# The project's test command: installs what the build needs, checks formatting, builds the
# example guests to wasm32 (tests/build.rs) and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo test --workspace --locked
