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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// The largest frame the stream accepts now: small until the handshake
    /// is done, raised by the engine once the peer is authenticated.
    pub limit: FrameLimit,
}

/// Largest frame accepted from a peer before its handshake completes (a
/// `Hello` or `Response` is well under 1 KiB): an unauthenticated
/// connection cannot make the node reserve more than this.
pub const PRE_AUTH_MAX_FRAME: usize = 4 * 1024;

/// The frame-size limit of one connection's reader, shared with whoever may
/// raise it. A transport without a length prefix to check ignores it.
#[derive(Debug, Clone)]
pub struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    /// A limit of `bytes`.
    pub fn new(bytes: usize) -> Self {
        FrameLimit(Arc::new(AtomicUsize::new(bytes)))
    }

    /// The limit now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the limit (the engine raises it to the node's max frame size
    /// when the session is up).
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Release);
    }
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
