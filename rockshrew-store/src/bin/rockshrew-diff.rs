//! `rockshrew-diff A B [--label L]`: names the first height where two databases of the same
//! indexer diverge and the first key whose value differs there. Exits 0 when identical, 1 when
//! they differ, 2 on error.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rockshrew_store::RocksStore;
use rockshrew_store::diff::diff;

#[derive(Parser)]
#[command(name = "rockshrew-diff", version)]
struct Args {
    /// First database directory.
    a: PathBuf,
    /// Second database directory.
    b: PathBuf,
    /// Index namespace to compare (default: the unlabeled one).
    #[arg(long)]
    label: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let open = |path: &PathBuf| RocksStore::open_read_only(path, args.label.as_deref());
    let (a, b) = match (open(&args.a), open(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("rockshrew-diff: {e}");
            return ExitCode::from(2);
        }
    };
    match diff(&a, &b) {
        Ok(d) => {
            println!("{}", d.describe());
            if d.differs() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("rockshrew-diff: {e}");
            ExitCode::from(2)
        }
    }
}
