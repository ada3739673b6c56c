//! The state of locked registrations on one node: the lock of each name
//! (its holder and waiters) and the registrations of local pids in their
//! lock phase. The protocol that changes it is in `locked.rs`.

use std::collections::BTreeSet;

use super::store::SharedClaim;
use super::wire::Claim;
use crate::pid::{NodeName, Pid};
use crate::time::Time;

/// A request for a name lock.
#[derive(Debug, Clone)]
pub(super) struct Req {
    pub(super) stamp: u64,
    pub(super) node: NodeName,
    pub(super) op: u64,
    pub(super) attempt: u32,
    pub(super) replace: bool,
    /// When this node granted the lock (for the lease).
    pub(super) since: Time,
    /// The claim staged under the lock, installed by the `Commit`.
    pub(super) claim: SharedClaim,
}

impl Req {
    pub(super) fn key(&self) -> (u64, &NodeName) {
        (self.stamp, &self.node)
    }
}

/// The lock of one name on this node: its holder and the older requests
/// waiting for it, oldest first.
#[derive(Debug, Default)]
pub(super) struct NameLock {
    pub(super) holder: Option<Req>,
    pub(super) waiters: Vec<Req>,
}

impl NameLock {
    /// The claim staged by the request holding the lock.
    pub(super) fn staged(&self) -> Option<Claim> {
        self.holder.as_ref().map(|h| h.claim.to_claim())
    }
}

/// A locked unregister: the claim it retracts once it holds the name's
/// lock, and who waits for its answer.
#[derive(Debug)]
pub(super) struct Unreg {
    /// The holder (a local pid).
    pub(super) pid: Pid,
    /// The stamp of the claim to retract (a newer one stays).
    pub(super) stamp: u64,
    /// The node and operation a forwarded request came from; `None` when
    /// the driver of this node asked.
    pub(super) reply_to: Option<(NodeName, u64)>,
}

/// A locked registration of a local pid, or a locked unregister of a
/// local holder's claim, in its lock phase.
#[derive(Debug)]
pub(super) struct RegOp {
    pub(super) table: usize,
    pub(super) claim: Claim,
    pub(super) replace: bool,
    pub(super) attempt: u32,
    pub(super) asked: BTreeSet<NodeName>,
    pub(super) awaiting: BTreeSet<NodeName>,
    /// Waiting for a retry timer (after a `Busy`).
    pub(super) backing_off: bool,
    /// The pending timer (lock phase time-out or retry), to drop it when
    /// the registration ends first.
    pub(super) timer: Option<(Time, u32)>,
    /// For an unregister: what it retracts (its `claim` is then only the
    /// lock request: the holder's pid under a fresh stamp, never committed).
    pub(super) unregister: Option<Unreg>,
}
