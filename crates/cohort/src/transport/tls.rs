//! Mutual TLS between nodes (rustls): the TCP transport's frames inside a
//! TLS session in which both ends present a certificate.
//!
//! The TLS layer checks that the peer's certificate chains to the cluster's
//! CA, in both directions. Which node a certificate stands for is checked
//! once the peer says its name in the cluster handshake: the runtime asks the
//! connection's [`PeerIdentity`] whether the certificate is valid for the
//! host of that name (`name@host`, as a DNS or IP subject alternative name)
//! before it answers, so a certificate made for one host cannot speak for a
//! node of another. The acceptor checks the dialer's claimed name, the dialer
//! the acceptor's; the cookie check of the handshake stays as it is.
//!
//! [`TlsTransport::reload`] re-reads the files: new connections use the new
//! certificate, open ones keep the session they have, and a bad file leaves
//! the configuration in force untouched.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::warn;

use super::tcp::framed;
use super::{Connection, Listener, Transport};

/// How long an accepted connection may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress on one listener; a connection beyond them is
/// closed at once (each holds a few tens of KiB of rustls buffers).
const MAX_TLS_HANDSHAKES: usize = 128;

/// The PEM files of a node's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The node's certificate, followed by any intermediates. It must be
    /// valid for the host of the node's name, for both server and client
    /// authentication (`cohort cert node` makes such certificates).
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates that peers' certificates must chain to.
    pub ca: PathBuf,
}

/// Why a TLS configuration could not be loaded. Nothing changes: a node
/// that was running keeps the configuration it had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or held no usable PEM item.
    #[error("{what} {}: {reason}", path.display())]
    File {
        /// Which file: "certificate", "key" or "CA".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the
    /// certificate, an unusable CA).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The node was started without TLS, so there is nothing to reload.
    #[error("this node does not use TLS between nodes")]
    NotEnabled,
}

struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// The node's own certificate, to check it against the node's name.
    own: CertificateDer<'static>,
}

/// Mutual TLS over TCP, with the same frames as
/// [`TcpTransport`](super::tcp::TcpTransport). Clones share the
/// configuration, so a [`reload`](TlsTransport::reload) through one is seen
/// by all.
#[derive(Clone)]
pub struct TlsTransport {
    files: Arc<TlsFiles>,
    configs: Arc<RwLock<Arc<Configs>>>,
    max_frame: usize,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("files", &self.files)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// Loads `files` and makes a transport refusing frames longer than
    /// `max_frame` bytes.
    pub fn new(files: TlsFiles, max_frame: usize) -> Result<Self, TlsError> {
        let configs = load(&files)?;
        Ok(TlsTransport {
            files: Arc::new(files),
            configs: Arc::new(RwLock::new(Arc::new(configs))),
            max_frame,
        })
    }

    /// Re-reads the certificate, key and CA files. On success new
    /// connections use them; open connections are not touched. On error
    /// the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = load(&self.files)?;
        *self.configs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(configs);
        Ok(())
    }

    /// Checks the node's own certificate against its name `node`
    /// (`name@host`): peers would refuse a certificate not valid for the host.
    pub fn check_own(&self, node: &str) -> Result<(), String> {
        PeerIdentity {
            cert: self.current().own.clone(),
        }
        .check_node(node)
    }

    fn current(&self) -> Arc<Configs> {
        self.configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A peer's TLS certificate (chained to the CA during the TLS handshake),
/// waiting to be checked against the node name the peer claims.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    cert: CertificateDer<'static>,
}

impl PeerIdentity {
    /// Whether the certificate is valid for the host of `node`
    /// (`name@host`), as a DNS name or an IP address; the error says why not.
    pub fn check_node(&self, node: &str) -> Result<(), String> {
        let host = node.rsplit_once('@').map_or(node, |(_, h)| h);
        let name = ServerName::try_from(host).map_err(|_| {
            format!("the host {host:?} of {node} is neither a DNS name nor an IP address")
        })?;
        let cert = ParsedCertificate::try_from(&self.cert)
            .map_err(|e| format!("its certificate cannot be parsed: {e}"))?;
        rustls::client::verify_server_name(&cert, &name).map_err(|e| {
            format!("its certificate is not valid for {host}, the host of the node name it claims ({node}): {e}")
        })
    }
}

fn load(files: &TlsFiles) -> Result<Configs, TlsError> {
    fn file_err<'p>(what: &'static str, path: &'p Path) -> impl Fn(&dyn Display) -> TlsError + 'p {
        move |e| TlsError::File {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
    fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let err = file_err(what, path);
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(&e))?;
        if certs.is_empty() {
            return Err(err(&"no PEM certificate in the file"));
        }
        Ok(certs)
    }
    let chain = certs("certificate", &files.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err("key", &files.key)(&e))?;
    let mut roots = RootCertStore::empty();
    for ca in certs("CA", &files.ca)? {
        roots.add(ca).map_err(|e| file_err("CA", &files.ca)(&e))?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |e: &dyn Display| TlsError::Config(e.to_string());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| config(&e))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| config(&e))?;
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly { roots, provider }))
        .with_client_auth_cert(chain.clone(), key)
        .map_err(|e| config(&e))?;
    Ok(Configs {
        server: Arc::new(server),
        client: Arc::new(client),
        own: chain[0].clone(),
    })
}

