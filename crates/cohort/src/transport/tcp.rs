//! TCP transport: frames are a 4-byte big-endian length and a body, read and
//! written with tokio-util's length-delimited codec. A frame longer than the
//! configured maximum ends the connection with an error.

use std::io;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{Connection, Listener, Transport};
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
        Ok(framed(stream, remote_addr, self.max_frame, None))
    }
}

/// Frames over any byte stream (TCP, or TLS over TCP): a 4-byte length and
/// a body, at most `max_frame` bytes.
pub(crate) fn framed<S>(
    io: S,
    remote_addr: String,
    max_frame: usize,
    identity: Option<super::PeerIdentity>,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    let (sink, stream) = Framed::new(io, codec).split();
    Connection {
        remote_addr,
        sink: Box::pin(sink),
        stream: Box::pin(stream.map_ok(|b| b.freeze())),
        identity,
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
