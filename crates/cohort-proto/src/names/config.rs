//! How a node's name tables are configured: which tables, and for each its
//! consistency mode, default loss policy and rank.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::rank::RankFn;
use super::wire::{Claim, LossPolicy};

/// How a table keeps names consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mode {
    /// A registration locks the name on every member node, staging the
    /// claim there, in one round trip. When it returns `Ok`, every
    /// connected member holds the name locked for this claim, so no other
    /// registration can take it; each shows the entry once the commit
    /// (queued before the return) arrives, which is before any later frame
    /// from the registering node. Two concurrent registrations in one
    /// connected partition never both succeed (OTP's contract).
    Locked,
    /// A registration returns after the local write; clashes are settled
    /// by the rank within one round of replication.
    Eventual,
}

/// Settings of one name table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableConfig {
    /// The table's name, the same on every node.
    pub name: String,
    /// Locked or eventual.
    pub mode: Mode,
    /// Default policy for losers (a registration may pick another).
    pub policy: LossPolicy,
    /// A user rank replacing "earliest claim wins".
    pub rank: Option<RankFn>,
    /// Whether one pid may hold several names in this table.
    pub multiple_names: bool,
}

impl TableConfig {
    /// A locked table with the kill policy, one name per pid.
    pub fn new(name: impl Into<String>) -> Self {
        TableConfig {
            name: name.into(),
            mode: Mode::Locked,
            policy: LossPolicy::Kill,
            rank: None,
            multiple_names: false,
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the default loss policy.
    pub fn policy(mut self, policy: LossPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets a user rank function.
    pub fn rank(
        mut self,
        rank: impl Fn(&Claim, &Claim) -> Ordering + Send + Sync + 'static,
    ) -> Self {
        self.rank = Some(RankFn::new(rank));
        self
    }

    /// Allows one pid to hold several names.
    pub fn multiple_names(mut self, on: bool) -> Self {
        self.multiple_names = on;
        self
    }
}

/// The name tables of a node. The first table is the default one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NamesConfig {
    /// The tables, the default first.
    pub tables: Vec<TableConfig>,
}

impl Default for NamesConfig {
    /// One locked table named `global` with the kill policy.
    fn default() -> Self {
        NamesConfig {
            tables: vec![TableConfig::new("global")],
        }
    }
}

impl NamesConfig {
    /// No tables at all.
    pub fn empty() -> Self {
        NamesConfig { tables: Vec::new() }
    }

    /// Adds a table, replacing one of the same name.
    pub fn table(mut self, t: TableConfig) -> Self {
        match self.tables.iter_mut().find(|x| x.name == t.name) {
            Some(x) => *x = t,
            None => self.tables.push(t),
        }
        self
    }
}
