//! `rockshrew snapshot`, `verify`, `migrate`, `rollback` and `upgrade` (`inspect` is in
//! [`crate::inspect`]).

use std::process::ExitCode;

use anyhow::{Context, Result};
use rockshrew_store::RocksStore;
use rockshrew_store::snapshot;
use rockshrew_store::verify::{VerifyError, verify};

use crate::cli::{MigrateArgs, RollbackArgs, SnapshotArgs, UpgradeArgs, VerifyArgs};
use metashrew_storage::Storage;

/// Asks on the terminal whether to go on; `true` at once with `--yes`. Without a terminal to
/// ask on, refuses, naming `--yes`.
fn confirmed(question: &str, yes: bool) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "{question}: not confirmed (no terminal to ask on; pass --yes)"
    );
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Takes the index back to `--height`: through the daemon holding the database if one does,
/// else directly.
pub fn rollback(args: &RollbackArgs) -> Result<()> {
    let label = args.label.as_deref();
    // What the rollback would remove, from a read-only look (a running daemon's database too).
    let look = RocksStore::open_read_only(&args.db_path, label)
        .with_context(|| format!("opening {}", args.db_path.display()))?;
    let tip = look.check_rewind(args.height)?;
    drop(look);
    if tip == args.height {
        println!("the tip is already {tip}: nothing to roll back");
        return Ok(());
    }
    let question = format!(
        "roll index `{}` back from {tip} to {} ({} blocks)?",
        rockshrew_store::namespace_of(label),
        args.height,
        tip - args.height
    );
    if !confirmed(&question, args.yes)? {
        anyhow::bail!("not rolled back");
    }
    let old_tip = match crate::admin::request_rollback(&args.db_path, args.height, label)? {
        Some(old_tip) => old_tip,
        None => {
            let store = open_unheld(&args.db_path, label)?;
            let old_tip = store.rewind(args.height)?;
            store.flush()?;
            old_tip
        }
    };
    println!(
        "rolled back from {old_tip} to {}: the daemon indexes again from {}",
        args.height,
        args.height + 1
    );
    Ok(())
}

/// Records `--indexer` as the module from `--height` on, rolling back to the height before it.
pub fn upgrade(args: &UpgradeArgs) -> Result<()> {
    let label = args.label.as_deref();
    let identity = crate::setup::module_identity(&args.indexer, args.max_guest_memory_mib)?;
    let store = RocksStore::open_existing(&args.db_path, label).with_context(|| {
        format!(
            "opening {} (stop the daemon that holds it first)",
            args.db_path.display()
        )
    })?;
    let tip = store.tip()?.unwrap_or(0);
    let dropped = tip.saturating_sub(args.height.saturating_sub(1));
    let question = format!(
        "index `{}` with {} from height {}{}?",
        store.namespace(),
        args.indexer.display(),
        args.height,
        if dropped > 0 {
            format!(" (rolls back {dropped} blocks, {}..={tip})", args.height)
        } else {
            String::new()
        }
    );
    if !confirmed(&question, args.yes)? {
        anyhow::bail!("not upgraded");
    }
    match store.upgrade(&identity, args.height)? {
        rockshrew_store::Upgraded::AlreadyInUse { from } => {
            println!("this module already indexes from height {from}: nothing to do")
        }
        rockshrew_store::Upgraded::Recorded {
            old_tip,
            rolled_back,
        } => println!(
            "from height {}: {} (tip was {old_tip}, {rolled_back} blocks rolled back). Start the daemon with --indexer {}",
            args.height,
            identity.describe(),
            args.indexer.display()
        ),
    }
    store.flush()?;
    for module in store.module_history()? {
        println!("module {}", module.describe());
    }
    Ok(())
}

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

/// Opens a database for a tool that no daemon answered for through its admin socket.
fn open_unheld(db_path: &std::path::Path, label: Option<&str>) -> Result<RocksStore> {
    RocksStore::open_existing(db_path, label).with_context(|| {
        format!(
            "opening {} (a daemon holding it without an admin socket must be stopped first)",
            db_path.display()
        )
    })
}

/// Takes the snapshot: through the daemon holding the database if one does, else directly.
pub fn snapshot(args: &SnapshotArgs) -> Result<()> {
    let label = args.label.as_deref();
    let manifest = match crate::admin::request_snapshot(&args.db_path, &args.out, label)? {
        Some(manifest) => manifest,
        None => snapshot::take(&open_unheld(&args.db_path, label)?, &args.out)?,
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
            if let Ok(modules) = store.module_history() {
                for module in modules {
                    println!("module {}", module.describe());
                }
            }
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
