//! Which indexers a daemon runs: `--indexer` specs (`PATH`, or `LABEL=PATH[@HEIGHT]`,
//! repeatable) or a TOML manifest (`--indexers FILE`), checked and resolved to the
//! list of indexers to run.
//!
//! A manifest lists each indexer under `[[indexer]]`:
//!
//! ```toml
//! [[indexer]]
//! label = "spendables"          # its namespace in the database and its endpoint, POST /spendables
//! path = "spendables.wasm"      # relative to the manifest's directory
//! sha256 = "9f2c..."            # optional: the module must have this SHA-256 (hex)
//! start_height = 0              # optional: first height when its namespace is empty
//! max_memory_mib = 4096         # optional: its guest memory ceiling (--max-guest-memory-mib)
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// What a label must be, for messages.
const LABEL_RULE: &str = "must be 1-64 letters, digits, `-` or `_`, and not `metrics` or `status`";

/// One `--indexer` value: `PATH` (the namespace is `--label`'s), or `LABEL=PATH` with an
/// optional `@HEIGHT`, the first height indexed when its namespace is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexerSpec {
    /// Its label, when given as `LABEL=PATH`.
    pub label: Option<String>,
    /// The wasm module.
    pub path: PathBuf,
    /// Its start height, when given as `...@HEIGHT`.
    pub start: Option<u32>,
}

/// Paths the server answers itself, so no indexer's label.
const RESERVED: [&str; 2] = ["metrics", "status"];

/// Whether `label` can name a namespace and an endpoint: 1-64 ASCII letters, digits, `-`, `_`,
/// and not a path the server answers itself (`metrics`, `status`).
pub fn valid_label(label: &str) -> bool {
    !RESERVED.contains(&label)
        && (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Labels (namespaces), comma-separated, for messages that list them.
pub(crate) fn listed<'a>(labels: impl IntoIterator<Item = &'a str>) -> String {
    labels.into_iter().collect::<Vec<_>>().join(", ")
}

impl FromStr for IndexerSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (label, rest) = match text.split_once('=') {
            Some((label, rest)) if valid_label(label) => (Some(label.to_string()), rest),
            Some((label, _)) if !label.contains('/') => {
                return Err(format!("the label `{label}` {LABEL_RULE}"));
            }
            _ => (None, text),
        };
        let (path, start) = match rest.rsplit_once('@') {
            Some((path, height)) if label.is_some() && !height.contains('/') => {
                let height = height
                    .parse()
                    .map_err(|_| format!("`@{height}` is not a block height"))?;
                (path, Some(height))
            }
            _ => (rest, None),
        };
        if path.is_empty() {
            return Err("the indexer's path is empty".into());
        }
        Ok(Self {
            label,
            path: PathBuf::from(path),
            start,
        })
    }
}

/// A manifest (`--indexers FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    indexer: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    label: String,
    path: PathBuf,
    sha256: Option<String>,
    start_height: Option<u32>,
    max_memory_mib: Option<u64>,
}

/// An indexer to run, once the specs and the manifest are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// Its namespace and endpoint (`None`: `default`, served at `POST /` only).
    pub label: Option<String>,
    /// The module.
    pub path: PathBuf,
    /// The first height indexed when its namespace is empty.
    pub start: u32,
    /// The SHA-256 its module must have.
    pub sha256: Option<[u8; 32]>,
    /// Its guest memory ceiling in MiB, when not `--max-guest-memory-mib`.
    pub max_memory_mib: Option<u64>,
}

/// The indexers named by `specs` or by the manifest at `manifest`; `label` and `start` are
/// `--label` and `--start-block`, which a bare `PATH` uses.
pub(crate) fn plan(
    specs: &[IndexerSpec],
    manifest: Option<&Path>,
    label: Option<&str>,
    start: u32,
) -> Result<Vec<Planned>> {
    let planned = match (manifest, specs) {
        (Some(_), [_, ..]) => bail!("give --indexer or --indexers, not both"),
        (None, []) => bail!("--indexer (or --indexers) is required"),
        (Some(file), []) => read_manifest(file)?,
        (None, [only]) if only.label.is_none() => vec![Planned {
            label: label.map(str::to_string),
            path: only.path.clone(),
            start,
            sha256: None,
            max_memory_mib: None,
        }],
        (None, specs) => {
            if let Some(bare) = specs.iter().find(|s| s.label.is_none()) {
                bail!(
                    "with several indexers each needs a label: `--indexer LABEL={}`",
                    bare.path.display()
                );
            }
            specs
                .iter()
                .map(|s| Planned {
                    label: s.label.clone(),
                    path: s.path.clone(),
                    start: s.start.unwrap_or(start),
                    sha256: None,
                    max_memory_mib: None,
                })
                .collect()
        }
    };
    if planned.len() > 1 && label.is_some() {
        bail!("--label names the one indexer's namespace; with several, each has its own label");
    }
    for (i, p) in planned.iter().enumerate() {
        if let Some(l) = &p.label
            && planned[..i].iter().any(|q| q.label.as_ref() == Some(l))
        {
            bail!("two indexers are labelled `{l}`: each needs a label of its own");
        }
    }
    Ok(planned)
}

