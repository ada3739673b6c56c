//! The admin API's connections: a TCP (plain or TLS) or Unix listener,
//! a cap on concurrent connections, and the header and idle timeouts.
//!
//! Each connection is served by hyper's HTTP/1 server with upgrades (the
//! WebSocket of `/attach`). The connection's permit travels with its
//! stream, so an attached WebSocket counts against the cap until it closes.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::{AdminAddr, AdminConfig, TlsFiles};

/// Who sent a request: the connection's number on this node and its peer
/// address (`unix` for a Unix socket). Handlers read it from the request's
/// extensions, for the audit log.
#[derive(Clone, Debug)]
pub struct Client {
    /// Connection number, from 1, in accept order.
    pub conn: u64,
    /// Peer address.
    pub peer: String,
}

impl Client {
    /// The request's client from its extensions, or an unknown one (conn 0).
    pub fn of(ext: Option<axum::Extension<Client>>) -> Client {
        ext.map(|axum::Extension(c)| c).unwrap_or(Client {
            conn: 0,
            peer: "unknown".into(),
        })
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{} from {}", self.conn, self.peer)
    }
}

/// A bound admin listener.
pub enum Listener {
    /// TCP, with TLS when an acceptor is given.
    Tcp(TcpListener, Option<TlsAcceptor>),
    /// A Unix socket (removed again when the node stops).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// What the node prints: `http://ADDR`, `https://ADDR` or `unix:PATH`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l, tls) => {
                let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{addr}")
            }
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// The bound TCP address, if TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l, _) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Listener::Tcp(_, Some(_)))
    }
}

/// Binds the admin address of `cfg` (`None` for `--admin none`).
pub async fn bind(cfg: &AdminConfig) -> Result<Option<Listener>> {
    match &cfg.addr {
        AdminAddr::Off => Ok(None),
        AdminAddr::Tcp(addr) => {
            let tls = cfg.tls.as_ref().map(acceptor).transpose()?;
            let l = TcpListener::bind(addr).await.map_err(|e| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    anyhow!(
                        "--admin: {addr} is in use (another cohort node?); give another --admin IP:PORT, --admin unix:PATH or --admin none"
                    )
                } else {
                    anyhow!("--admin: cannot listen on {addr}: {e}")
                }
            })?;
            if !addr.ip().is_loopback() {
                if tls.is_some() {
                    tracing::warn!(%addr, "the admin API listens on a non-loopback address (TLS, token required)");
                } else {
                    tracing::warn!(%addr, "the admin API listens on a non-loopback address in plain HTTP (--admin-insecure): the token and every command cross the network unencrypted");
                }
            }
            Ok(Some(Listener::Tcp(l, tls)))
        }
        AdminAddr::Unix(path) => Ok(Some(Listener::Unix(bind_unix(path)?, path.clone()))),
    }
}

/// Binds a Unix socket with mode 0600. A socket file nobody listens on
/// (left by a node that was killed) is replaced; one in use is refused.
fn bind_unix(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "--admin unix:{}: the path exists and is not a socket",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "--admin unix:{}: in use (another cohort node?); give another path or --admin none",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("--admin: removing the stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| anyhow!("--admin: cannot listen on unix:{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("--admin: chmod 600 {}", path.display()))?;
    Ok(l)
}

/// A TLS acceptor from PEM files (ring as the crypto provider).
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("--admin-tls-cert {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        bail!(
            "--admin-tls-cert {}: no certificate in the file",
            files.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("--admin-tls-key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("--admin-tls-cert/--admin-tls-key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Any stream a connection runs on.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection's stream holding its slot under the connection cap.
struct Counted {
    io: Box<dyn Io>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once.
    pub max_connections: usize,
    /// Time to receive a request's headers (and a TLS handshake).
    pub header_timeout: Duration,
    /// Longest silence of a request body.
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(listener: Listener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let ids = AtomicU64::new(1);
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.idle_timeout,
    ));
    loop {
        let accepted: io::Result<(Box<dyn Io>, String, Option<TlsAcceptor>)> = match &listener {
            Listener::Tcp(l, tls) => l.accept().await.map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                (Box::new(s) as Box<dyn Io>, peer.to_string(), tls.clone())
            }),
            Listener::Unix(l, _) => l
                .accept()
                .await
                .map(|(s, _)| (Box::new(s) as Box<dyn Io>, "unix".to_string(), None)),
        };
        let (io, peer, tls) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little
                // instead of spinning on the error.
                tracing::warn!(error = %e, "admin API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = ids.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                conn, %peer, max = limits.max_connections,
                "admin API: connection refused, too many open (--admin-max-connections)"
            );
            drop(io);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => io,
                Some(acc) => {
                    match tokio::time::timeout(limits.header_timeout, acc.accept(io)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(conn, %peer, error = %e, "admin API: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(conn, %peer, "admin API: TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let client = Client { conn, peer };
            let io = Counted {
                io,
                _permit: permit,
            };
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(client.clone());
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(conn, error = %e, "admin API: connection ended");
            }
        });
    }
}
