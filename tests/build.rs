//! Builds the example guests (`guests/*`) to `wasm32-unknown-unknown` with the `guest` profile
//! and tells the tests where the `.wasm` files are (`MINIMAL_WASM`, `SPENDABLES_WASM`,
//! `PROBE_WASM`). The nested cargo uses its own target directory, so it never waits on the
//! outer build's lock.

use std::path::PathBuf;
use std::process::Command;

const GUESTS: [&str; 3] = ["minimal", "spendables", "probe"];

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in GUESTS {
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
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("failed to run cargo for the guests");
    assert!(
        status.success(),
        "building the example guests to wasm32 failed"
    );
    for guest in GUESTS {
        let wasm = target_dir
            .join("wasm32-unknown-unknown")
            .join("guest")
            .join(format!("{guest}.wasm"));
        assert!(wasm.exists(), "guest build produced no {}", wasm.display());
        println!(
            "cargo:rustc-env={}_WASM={}",
            guest.to_uppercase(),
            wasm.display()
        );
    }
}
