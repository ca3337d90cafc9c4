//! `rockshrew snapshot`, `rockshrew verify` and `rockshrew migrate`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use rockshrew_store::RocksStore;
use rockshrew_store::snapshot;
use rockshrew_store::verify::{VerifyError, verify};

use crate::cli::{MigrateArgs, SnapshotArgs, VerifyArgs};

/// Converts a namespace to this build's layout.
pub fn migrate(args: &MigrateArgs) -> Result<()> {
    let outcome = RocksStore::migrate(&args.db_path, args.label.as_deref())
        .with_context(|| format!("migrating {}", args.db_path.display()))?;
    match outcome {
        rockshrew_store::Migrated::AlreadyCurrent => {
            println!(
                "already at layout version {}",
                rockshrew_store::FORMAT_VERSION
            )
        }
        rockshrew_store::Migrated::Converted { keys } => println!(
            "converted to layout version {}: {keys} latest values written",
            rockshrew_store::FORMAT_VERSION
        ),
    }
    Ok(())
}

/// Takes the snapshot: through the daemon holding the database if one does, else directly.
pub fn snapshot(args: &SnapshotArgs) -> Result<()> {
    let label = args.label.as_deref();
    let manifest = match crate::admin::request_snapshot(&args.db_path, &args.out, label)? {
        Some(manifest) => manifest,
        None => {
            let store = RocksStore::open_existing(&args.db_path, label).with_context(|| {
                format!(
                    "opening {} (a daemon holding it without an admin socket must be stopped first)",
                    args.db_path.display()
                )
            })?;
            snapshot::take(&store, &args.out)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

/// Verifies; the exit code says how it went (0 sound, 1 something wrong, 2 unreadable).
pub fn verify_command(args: &VerifyArgs) -> ExitCode {
    let store = match RocksStore::open_read_only(&args.db_path, args.label.as_deref()) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("rockshrew verify: {err}");
            return ExitCode::from(2);
        }
    };
    match verify(&store, &args.expect_root, 10_000) {
        Ok(ok) => {
            println!(
                "ok: blocks {}..={} ({} writes), tip {} root {}",
                ok.first, ok.tip, ok.entries, ok.tip_hash, ok.tip_root
            );
            ExitCode::SUCCESS
        }
        Err(VerifyError::Storage(err)) => {
            eprintln!("rockshrew verify: {err}");
            ExitCode::from(2)
        }
        Err(fault) => {
            println!("FAILED: {fault}");
            ExitCode::from(1)
        }
    }
}
