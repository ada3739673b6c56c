//! Why a process-group call fails.

use super::wire::ScopeName;
use crate::pid::Pid;

/// Why a process-group call failed; nothing changed when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The pid belongs to another node: only the origin writes its entries.
    #[error("{0} is not a local process: only its own node can add it to a group")]
    NotLocal(Pid),
    /// The local process does not exist (any more).
    #[error("{0} is not alive")]
    NoProc(Pid),
    /// None of the pids had joined the group.
    #[error("not joined")]
    NotJoined,
    /// The scope does not run on this node.
    #[error("scope {0:?} is not running")]
    NoScope(ScopeName),
    /// The process already holds [`MAX_JOINS`](crate::limits::MAX_JOINS)
    /// memberships of the group; nothing changed.
    #[error("{0} already holds {max} memberships of the group (the most allowed)", max = crate::limits::MAX_JOINS)]
    TooManyJoins(Pid),
    /// A scope name, group name or metadata is longer than allowed
    /// ([`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES), the node's
    /// metadata limit); nothing changed.
    #[error("{what} is {len} bytes long (at most {max})")]
    TooLong {
        /// Which: `"scope name"`, `"group name"` or `"metadata"`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
