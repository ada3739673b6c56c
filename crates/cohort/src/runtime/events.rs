//! Node up/down events, as subscribers receive them.

use crate::core::pid::NodeName;
use crate::core::DownReason;

/// A change in the set of connected nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with `node` is up.
    Up {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
    },
    /// The session with `node` ended.
    Down {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// Why.
        reason: DownReason,
    },
}
