//! Compiled modules kept on disk, so that a restart with the same module and settings does not
//! compile it again (seconds for a large indexer).
//!
//! An entry is named by a SHA-256 over the module's hash, the engine's compatibility hash
//! (wasmtime's version and every setting that affects code) and the use it was compiled for,
//! so a changed module or setting looks up another entry. Its file is
//! [`MAGIC`] ++ SHA-256(payload) ++ payload, the payload being wasmtime's serialized module.
//! An entry is trusted only when its checksum matches; one that does not, or that wasmtime
//! refuses, is compiled again and rewritten. Entries are written to a temporary file and
//! renamed, so a crash never leaves half an entry under its name. The directory keeps the
//! [`KEPT_ENTRIES`] most recently used entries.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use metashrew_storage::hashes::sha256;

/// First bytes of an entry file.
const MAGIC: &[u8; 8] = b"mshrwc01";

/// Entries kept in a cache directory (two per module: blocks and views).
pub const KEPT_ENTRIES: usize = 16;

/// What the module cache did for one load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory is configured: the module was compiled.
    Off,
    /// Every compilation came from the cache.
    Hit,
    /// An entry was missing: compiled and stored.
    Miss,
    /// An entry was corrupt or stale (its checksum did not match, or wasmtime refused it):
    /// compiled again and rewritten.
    Rebuilt,
}

impl CacheOutcome {
    /// The outcome of a load made of two compilations.
    pub(crate) fn combine(self, other: CacheOutcome) -> CacheOutcome {
        use CacheOutcome::*;
        match (self, other) {
            (Rebuilt, _) | (_, Rebuilt) => Rebuilt,
            (Miss, _) | (_, Miss) => Miss,
            (Off, _) | (_, Off) => Off,
            (Hit, Hit) => Hit,
        }
    }
}

/// The entry file of `wasm` compiled by `engine` for `usage`, in `dir`.
fn entry_path(dir: &Path, engine: &Engine, wasm_hash: &[u8; 32], usage: &str) -> PathBuf {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut key = wasm_hash.to_vec();
    key.extend_from_slice(&hasher.finish().to_le_bytes());
    key.extend_from_slice(usage.as_bytes());
    let name: String = sha256(&key).iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// The payload of an entry file, if it is whole and its checksum matches.
fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (checksum, payload) = rest.split_at_checked(32)?;
    (sha256(payload) == checksum).then_some(payload)
}

/// The module `wasm` (whose SHA-256 is `wasm_hash`) from its entry in `dir`, or compiled (and
/// stored there).
pub(crate) fn load(
    dir: &Path,
    engine: &Engine,
    wasm: &[u8],
    wasm_hash: &[u8; 32],
    usage: &str,
) -> Result<(Module, CacheOutcome), wasmtime::Error> {
    let path = entry_path(dir, engine, wasm_hash, usage);
    let outcome = match std::fs::read(&path) {
        Err(_) => CacheOutcome::Miss,
        Ok(bytes) => match verified_payload(&bytes) {
            None => {
                log::warn!(
                    "compiled-module cache entry {} is corrupt: compiling again",
                    path.display()
                );
                CacheOutcome::Rebuilt
            }
            Some(payload) => {
                // SAFETY: `Module::deserialize` must only be given bytes that
                // `Module::serialize` produced. These are: the checksum written beside them by
                // `store` below matches, so they are the bytes it wrote (a damaged or truncated
                // file fails the check). Bytes from another wasmtime version or configuration
                // are refused by wasmtime itself with an error. The directory is inside the
                // database directory, which only the daemon's user can write.
                #[allow(unsafe_code)]
                match unsafe { Module::deserialize(engine, payload) } {
                    Ok(module) => {
                        touch(&path);
                        return Ok((module, CacheOutcome::Hit));
                    }
                    Err(err) => {
                        log::warn!(
                            "compiled-module cache entry {} is stale ({err}): compiling again",
                            path.display()
                        );
                        CacheOutcome::Rebuilt
                    }
                }
            }
        },
    };
    let module = Module::new(engine, wasm)?;
    if let Err(err) = store(dir, &path, &module) {
        log::warn!(
            "cannot store the compiled module in {}: {err}",
            dir.display()
        );
    }
    Ok((module, outcome))
}

/// Writes `module`'s entry at `path` (through a temporary file), then trims the directory.
fn store(dir: &Path, path: &Path, module: &Module) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let payload = module.serialize()?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&sha256(&payload));
    bytes.extend_from_slice(&payload);
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, &bytes)?;
    std::fs::rename(&temporary, path)?;
    trim(dir);
    Ok(())
}

/// Marks an entry as just used.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Removes all but the [`KEPT_ENTRIES`] most recently used entries.
fn trim(dir: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = listing
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, old) in entries.into_iter().skip(KEPT_ENTRIES) {
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_entry_with_its_checksum_is_trusted() {
        let payload = b"serialized module".to_vec();
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&sha256(&payload));
        entry.extend_from_slice(&payload);
        assert_eq!(verified_payload(&entry), Some(&payload[..]));
        assert_eq!(verified_payload(&entry[..entry.len() - 1]), None);
        assert_eq!(verified_payload(&entry[..20]), None);
        let mut flipped = entry.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_payload(&flipped), None);
        entry[0] ^= 1;
        assert_eq!(verified_payload(&entry), None);
    }

    #[test]
    fn outcomes_combine_to_the_worst() {
        use CacheOutcome::*;
        assert_eq!(Hit.combine(Hit), Hit);
        assert_eq!(Hit.combine(Miss), Miss);
        assert_eq!(Rebuilt.combine(Hit), Rebuilt);
        assert_eq!(Off.combine(Off), Off);
    }
}
