//! Builds the example guests (`guests/*`) to `wasm32-unknown-unknown` with the `guest` profile
//! and tells the tests where the `.wasm` files are (`MINIMAL_WASM`, `SPENDABLES_WASM`,
//! `PROBE_WASM`, `COMPAT_WASM`, `CONTRACTS_WASM`). It also builds `spendables` (only it: [`VARIANT_GUESTS`]) with
//! other preallocated-region sizes (`METASHREW_REGION_SIZE`): 0 (no guest cache) and 65,536
//! bytes (a cache so small that it evicts on every block), as `SPENDABLES_NOCACHE_WASM` and
//! `SPENDABLES_TINYCACHE_WASM`. The nested cargo uses its own target directory, so it never
//! waits on the outer build's lock.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: [&str; 5] = ["minimal", "spendables", "probe", "compat", "contracts"];
const VARIANTS: [(&str, &str); 2] = [("NOCACHE", "0"), ("TINYCACHE", "65536")];
const VARIANT_GUESTS: [&str; 1] = ["spendables"];

fn build(root: &Path, target_dir: &Path, guests: &[&str], region_size: Option<&str>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    for guest in guests {
        command.args(["-p", guest]);
    }
    // Settings meant for the outer (host) build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "METASHREW_REGION_SIZE",
    ] {
        command.env_remove(var);
    }
    if let Some(size) = region_size {
        command.env("METASHREW_REGION_SIZE", size);
    }
    let status = command
        .status()
        .expect("failed to run cargo for the guests");
    assert!(
        status.success(),
        "building the example guests to wasm32 failed"
    );
}

fn output(target_dir: &Path, guest: &str) -> PathBuf {
    target_dir
        .join("wasm32-unknown-unknown")
        .join("guest")
        .join(format!("{guest}.wasm"))
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf();
    for watched in [
        "guests",
        "metashrew-core",
        "metashrew-support",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("guests");
    let variants_dir = target_dir.join("variants");
    std::fs::create_dir_all(&variants_dir).expect("variants directory");

    // Variants first (each rebuilds only the crates that read METASHREW_REGION_SIZE), copied
    // aside; then the default build, which stays in place.
    for (name, size) in VARIANTS {
        build(&root, &target_dir, &VARIANT_GUESTS, Some(size));
        for guest in VARIANT_GUESTS {
            let to = variants_dir.join(format!("{guest}-{}.wasm", name.to_lowercase()));
            std::fs::copy(output(&target_dir, guest), &to).expect("copy a guest variant");
            println!(
                "cargo:rustc-env={}_{name}_WASM={}",
                guest.to_uppercase(),
                to.display()
            );
        }
    }
    build(&root, &target_dir, &GUESTS, None);
    for guest in GUESTS {
        let wasm = output(&target_dir, guest);
        assert!(wasm.exists(), "guest build produced no {}", wasm.display());
        println!(
            "cargo:rustc-env={}_WASM={}",
            guest.to_uppercase(),
            wasm.display()
        );
    }
}
