//! Which module indexed which heights, and the operator's two ways of changing that: rolling
//! the index back to a height ([`RocksStore::rewind`]) and using another module from a height
//! on ([`RocksStore::upgrade`]).
//!
//! The metadata family holds `module/ ++ u32 BE from` -> the [`IndexIdentity`] that indexes
//! from that height on, until the next entry's height. The newest entry is the namespace's
//! identity (also kept under `identity`, which every open checks). The first entry is written
//! when a namespace is created, or when a namespace written before this history existed is
//! first opened for indexing (then at its first indexed height).
//!
//! Both changes are made of two atomic writes, ordered so that a crash between them leaves a
//! namespace that either daemon refuses or that is consistent, and that running the same
//! command again completes: a rewind first forgets the modules of the heights it removes, then
//! removes them; an upgrade first rolls back, then records the module.

use metashrew_storage::{Storage, StorageError};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::{Family, IDENTITY, IndexIdentity, RocksStore, backend};

/// The metadata key prefix of the module history.
const MODULE: &[u8] = b"module/";

fn module_key(from: u32) -> Vec<u8> {
    [MODULE, &from.to_be_bytes()].concat()
}

/// One module of a namespace's history and the heights it indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRange {
    /// The module and its settings.
    pub identity: IndexIdentity,
    /// The first height it indexes (or would index: a module recorded at the tip + 1 has
    /// indexed nothing yet).
    pub from: u32,
    /// The last height it indexed: the next module's first height - 1, or the tip. `None` when
    /// it indexed nothing.
    pub to: Option<u32>,
}

impl ModuleRange {
    /// `from..=to` (or `from.., nothing indexed yet`), then the identity, for logs and tools.
    pub fn describe(&self) -> String {
        let heights = match self.to {
            Some(to) => format!("heights {}..={to}", self.from),
            None => format!("from height {} (nothing indexed yet)", self.from),
        };
        format!("{heights}: {}", self.identity.describe())
    }
}

