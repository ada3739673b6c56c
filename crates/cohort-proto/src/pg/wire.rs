//! What process groups send: the frames of the replication protocol and
//! the changes they carry.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::view::Group;

/// A scope name.
pub type ScopeName = Arc<str>;

/// A change to the origin's own entries; pids are the origin's serials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Processes joined `group` (once each), with optional metadata.
    Join {
        /// The group.
        group: Group,
        /// Serials of the joining processes.
        serials: SmallVec<[u64; 1]>,
        /// Metadata of these memberships.
        meta: Option<Bytes>,
    },
    /// Processes left `group`: `count` memberships of each serial.
    Leave {
        /// The group.
        group: Group,
        /// (serial, number of memberships removed).
        serials: SmallVec<[(u64, u32); 1]>,
    },
    /// The metadata of every membership of `serial` in `group` changed.
    Meta {
        /// The group.
        group: Group,
        /// The process.
        serial: u64,
        /// The new metadata.
        meta: Option<Bytes>,
    },
}

/// The changes of one delta, shared between the frame and the log.
pub type Ops = Arc<Vec<Op>>;

/// One group in a snapshot: serial, membership count, metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroup {
    /// The group.
    pub group: Group,
    /// (serial, count, metadata) of each member process.
    pub members: Vec<(u64, u32, Option<Bytes>)>,
}

/// Wire messages of the process-group layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PgFrame {
    /// "I run `scope`; send me your entries after `have` (stream, seq)."
    Discover {
        /// The scope.
        scope: ScopeName,
        /// The sender's cursor in the receiver's stream, if any.
        have: Option<(u64, u64)>,
    },
    /// A snapshot of the sender's own entries at `seq`, possibly in parts.
    Sync {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// The stream head the snapshot reflects.
        seq: u64,
        /// Groups of this part.
        groups: Vec<SyncGroup>,
        /// More parts follow; install only after the last.
        more: bool,
    },
    /// One change of the sender's own entries.
    Delta {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// Sequence number of this change.
        seq: u64,
        /// The changes, applied together.
        ops: Ops,
    },
    /// The changes a peer missed, answering its `Discover`: applied in
    /// order like deltas, but never shed on a congested session.
    Catchup {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// (sequence number, changes) in order.
        deltas: Vec<(u64, Ops)>,
    },
    /// The head of the sender's stream, advertised periodically.
    Heads {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// Its latest sequence number.
        seq: u64,
    },
    /// The sender stopped `scope`: drop its entries.
    Stopped {
        /// The scope.
        scope: ScopeName,
    },
}
