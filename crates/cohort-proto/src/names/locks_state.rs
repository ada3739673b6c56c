//! The state of `set_lock` locks on one node: the locks held here and the
//! `set_lock` calls in flight. The protocol that changes it is in `locks.rs`.

use std::collections::BTreeSet;

use super::wire::LockId;
use crate::pid::{NodeName, Pid};

/// A lock held on this node.
#[derive(Debug)]
pub(super) struct LockEntry {
    pub(super) requester: String,
    pub(super) holders: BTreeSet<Pid>,
}

/// A `set_lock` in flight.
#[derive(Debug)]
pub(super) struct LockOp {
    pub(super) lock: LockId,
    pub(super) holder: Pid,
    pub(super) nodes: Vec<NodeName>,
    pub(super) attempt: u32,
    pub(super) retries: Option<u32>,
    pub(super) awaiting: BTreeSet<NodeName>,
    pub(super) fresh: Vec<NodeName>,
    pub(super) denied: bool,
    pub(super) backing_off: bool,
}
