//! What the name service tells its driver: changes of visible entries,
//! events for subscribers, and operation replies.

use bytes::Bytes;
use ecow::EcoString;

use super::error::NamesError;
use super::store::SharedClaim;
use super::wire::LossPolicy;
use crate::pid::{ExitReason, Pid};

/// Why a name left the view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnregisterReason {
    /// `unregister` was called.
    Unregistered,
    /// The process ended.
    Exited(ExitReason),
    /// The process's node went down or out of reach.
    NodeDown,
    /// The claim lost a clash (or both were dropped).
    Conflict,
    /// `re_register` gave the name to another process.
    Replaced,
}

/// A change in a table, in the order this node applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameEvent {
    /// `name` now resolves to `pid`.
    Registered {
        /// The name.
        name: String,
        /// Its process.
        pid: Pid,
        /// Its metadata.
        meta: Bytes,
    },
    /// `name` no longer resolves to `pid`.
    Unregistered {
        /// The name.
        name: String,
        /// The process that held it.
        pid: Pid,
        /// Why.
        reason: UnregisterReason,
    },
    /// A clash on `name` was settled: `loser`'s claim is dropped. The
    /// loser's node settles it and reports it; every node that held the
    /// losing claim reports it once, with the same winner and action,
    /// where it applies the loser's retraction (right after the claim
    /// leaves its view), in the loser's node's order.
    ConflictResolved {
        /// The name.
        name: String,
        /// The surviving holder (none under [`LossPolicy::DropBoth`]).
        winner: Option<Pid>,
        /// The losing process.
        loser: Pid,
        /// What its node does to it.
        action: LossPolicy,
    },
}

/// Effects of the name service for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum NamesEffect {
    /// The visible entry of `name` in table `table` (an index) changed.
    View {
        /// Table index in the config.
        table: usize,
        /// The name.
        name: EcoString,
        /// The new winning claim (holder and metadata), or none.
        entry: Option<SharedClaim>,
    },
    /// An event for the table's subscribers.
    Event {
        /// Table index.
        table: usize,
        /// The event.
        event: NameEvent,
    },
    /// Operation `op` finished.
    Reply {
        /// The operation.
        op: u64,
        /// `Ok(true)` on success, `Ok(false)` for a lock not taken.
        result: Result<bool, NamesError>,
    },
}
