//! Errors of the runtime API.

use crate::core::pid::InvalidNodeName;

/// Why a node could not start. Nothing was started when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No node name was given.
    #[error("a node name is required (name@host)")]
    MissingName,
    /// The node name is malformed.
    #[error(transparent)]
    InvalidName(#[from] InvalidNodeName),
    /// The cookie could not be read or created.
    #[error("cookie: {0}")]
    Cookie(#[from] crate::cookie::CookieError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The transport's error.
        source: std::io::Error,
    },
    /// The global-group configuration is invalid.
    #[error(transparent)]
    Groups(#[from] crate::core::global_group::GlobalGroupsError),
    /// A setting is out of range, or two settings contradict each other.
    #[error("invalid setting: {0}")]
    Config(#[from] ConfigError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
}

/// A [`NodeBuilder`](crate::NodeBuilder) setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The tick interval is zero.
    #[error("tick interval must be above zero")]
    ZeroTick,
    /// A peer would be declared down before a tick could arrive.
    #[error("peer timeout ({peer_timeout:?}) must be longer than the tick interval ({tick:?})")]
    PeerTimeout {
        /// The peer timeout asked for.
        peer_timeout: std::time::Duration,
        /// The tick interval asked for.
        tick: std::time::Duration,
    },
    /// The reconnect backoff is not `0 < min <= max`.
    #[error("reconnect backoff must be 0 < min <= max")]
    Backoff,
    /// At most zero handshakes at once.
    #[error("max handshakes must be at least 1")]
    ZeroHandshakes,
    /// The liveness probe timeout is zero.
    #[error("probe timeout must be above zero")]
    ZeroProbeTimeout,
    /// The largest frame is below 1024 bytes.
    #[error("max frame size must be at least 1024 bytes")]
    MaxFrame,
    /// The metadata limit leaves less than 4 KiB of a frame.
    #[error("max metadata size ({max_meta} bytes) must leave 4 KiB of the max frame size ({max_frame} bytes)")]
    MaxMeta {
        /// The metadata limit.
        max_meta: usize,
        /// The frame limit.
        max_frame: usize,
    },
    /// TLS was asked for together with a custom transport.
    #[error("TLS and another transport exclude each other")]
    TlsWithTransport,
}

pub use crate::core::process::CodecError;
