//! The column families of one index namespace, named once.
//!
//! | family | key | value |
//! | --- | --- | --- |
//! | [`Family::History`] | `u32 BE len ++ key ++ u32 BE height` ([`crate::keys`]) | the raw value |
//! | [`Family::Latest`] | `u32 BE len ++ key` ([`crate::keys::history_prefix`]) | `u32 BE height ++ value`: the newest history entry of the key |
//! | [`Family::Blocks`] | `u32 BE height` | block hash (32, internal order) ++ state root (32) |
//! | [`Family::Touched`] | `u32 BE height` | the keys the block wrote, with a check of each value ([`crate::keys::encode_touched`]) |
//! | [`Family::Meta`] | `tip`, `first`, `identity`, `format`, `committed_at`, `header/ ++ u32 BE height`, `module/ ++ u32 BE height` | u32 BE heights; the index identity; the layout version; when the tip was committed; block headers for proof-of-work checks; the module that indexes from that height on |
//!
//! A namespace's family `F` is the RocksDB column family `<namespace>/<F::suffix()>`.

/// One column family of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Every version of every key: read by views at older heights, by rollbacks and `verify`.
    History,
    /// The newest version of every key: what a block reads (the state after the previous
    /// block), one point lookup whatever the length of the key's history.
    Latest,
    /// Block hash and state root per height.
    Blocks,
    /// Touched-key list per height.
    Touched,
    /// Heights, identity, layout version.
    Meta,
}

impl Family {
    /// Every family of a namespace, in the order of [`Family::index`].
    pub const ALL: [Family; 5] = [
        Family::History,
        Family::Latest,
        Family::Blocks,
        Family::Touched,
        Family::Meta,
    ];

    /// The part of the column family's name after `<namespace>/`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Family::History => "history",
            Family::Latest => "latest",
            Family::Blocks => "blocks",
            Family::Touched => "touched",
            Family::Meta => "meta",
        }
    }

    /// Its position in [`Family::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The RocksDB column family name of this family in `namespace`.
    pub fn name_in(self, namespace: &str) -> String {
        format!("{namespace}/{}", self.suffix())
    }

    /// The family a RocksDB column family name ends with, if any.
    pub fn of_name(name: &str) -> Option<Family> {
        let (_, suffix) = name.rsplit_once('/')?;
        Family::ALL.into_iter().find(|f| f.suffix() == suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, family) in Family::ALL.into_iter().enumerate() {
            assert_eq!(family.index(), i);
            assert_eq!(Family::of_name(&family.name_in("lbl")), Some(family));
        }
        assert_eq!(Family::of_name("default"), None);
        assert_eq!(Family::of_name("x/other"), None);
    }
}
