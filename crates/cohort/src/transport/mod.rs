//! The seam between nodes: something that opens and accepts connections
//! carrying whole frames.
//!
//! [`tcp::TcpTransport`] is the production transport (length-prefixed frames
//! over TCP); [`mem::MemNetwork`] is an in-memory network for tests, with
//! partition, heal, drop and delay controls; [`tls::TlsTransport`] carries
//! the TCP transport's frames inside mutual TLS. All implement [`Transport`].

pub mod mem;
pub mod tcp;
pub mod tls;

pub use tls::PeerIdentity;

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};

/// The sending half of a connection: whole frames in.
pub type FrameSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// The receiving half of a connection: whole frames out, or the error that
/// ended it (an oversized frame among them).
pub type FrameStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One open connection.
pub struct Connection {
    /// The other end's address, for logs.
    pub remote_addr: String,
    /// Frames to the peer.
    pub sink: FrameSink,
    /// Frames from the peer.
    pub stream: FrameStream,
    /// What the transport proved about the peer (its TLS certificate), to
    /// be checked against the node name the peer claims in the handshake;
    /// `None` when the transport proves nothing (plain TCP, in-memory).
    pub identity: Option<PeerIdentity>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Accepts connections.
pub trait Listener: Send + 'static {
    /// The bound address (with the real port when asked for port 0).
    fn local_addr(&self) -> String;
    /// Waits for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Connection>>;
}

/// Opens and accepts connections.
pub trait Transport: Send + Sync + 'static {
    /// Starts listening on `addr`.
    fn listen(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Connects to `addr`.
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<Connection>>;
}
