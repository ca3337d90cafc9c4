#!/usr/bin/env bash
# Checks that a real Metashrew indexer builds and passes its own tests against this repository's
# SDK after changing only Cargo dependencies: protorune (with protorune-support and ordinals) from
# an alkanes-rs checkout, which pins Metashrew v9.0.5-rc.8 and Rust 1.86.
#
#   scripts/port-check.sh PATH_TO_ALKANES_RS   # a clone or bare mirror; its HEAD is used
#
# Nothing of alkanes-rs is copied into this repository: the crates are exported to a scratch
# directory (PORT_DIR, default a new temporary one), their two `metashrew-*` dependencies are
# pointed at ../metashrew-core and ../metashrew-support, and alkanes-rs's own Cargo.lock pins the
# rest. Then, with Rust 1.86: `cargo check` for wasm32, and, when `wasm-bindgen-test-runner`
# 0.2.100 is on PATH (`cargo install wasm-bindgen-cli --version 0.2.100 --locked`) and Node.js is
# installed, protorune's wasm-bindgen tests with `--features test-utils`. Needs `protoc`
# (protorune-support's build script) and the crates.io registry.
set -euo pipefail
src=${1:?usage: scripts/port-check.sh PATH_TO_ALKANES_RS}
here=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT_DIR:-$(mktemp -d)}
crates=(crates/protorune crates/protorune-support crates/ordinals)

git -C "$src" archive HEAD "${crates[@]}" | tar -x -C "$port"
git -C "$src" show HEAD:Cargo.lock > "$port/Cargo.lock"
# alkanes-rs's own versions of the third-party dependencies these crates inherit.
deps=$(git -C "$src" show HEAD:Cargo.toml |
  sed -n '/^\[workspace.dependencies\]/,/^\[/p' |
  grep -E '^(anyhow|bitcoin|ruint|wasm-bindgen|wasm-bindgen-test|byteorder|serde|serde_json|hex|prost|prost-types|prost-build|once_cell) =')
cat > "$port/Cargo.toml" <<EOF
[workspace]
resolver = "2"
members = ["crates/protorune", "crates/protorune-support", "crates/ordinals"]

[workspace.package]
version = "0.0.0"
edition = "2021"
description = "protorune built against rockshrew's metashrew SDK"
license = "MIT"
repository = "https://github.com/kungfuflex/alkanes-rs"

[workspace.dependencies]
$deps
metashrew-core = { path = "$here/metashrew-core" }
metashrew-support = { path = "$here/metashrew-support" }
ordinals = { path = "./crates/ordinals" }
protorune = { path = "./crates/protorune" }
protorune-support = { path = "./crates/protorune-support" }
EOF
# The one other dependency line: protorune's dev-dependency on Metashrew with `test-utils`.
sed -i -E "s|^metashrew-core = \{ git = [^,]*, tag = [^,]*, features = \[\"test-utils\"\] \}|metashrew-core = { path = \"$here/metashrew-core\", features = [\"test-utils\"] }|" \
  "$port/crates/protorune/Cargo.toml"
if grep -rq 'git = "https://github.com/[^"]*/metashrew"' "$port"/crates/*/Cargo.toml; then
  echo "port-check: a metashrew git dependency was left unpatched in $port" >&2
  exit 1
fi

cd "$port"
echo "port-check: checking protorune for wasm32 with Rust 1.86 in $port"
cargo +1.86.0 check --target wasm32-unknown-unknown -p protorune
if command -v wasm-bindgen-test-runner > /dev/null && command -v node > /dev/null; then
  echo "port-check: running protorune's wasm-bindgen tests with test-utils"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo +1.86.0 test --target wasm32-unknown-unknown -p protorune --features test-utils
else
  echo "port-check: wasm-bindgen-test-runner or node not on PATH; tests skipped" >&2
fi
