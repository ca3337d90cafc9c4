//! The faults the file system injects besides power cuts: the next N operations of a kind on
//! matching files fail with EIO, and writes past a byte budget fail with ENOSPC.

use std::collections::VecDeque;

/// A kind of operation a fault rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Reads of a file's data.
    Read,
    /// Writes, truncations.
    Write,
    /// `fsync`/`fdatasync` of a file or directory.
    Sync,
    /// Lookups, creates, renames, unlinks, opens, directory listings.
    Meta,
}

/// One rule: the next `count` operations `op` on a file whose name contains `name` fail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    op: Op,
    name: String,
    count: u32,
}

/// The faults in force.
#[derive(Debug, Default)]
pub struct Faults {
    rules: VecDeque<Rule>,
    budget: Option<u64>,
    /// Operations failed so far by the rules.
    pub injected: u64,
}

impl Faults {
    /// The next `count` operations `op` on files whose name contains `name` (`""`: any) fail
    /// with EIO.
    pub fn fail_next(&mut self, op: Op, name: &str, count: u32) {
        self.rules.push_back(Rule {
            op,
            name: name.to_string(),
            count,
        });
    }

    /// Drops every rule (the budget stays).
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Writes that would make the files hold more than `bytes` together fail with ENOSPC
    /// (`None`: no budget).
    pub fn set_budget(&mut self, bytes: Option<u64>) {
        self.budget = bytes;
    }

    /// The byte budget.
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// Whether `more` bytes fit next to the `used` ones.
    pub fn room_for(&self, used: u64, more: u64) -> bool {
        self.budget.is_none_or(|b| used.saturating_add(more) <= b)
    }

    /// Whether an operation `op` on the file `name` is to fail (counting it against its rule).
    pub fn take(&mut self, op: Op, name: &str) -> bool {
        let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.op == op && r.count > 0 && name.contains(r.name.as_str()))
        else {
            return false;
        };
        rule.count -= 1;
        self.injected += 1;
        self.rules.retain(|r| r.count > 0);
        true
    }
}