/// Why a rewind or an upgrade was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The namespace holds no block.
    #[error("nothing is indexed in namespace `{0}`")]
    Empty(String),
    /// A height below what the history keeps.
    #[error(
        "cannot go back to height {height}: the history starts at the first indexed height {first}, and the index can be rolled back to any height from {first} to the tip {tip} (to start over, index into a new --db-path or --label)"
    )]
    BelowFirst {
        /// The height asked for.
        height: u32,
        /// The first indexed height.
        first: u32,
        /// The tip.
        tip: u32,
    },
    /// A rollback above the tip.
    #[error("cannot roll back to height {height}: the tip is {tip}")]
    AboveTip {
        /// The height asked for.
        height: u32,
        /// The tip.
        tip: u32,
    },
    /// An upgrade from a height that is not indexed yet and does not follow the tip.
    #[error(
        "cannot use a module from height {height}: the tip is {tip}, so the next block is {next}. Index up to {before} with the current module first (`--exit-at {before}`), then upgrade at {height}",
        next = .tip + 1,
        before = .height - 1
    )]
    AfterNext {
        /// The height asked for.
        height: u32,
        /// The tip.
        tip: u32,
    },
    /// An upgrade from the first indexed height or below: nothing of the old module would be
    /// left.
    #[error(
        "a module cannot take over from height {height}: it must start above the first indexed height {first}. To index every block with it, index into a new --db-path or --label"
    )]
    AtFirst {
        /// The height asked for.
        height: u32,
        /// The first indexed height.
        first: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What [`RocksStore::upgrade`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgraded {
    /// The module already indexes from this height or earlier: nothing was changed.
    AlreadyInUse {
        /// Its first height.
        from: u32,
    },
    /// The module was recorded from the height; the blocks from there on were rolled back.
    Recorded {
        /// The tip before.
        old_tip: u32,
        /// Blocks rolled back (0 when the height was the tip + 1).
        rolled_back: u32,
    },
}

impl RocksStore {
    /// The recorded entries: (first height, module), oldest first.
    fn module_entries(&self) -> Result<Vec<(u32, IndexIdentity)>, StorageError> {
        let meta = self.cf(Family::Meta)?;
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(meta, IteratorMode::From(MODULE, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| backend("reading the module history", e))?;
            let Some(height) = key.strip_prefix(MODULE) else {
                break;
            };
            let from = crate::be_u32(height)?;
            let identity = IndexIdentity::decode(&value).ok_or_else(|| {
                StorageError::Corrupt(format!("the module recorded from height {from}"))
            })?;
            entries.push((from, identity));
        }
        Ok(entries)
    }

    /// The namespace's module history, oldest first.
    pub fn module_history(&self) -> Result<Vec<ModuleRange>, StorageError> {
        let mut entries = self.module_entries()?;
        if entries.is_empty() {
            // Written before the history existed (not yet opened for indexing since): its
            // identity, from its first height, as `ensure_module_history` will record it.
            let stored = self
                .db
                .get_cf(self.cf(Family::Meta)?, IDENTITY)
                .map_err(|e| backend("reading the index identity", e))?;
            if let Some(identity) = stored.as_deref().and_then(IndexIdentity::decode) {
                entries.push((self.first_height()?.unwrap_or(0), identity));
            }
        }
        let tip = self.tip()?;
        let mut out = Vec::with_capacity(entries.len());
        for (i, (from, identity)) in entries.iter().enumerate() {
            let last = match entries.get(i + 1) {
                Some((next, _)) => next.checked_sub(1),
                None => tip,
            };
            // Never past the tip, and nothing when the range is empty.
            let to = last
                .zip(tip)
                .map(|(last, tip)| last.min(tip))
                .filter(|last| last >= from);
            out.push(ModuleRange {
                identity: identity.clone(),
                from: *from,
                to,
            });
        }
        Ok(out)
    }

    /// Adds `identity` to the history from `from` on, and makes it the namespace's identity,
    /// forgetting any module recorded from `from` or later.
    pub(crate) fn record_module(
        &self,
        identity: &IndexIdentity,
        from: u32,
    ) -> Result<(), StorageError> {
        let meta = self.cf(Family::Meta)?;
        let mut batch = WriteBatch::default();
        for (later, _) in self.module_entries()?.iter().filter(|(f, _)| *f >= from) {
            batch.delete_cf(meta, module_key(*later));
        }
        batch.put_cf(meta, module_key(from), identity.encode());
        batch.put_cf(meta, IDENTITY, identity.encode());
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| backend("recording the module history", e))
    }

    /// The history must name the module in use: a namespace from before the history existed
    /// gets its identity recorded from its first height (or 0 when empty).
    pub(crate) fn ensure_module_history(
        &self,
        identity: &IndexIdentity,
    ) -> Result<(), StorageError> {
        if self.module_entries()?.is_empty() {
            self.record_module(identity, self.first_height()?.unwrap_or(0))?;
        }
        Ok(())
    }

    /// The first and tip heights, or [`ChangeError::Empty`].
    fn indexed(&self) -> Result<(u32, u32), ChangeError> {
        match (self.first_height()?, self.tip()?) {
            (Some(first), Some(tip)) => Ok((first, tip)),
            _ => Err(ChangeError::Empty(self.namespace.clone())),
        }
    }

    /// Checks that the index can be taken back to `height`: the heights it has from the first
    /// to the tip. Returns the tip.
    pub fn check_rewind(&self, height: u32) -> Result<u32, ChangeError> {
        let (first, tip) = self.indexed()?;
        if height < first {
            return Err(ChangeError::BelowFirst { height, first, tip });
        }
        if height > tip {
            return Err(ChangeError::AboveTip { height, tip });
        }
        Ok(tip)
    }

    /// Whether taking the index back to `height` forgets a module (one recorded from above
    /// `height + 1`): the running daemon's module would then no longer be the index's.
    pub fn rewind_forgets_a_module(&self, height: u32) -> Result<bool, StorageError> {
        Ok(self
            .module_history()?
            .iter()
            .any(|m| m.from > height.saturating_add(1)))
    }

    /// Takes the index back to `height` exactly, as a reorganisation would (history, latest
    /// values, hashes and roots; headers above the tip are ignored until overwritten), and
    /// forgets the modules recorded from above `height + 1`: the namespace's identity is then
    /// the module that indexed `height`. For a database no daemon holds. Returns the old tip.
    pub fn rewind(&self, height: u32) -> Result<u32, ChangeError> {
        let tip = self.check_rewind(height)?;
        let history = self.module_history()?;
        if let Some(kept) = history
            .iter()
            .rev()
            .find(|m| m.from <= height.saturating_add(1))
            && history.iter().any(|m| m.from > height.saturating_add(1))
        {
            self.record_module(&kept.identity, kept.from)?;
        }
        self.rollback_to(height)?;
        Ok(tip)
    }

    /// Indexes with `identity` from `from` on: rolls the index back to `from - 1` when it is
    /// above, then records the module. `from` must be above the first indexed height and at
    /// most the tip + 1. For a database no daemon holds.
    pub fn upgrade(&self, identity: &IndexIdentity, from: u32) -> Result<Upgraded, ChangeError> {
        let (first, tip) = self.indexed()?;
        if let Some(current) = self.module_history()?.last()
            && current.identity == *identity
            && current.from <= from
        {
            return Ok(Upgraded::AlreadyInUse { from: current.from });
        }
        if from > tip.saturating_add(1) {
            return Err(ChangeError::AfterNext { height: from, tip });
        }
        if from <= first {
            return Err(ChangeError::AtFirst {
                height: from,
                first,
            });
        }
        let before = from - 1;
        if before < tip {
            self.rewind(before)?;
        }
        self.record_module(identity, from)?;
        Ok(Upgraded::Recorded {
            old_tip: tip,
            rolled_back: tip - before,
        })
    }
}
