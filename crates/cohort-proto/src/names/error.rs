//! Why a name or lock operation fails.

/// Why a name or lock operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamesError {
    /// Another process holds the name; nothing changed.
    #[error("name is taken")]
    Taken,
    /// The process already holds this other name and the table allows one per pid; nothing changed.
    #[error("process already registered as {0:?}")]
    AlreadyNamed(String),
    /// The pid belongs to another node; only its own node registers it; nothing changed.
    #[error("pid is not a local process")]
    NotLocal,
    /// The process is not alive (or ended during the operation); nothing is registered.
    #[error("no such process")]
    NoProc,
    /// The name or its metadata is longer than allowed
    /// ([`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES), the node's
    /// metadata limit); nothing is registered.
    #[error("{what} is {len} bytes long (at most {max})")]
    TooLong {
        /// Which: `"name"` or `"metadata"`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No process holds the name; nothing changed.
    #[error("name is not registered")]
    NotRegistered,
    /// No table of this name is configured on this node.
    #[error("unknown name table {0:?}")]
    UnknownTable(String),
    /// The node stopped before the operation finished; its outcome is unknown.
    #[error("node stopped")]
    Stopped,
    /// The request went to another node (the holder's, for an
    /// `unregister`), which did not answer in time or went away: the
    /// request may or may not have been applied, now or later. Read the
    /// name again (`whereis`) to learn where it stands; retrying an
    /// `unregister` is safe (it names the claim it targets, never a newer
    /// one).
    #[error("outcome of the operation on {name:?} is unknown")]
    OutcomeUnknown {
        /// The name the operation was about.
        name: String,
    },
}
