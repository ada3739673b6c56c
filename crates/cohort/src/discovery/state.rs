//! What one running strategy knows: its settings, what it found, its
//! counters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;

use super::{lock, Discovered, Strategy, StrategyStatus};
use crate::core::pid::NodeName;

/// One running strategy: its settings and what it found.
pub(crate) struct State {
    pub(super) strategy: Strategy,
    pub(super) inner: Mutex<Found>,
}

/// What a strategy found, and its counters.
#[derive(Default)]
pub(super) struct Found {
    pub(super) last_lookup: Option<SystemTime>,
    pub(super) last_result: Vec<String>,
    pub(super) last_ok: Option<SystemTime>,
    pub(super) last_error: Option<String>,
    pub(super) lookups: u64,
    pub(super) errors: u64,
    pub(super) forgotten: u64,
    pub(super) entries: BTreeMap<String, Entry>,
    /// Addresses of this node itself, never dialed.
    pub(super) own: BTreeSet<String>,
}

/// One discovered address.
#[derive(Default)]
pub(super) struct Entry {
    pub(super) node: Option<NodeName>,
    /// When a successful, non-empty lookup first left it out.
    pub(super) missing_since: Option<Instant>,
    pub(super) error: Option<String>,
    pub(super) dialing: bool,
}

impl State {
    /// A snapshot of the strategy's state.
    /// `up`: the nodes connected now.
    pub(crate) fn status(&self, up: &[NodeName]) -> StrategyStatus {
        let s = lock(&self.inner);
        StrategyStatus {
            strategy: self.strategy.source.to_string(),
            resolver: self.strategy.resolver,
            last_lookup: s.last_lookup,
            last_result: s.last_result.clone(),
            last_ok: s.last_ok,
            last_error: s.last_error.clone(),
            lookups: s.lookups,
            errors: s.errors,
            discovered: s
                .entries
                .iter()
                .map(|(addr, e)| Discovered {
                    addr: addr.clone(),
                    node: e.node.clone(),
                    connected: e.node.as_ref().is_some_and(|n| up.contains(n)),
                    listed: e.missing_since.is_none(),
                    error: e.error.clone(),
                })
                .collect(),
            forgotten: s.forgotten,
        }
    }
}