/// The dialer's check of the acceptor's certificate: it must chain to the
/// CA, for server authentication. The name is checked later, against the
/// node name the acceptor gives in the handshake ([`PeerIdentity`]), not
/// against the address dialed: seeds are addresses, nodes are names.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A failed TLS handshake in words an operator can act on.
fn explain(e: &io::Error) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "the connection closed during the TLS handshake (a plaintext node, or a node that refused our certificate)".into(),
            _ => e.to_string(),
        };
    };
    match tls {
        rustls::Error::InvalidMessage(_) => {
            format!("not a TLS peer (a plaintext node?): {tls}")
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "its certificate is not signed by the cluster's CA (unknown issuer)".into()
        }
        // An issuer of the same name as the CA, but another key.
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            "its certificate is not signed by the cluster's CA (bad signature)".into()
        }
        rustls::Error::InvalidCertificate(c) => format!("bad certificate: {c}"),
        rustls::Error::NoCertificatesPresented => "it presented no certificate".into(),
        rustls::Error::AlertReceived(a) => {
            format!("the peer refused the TLS handshake (alert {a:?}: it does not trust our certificate?)")
        }
        other => other.to_string(),
    }
}

fn identity_of(certs: Option<&[CertificateDer<'static>]>) -> Option<PeerIdentity> {
    certs.and_then(|c| c.first()).map(|c| PeerIdentity {
        cert: c.clone().into_owned(),
    })
}

struct TlsListener {
    local: String,
    ready: mpsc::Receiver<Connection>,
    task: JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener for TlsListener {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            self.ready
                .recv()
                .await
                .ok_or_else(|| io::Error::other("TLS listener stopped"))
        })
    }
}

/// Refused handshakes already logged: one warning per peer IP and reason
/// a minute (a plaintext node retries every few seconds, forever); the
/// repeats go to debug and are counted in the next warning.
#[derive(Default)]
struct Refusals {
    seen: std::collections::HashMap<(std::net::IpAddr, String), (tokio::time::Instant, u64)>,
}

impl Refusals {
    const EVERY: Duration = Duration::from_secs(60);
    const KEEP: usize = 1024;

    fn log(&mut self, addr: std::net::SocketAddr, reason: String) {
        let now = tokio::time::Instant::now();
        let key = (addr.ip(), reason);
        match self.seen.get_mut(&key) {
            Some((last, n)) if now.duration_since(*last) < Self::EVERY => {
                *n += 1;
                tracing::debug!(
                    "refusing a TLS connection from {addr}: {} (repeated; logged once a minute)",
                    key.1
                );
            }
            Some((last, n)) => {
                warn!(
                    "refusing a TLS connection from {addr}: {} ({n} more since the last report)",
                    key.1
                );
                *last = now;
                *n = 0;
            }
            None => {
                warn!("refusing a TLS connection from {addr}: {}", key.1);
                if self.seen.len() >= Self::KEEP {
                    self.seen
                        .retain(|_, (t, _)| now.duration_since(*t) < Self::EVERY);
                    if self.seen.len() >= Self::KEEP {
                        self.seen.clear();
                    }
                }
                self.seen.insert(key, (now, 0));
            }
        }
    }
}

/// Accepts TCP connections and runs their TLS handshakes side by side (a
/// slow or silent client does not hold up the others); finished ones go to
/// `ready`. A refused handshake is logged here, once, with the address and
/// the reason.
async fn accept_tls(listener: TcpListener, t: TlsTransport, ready: mpsc::Sender<Connection>) {
    let permits = Arc::new(Semaphore::new(MAX_TLS_HANDSHAKES));
    let refusals = Arc::new(std::sync::Mutex::new(Refusals::default()));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let refused = {
            let refusals = refusals.clone();
            move |reason: String| {
                refusals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .log(addr, reason)
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused(format!(
                "{MAX_TLS_HANDSHAKES} TLS handshakes already in progress"
            ));
            continue;
        };
        let acceptor = TlsAcceptor::from(t.current().server.clone());
        let ready = ready.clone();
        let max_frame = t.max_frame;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Err(_) => {
                        refused(format!("no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}"));
                        return;
                    }
                    Ok(Err(e)) => {
                        refused(explain(&e));
                        return;
                    }
                    Ok(Ok(s)) => s,
                };
            let identity = identity_of(tls.get_ref().1.peer_certificates());
            let _ = ready
                .send(framed(tls, addr.to_string(), max_frame, identity, false))
                .await;
        });
    }
}

impl Transport for TlsTransport {
    fn listen(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        let t = self.clone();
        Box::pin(async move {
            let listener = TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?.to_string();
            let (tx, ready) = mpsc::channel(16);
            let task = tokio::spawn(accept_tls(listener, t, tx));
            Ok(Box::new(TlsListener { local, ready, task }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<Connection>> {
        let addr = addr.to_string();
        let t = self.clone();
        Box::pin(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            // The name given to rustls only chooses SNI; the certificate is
            // checked against the peer's node name after the handshake.
            let host = addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let sni = ServerName::try_from(host.to_string())
                .unwrap_or_else(|_| ServerName::try_from("cohort-node").expect("a valid DNS name"));
            let tls = TlsConnector::from(t.current().client.clone())
                .connect(sni, stream)
                .await
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("TLS with {addr}: {}", explain(&e)))
                })?;
            let identity = identity_of(tls.get_ref().1.peer_certificates());
            Ok(framed(tls, addr, t.max_frame, identity, false))
        })
    }
}
