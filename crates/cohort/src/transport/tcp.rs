//! TCP transport: frames are a 4-byte big-endian length and a body, read and
//! written with tokio-util's length-delimited codec. A frame longer than the
//! connection's current limit ends the connection with an error; the limit
//! is [`PRE_AUTH_MAX_FRAME`] until the engine raises it after the handshake.
//! The limit is checked on the length prefix, before any buffer is reserved
//! for the body.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

use super::{Connection, FrameLimit, Listener, Transport, PRE_AUTH_MAX_FRAME};
use crate::core::proto::DEFAULT_MAX_FRAME;

/// Connections over TCP.
#[derive(Debug, Clone)]
pub struct TcpTransport {
    max_frame: usize,
}

impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport::new(DEFAULT_MAX_FRAME)
    }
}

impl TcpTransport {
    /// A TCP transport that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        TcpTransport { max_frame }
    }

    fn wrap(&self, stream: TcpStream) -> io::Result<Connection> {
        stream.set_nodelay(true)?;
        let remote_addr = stream.peer_addr()?.to_string();
        Ok(framed(stream, remote_addr, self.max_frame, None, true))
    }
}

/// Frames over any byte stream (TCP, or TLS over TCP): a 4-byte length and
/// a body, at most `max_frame` bytes, and at most [`PRE_AUTH_MAX_FRAME`]
/// until the engine raises the connection's limit after the handshake.
/// With `detect_tls`, a connection whose first bytes are a TLS record ends
/// with an error saying so, not with a frame too large.
pub(crate) fn framed<S>(
    io: S,
    remote_addr: String,
    max_frame: usize,
    identity: Option<super::PeerIdentity>,
    detect_tls: bool,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let limit = FrameLimit::new(PRE_AUTH_MAX_FRAME.min(max_frame));
    let codec = Codec {
        inner: LengthDelimitedCodec::builder()
            .max_frame_length(max_frame)
            .new_codec(),
        detect_tls,
        limit: limit.clone(),
        max: max_frame,
    };
    let (sink, stream) = Framed::new(io, codec).split();
    Connection {
        remote_addr,
        sink: Box::pin(sink),
        stream: Box::pin(stream.map_ok(|b| b.freeze())),
        identity,
        limit,
    }
}

/// tokio-util's length-delimited codec with a limit that can change while
/// the connection is open (checked on the announced length, before room is
/// reserved for the body), which on a plaintext connection also tells a TLS
/// peer apart: a TLS record (handshake 0x16 or alert 0x15, then major
/// version 3) read as a length would be a frame of over 350 MB.
struct Codec {
    inner: LengthDelimitedCodec,
    detect_tls: bool,
    limit: FrameLimit,
    /// The transport's max frame size: the limit never goes above it.
    max: usize,
}

impl Decoder for Codec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        if self.detect_tls {
            if src.len() < 2 {
                return Ok(None);
            }
            self.detect_tls = false;
            if matches!(src[0], 0x15 | 0x16) && src[1] == 0x03 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the peer speaks TLS, this node does not (give it --tls-cert, --tls-key and --tls-ca)",
                ));
            }
        }
        let limit = self.limit.get().min(self.max);
        if self.inner.max_frame_length() != limit {
            self.inner.set_max_frame_length(limit);
        }
        self.inner.decode(src)
    }
}

impl Encoder<Bytes> for Codec {
    type Error = io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        // Our own frames may be as large as the node's max frame size (a
        // peer's limit is its own business).
        self.inner.set_max_frame_length(self.max);
        self.inner.encode(frame, dst)
    }
}

struct TcpAcceptor {
    listener: TcpListener,
    transport: TcpTransport,
    local: String,
}

impl Listener for TcpAcceptor {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            let (stream, _) = self.listener.accept().await?;
            self.transport.wrap(stream)
        })
    }
}

impl Transport for TcpTransport {
    fn listen(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        let transport = self.clone();
        Box::pin(async move {
            let listener = TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?.to_string();
            Ok(Box::new(TcpAcceptor {
                listener,
                transport,
                local,
            }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<Connection>> {
        let addr = addr.to_string();
        let transport = self.clone();
        Box::pin(async move {
            let stream = TcpStream::connect(&addr).await?;
            let mut conn = transport.wrap(stream)?;
            conn.remote_addr = addr;
            Ok(conn)
        })
    }
}
