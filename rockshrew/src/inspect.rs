//! `rockshrew inspect`: prints what an index holds, as text or JSON, from a read-only open of
//! the database (so also while a daemon writes it: it then sees what was written when it
//! opened). The reads are `rockshrew_store::inspect`'s, which never scan more than they return.

use anyhow::{Context, Result};
use metashrew_storage::Storage;
use rockshrew_store::RocksStore;
use rockshrew_store::inspect::Version;
use serde_json::{Value, json};

use crate::cli::{Inspect, InspectArgs};

/// A key on the command line: hex (`0x..` or bare digits), or text after a leading `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyArg(pub Vec<u8>);

impl std::str::FromStr for KeyArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(literal) = text.strip_prefix('=') {
            return Ok(Self(literal.as_bytes().to_vec()));
        }
        let digits = text.strip_prefix("0x").unwrap_or(text);
        hex::decode(digits).map(Self).map_err(|e| {
            format!(
                "{text:?} is not hex ({e}); write a text key with a leading `=`, as `=/balances/`"
            )
        })
    }
}

/// `bytes` as text where it is printable ASCII, with a `.` for every other byte.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// A value as JSON: hex and the printable rendering.
fn bytes_json(bytes: &[u8]) -> Value {
    json!({"hex": hex::encode(bytes), "text": printable(bytes)})
}

/// A value as a line of text: `0x<hex>  "<printable>"` (`(deleted)` when empty).
fn bytes_text(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(deleted)".into();
    }
    format!("0x{}  {:?}", hex::encode(bytes), printable(bytes))
}

fn version_json(version: &Version) -> Value {
    json!({"height": version.height, "value": bytes_json(&version.value)})
}

/// Runs `rockshrew inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    let store = RocksStore::open_read_only(&args.db_path, args.label.as_deref())
        .with_context(|| format!("opening {}", args.db_path.display()))?;
    let tip = store.tip()?;
    let at = |height: Option<u32>| {
        height
            .or(tip)
            .with_context(|| format!("nothing is indexed in `{}`", store.namespace()))
    };
    let (json, text) = match &args.what {
        Inspect::Get { key, height } => {
            let height = at(*height)?;
            let found = store.version_at(&key.0, height)?;
            let json = json!({
                "key": bytes_json(&key.0),
                "at": height,
                "written_at": found.as_ref().map(|v| v.height),
                "value": found.as_ref().map(|v| bytes_json(&v.value)),
            });
            let text = match found {
                Some(v) if !v.value.is_empty() => {
                    format!("{}\n(written at height {})", bytes_text(&v.value), v.height)
                }
                Some(v) => format!("absent at height {height} (deleted at height {})", v.height),
                None => format!("absent at height {height} (never written)"),
            };
            (json, text)
        }
        Inspect::History { key, height, limit } => {
            let versions = store.key_history(&key.0, at(*height)?, *limit)?;
            let json = json!({
                "key": bytes_json(&key.0),
                "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            });
            let text = versions
                .iter()
                .map(|v| format!("{:>10}  {}", v.height, bytes_text(&v.value)))
                .collect::<Vec<_>>()
                .join("\n");
            (json, text)
        }
        Inspect::Keys {
            prefix,
            after,
            limit,
        } => {
            let keys =
                store.keys_under(&prefix.0, after.as_ref().map(|a| a.0.as_slice()), *limit)?;
            let next = (keys.len() == *limit)
                .then(|| keys.last().map(|(k, _)| format!("0x{}", hex::encode(k))))
                .flatten();
            let json = json!({
                "prefix": bytes_json(&prefix.0),
                "keys": keys.iter().map(|(k, v)| json!({
                    "key": bytes_json(k),
                    "height": v.height,
                    "value": bytes_json(&v.value),
                })).collect::<Vec<_>>(),
                "next_after": next,
            });
            let mut lines: Vec<String> = keys
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}\n    {}  (height {})",
                        bytes_text(k),
                        bytes_text(&v.value),
                        v.height
                    )
                })
                .collect();
            if let Some(next) = next {
                lines.push(format!("(more: --after {next})"));
            }
            (json, lines.join("\n"))
        }
        Inspect::Block { height, limit } => {
            let (writes, shown) = store
                .block_writes(*height, *limit)?
                .with_context(|| format!("height {height} is not indexed"))?;
            let json = json!({
                "height": height,
                "writes": writes,
                "shown": shown.iter().map(|(k, v)| json!({
                    "key": bytes_json(k),
                    "value": bytes_json(v),
                })).collect::<Vec<_>>(),
            });
            let mut lines = vec![format!("block {height}: {writes} writes")];
            lines.extend(
                shown
                    .iter()
                    .map(|(k, v)| format!("{}\n    {}", bytes_text(k), bytes_text(v))),
            );
            if shown.len() < writes {
                lines.push(format!("({} more: raise --limit)", writes - shown.len()));
            }
            (json, lines.join("\n"))
        }
        Inspect::Status => {
            let modules = store.module_history()?;
            let first = store.first_height()?;
            let json = json!({
                "namespace": store.namespace(),
                "first": first,
                "tip": tip,
                "modules": modules.iter().map(crate::rpc::status::module_json).collect::<Vec<_>>(),
            });
            let mut lines = vec![format!(
                "index `{}`: {}",
                store.namespace(),
                match (first, tip) {
                    (Some(first), Some(tip)) => format!("heights {first}..={tip}"),
                    _ => "empty".into(),
                }
            )];
            lines.extend(modules.iter().map(|m| format!("module {}", m.describe())));
            (json, lines.join("\n"))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_or_text_after_an_equals_sign() {
        assert_eq!("0x2f61".parse::<KeyArg>(), Ok(KeyArg(b"/a".to_vec())));
        assert_eq!("2f61".parse::<KeyArg>(), Ok(KeyArg(b"/a".to_vec())));
        assert_eq!("=/a".parse::<KeyArg>(), Ok(KeyArg(b"/a".to_vec())));
        assert_eq!("0x".parse::<KeyArg>(), Ok(KeyArg(Vec::new())));
        let err = "/a".parse::<KeyArg>().unwrap_err();
        assert!(err.contains("leading `=`"), "{err}");
    }

    #[test]
    fn values_print_as_hex_and_their_printable_bytes() {
        assert_eq!(bytes_text(b"ab\x00c"), "0x61620063  \"ab.c\"");
        assert_eq!(bytes_text(b""), "(deleted)");
    }
}