fn read_manifest(file: &Path) -> Result<Vec<Planned>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the manifest {}", file.display()))?;
    let manifest: Manifest = toml::from_str(&text)
        .with_context(|| format!("parsing the manifest {}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    manifest
        .indexer
        .into_iter()
        .map(|entry| {
            if !valid_label(&entry.label) {
                bail!(
                    "{}: the label `{}` {LABEL_RULE}",
                    file.display(),
                    entry.label
                );
            }
            let sha256 = entry
                .sha256
                .map(|hex_text| {
                    hex::decode(hex_text.trim())
                        .ok()
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .with_context(|| {
                            format!(
                                "{}: the sha256 of `{}` is not 64 hex digits",
                                file.display(),
                                entry.label
                            )
                        })
                })
                .transpose()?;
            Ok(Planned {
                label: Some(entry.label),
                path: dir.join(entry.path),
                start: entry.start_height.unwrap_or(0),
                sha256,
                max_memory_mib: entry.max_memory_mib,
            })
        })
        .collect::<Result<Vec<_>>>()
        .and_then(|planned| {
            anyhow::ensure!(
                !planned.is_empty(),
                "{} lists no [[indexer]]",
                file.display()
            );
            Ok(planned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> IndexerSpec {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn specs_read_a_path_or_a_label_path_and_height() {
        assert_eq!(
            spec("guests/x.wasm"),
            IndexerSpec {
                label: None,
                path: "guests/x.wasm".into(),
                start: None
            }
        );
        assert_eq!(
            spec("alk=/a/b@c/alkanes.wasm@880000"),
            IndexerSpec {
                label: Some("alk".into()),
                path: "/a/b@c/alkanes.wasm".into(),
                start: Some(880_000)
            }
        );
        // `@` inside a directory name is part of the path.
        assert_eq!(spec("a=/x@y/m.wasm").path, PathBuf::from("/x@y/m.wasm"));
        // A path with `=` in a directory is a path.
        assert_eq!(spec("/tmp/a=b/m.wasm").label, None);
        assert!("bad label=m.wasm".parse::<IndexerSpec>().is_err());
        assert!("status=m.wasm".parse::<IndexerSpec>().is_err());
        assert!("a=m.wasm@tip".parse::<IndexerSpec>().is_err());
        assert!("a=".parse::<IndexerSpec>().is_err());
    }

    #[test]
    fn a_single_bare_indexer_keeps_label_and_start_block_and_several_need_labels() {
        let one = plan(&[spec("m.wasm")], None, Some("ns"), 7).expect("one");
        assert_eq!(one[0].label.as_deref(), Some("ns"));
        assert_eq!(one[0].start, 7);
        let two = plan(&[spec("a=m.wasm@3"), spec("b=n.wasm")], None, None, 7).expect("two");
        assert_eq!((two[0].start, two[1].start), (3, 7));
        let err = |specs: &[IndexerSpec], label| {
            plan(specs, None, label, 0)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&[spec("a=m.wasm"), spec("n.wasm")], None).contains("each needs a label"));
        assert!(err(&[spec("a=m.wasm"), spec("a=n.wasm")], None).contains("labelled `a`"));
        assert!(err(&[spec("a=m.wasm"), spec("b=n.wasm")], Some("x")).contains("--label"));
        assert!(err(&[], None).contains("required"));
    }

    #[test]
    fn a_manifest_gives_labels_pins_starts_and_ceilings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("indexers.toml");
        let pin = "ab".repeat(32);
        std::fs::write(
            &file,
            format!(
                "[[indexer]]\nlabel = \"a\"\npath = \"a.wasm\"\nsha256 = \"{pin}\"\nstart_height = 5\nmax_memory_mib = 512\n\n[[indexer]]\nlabel = \"b\"\npath = \"/abs/b.wasm\"\n"
            ),
        )
        .expect("written");
        let planned = plan(&[], Some(&file), None, 9).expect("manifest");
        assert_eq!(planned[0].path, dir.path().join("a.wasm"));
        assert_eq!(planned[0].sha256, Some([0xab; 32]));
        assert_eq!(
            (planned[0].start, planned[0].max_memory_mib),
            (5, Some(512))
        );
        assert_eq!(planned[1].path, PathBuf::from("/abs/b.wasm"));
        assert_eq!((planned[1].start, planned[1].sha256), (0, None));
        std::fs::write(
            &file,
            "[[indexer]]\nlabel = \"a\"\npath = \"a.wasm\"\nsha = 1\n",
        )
        .expect("written");
        assert!(plan(&[], Some(&file), None, 0).is_err(), "unknown field");
        assert!(plan(&[spec("a=m.wasm")], Some(&file), None, 0).is_err());
    }
}
