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
        let limit = FrameLimit::new(PRE_AUTH_MAX_FRAME.min(self.max_frame));
        let codec = LimitedCodec {
            inner: LengthDelimitedCodec::builder()
                .max_frame_length(self.max_frame)
                .new_codec(),
            limit: limit.clone(),
            max: self.max_frame,
        };
        let (sink, stream) = Framed::new(stream, codec).split();
        Ok(Connection {
            remote_addr,
            sink: Box::pin(sink),
            stream: Box::pin(stream.map_ok(|b| b.freeze())),
            limit,
        })
    }
}

/// tokio-util's length-delimited codec with a limit that can change while
/// the connection is open. The codec checks the announced length against
/// the limit before it reserves room for the body.
struct LimitedCodec {
    inner: LengthDelimitedCodec,
    limit: FrameLimit,
    /// The transport's max frame size: the limit never goes above it.
    max: usize,
}

impl Decoder for LimitedCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let limit = self.limit.get().min(self.max);
        if self.inner.max_frame_length() != limit {
            self.inner.set_max_frame_length(limit);
        }
        self.inner.decode(src)
    }
}

impl Encoder<Bytes> for LimitedCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        // Our own frames may be as large as the node's max frame size
        // (a peer's limit is its own business).
        self.inner.set_max_frame_length(self.max);
        self.inner.encode(item, dst)
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
