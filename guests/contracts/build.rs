//! Compiles the contract (`contract.wat`) to wasm, which the guest embeds and stores.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=contract.wat");
    let wasm = wat::parse_file("contract.wat").expect("contract.wat is valid WAT");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("contract.wasm"), wasm).expect("contract.wasm written");
}
