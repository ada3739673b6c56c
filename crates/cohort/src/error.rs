//! Errors of the runtime API.

use crate::core::pid::InvalidNodeName;

/// Why a node could not start. Nothing was started when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No node name was given.
    #[error("a node name is required (name@host)")]
    MissingName,
    /// The node name is malformed.
    #[error(transparent)]
    InvalidName(#[from] InvalidNodeName),
    /// The cookie could not be read or created.
    #[error("cookie: {0}")]
    Cookie(String),
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
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
}

pub use crate::core::process::CodecError;
