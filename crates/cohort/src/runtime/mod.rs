//! The tokio runtime around the core: a [`Node`] handle, its driver task,
//! connection tasks and process mailboxes.
//!
//! The [`NodeCore`] sits behind one lock (see
//! `engine`); API calls, connection readers and the timer task take turns
//! feeding it and carry out its effects. Hot paths skip it, routed by the
//! core's own decision (`cohort_proto::route`): a send to a local pid goes
//! straight to the mailbox, a send to a remote pid straight to the peer's
//! connection writer (after the changes the core holds, if any), and a
//! received message straight from the connection reader to the mailbox.

mod addr;
mod cell;
mod engine;
mod events;
mod global_group;
mod global_group_state;
mod link;
mod names;
mod names_state;
mod pg;
mod pg_state;
mod process;
mod shared;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::oneshot;

pub use self::addr::ToAddr;
pub use self::events::NodeEvent;
pub use self::global_group::Where;
pub use self::global_group_state::GroupNodeEvent;
pub use self::names::NameTable;
pub use self::pg::{PgMonitor, Scope, ScopeSnapshot};
pub use self::process::Process;
pub use self::stream::{EventStream, Lagged, EVENT_BUFFER};

use tracing::warn;

use self::cell::EngineCell;
use self::names_state::NamesShared;
pub(crate) use self::shared::Shared;
use crate::cookie::CookieSource;
use crate::core::cluster::ClusterConfig;
use crate::core::pid::{ExitReason, NodeName, Pid};
use crate::core::process::MonitorRef;
use crate::core::proto::DEFAULT_MAX_FRAME;
use crate::core::{ConnectError, CoreConfig, NodeCore};
use crate::discovery::state::State as DiscoveryState;
use crate::error::{CodecError, ConfigError, StartError};
use crate::transport::tcp::TcpTransport;
use crate::transport::tls::{TlsError, TlsFiles, TlsTransport};
use crate::transport::Transport;

/// Configures and starts a [`Node`].
///
/// Defaults: listen on `127.0.0.1:0`, the per-user cookie file, ticks every
/// 1 s, a peer silent for 5 s is down, handshakes must finish within 5 s,
/// transitive mesh and automatic reconnection on (backoff 100 ms doubling to
/// 5 s, jittered), frames up to 16 MiB.
pub struct NodeBuilder {
    name: Option<String>,
    listen: String,
    cookie: CookieSource,
    cluster: ClusterConfig,
    max_frame: usize,
    max_meta: Option<usize>,
    max_queued: usize,
    transport: Option<Arc<dyn Transport>>,
    tls: Option<TlsFiles>,
    seed: Option<u64>,
    names: crate::core::names::NamesConfig,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Default for NodeBuilder {
    fn default() -> Self {
        NodeBuilder {
            name: None,
            listen: "127.0.0.1:0".into(),
            cookie: CookieSource::Default,
            cluster: ClusterConfig::default(),
            max_frame: DEFAULT_MAX_FRAME,
            max_meta: None,
            max_queued: 64 * 1024 * 1024,
            transport: None,
            tls: None,
            seed: None,
            names: Default::default(),
        }
    }
}

impl NodeBuilder {
    /// The node's name, `name@host` (required).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where to accept connections ([`ToAddr`]: a `SocketAddr`, an
    /// `(ip, port)` pair or `"host:port"`); port 0 picks a free port (read
    /// it back with [`Node::local_addr`]).
    pub fn listen(mut self, addr: impl ToAddr) -> Self {
        self.listen = addr.to_addr();
        self
    }

    /// Uses this cookie.
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = CookieSource::Value(cookie.into());
        self
    }

    /// Reads the cookie from this file.
    pub fn cookie_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.cookie = CookieSource::File(path.into());
        self
    }

    /// Sets where the cookie comes from.
    pub fn cookie_source(mut self, source: CookieSource) -> Self {
        self.cookie = source;
        self
    }

    /// How often ticks are sent to every peer (default 1 s).
    pub fn tick_interval(mut self, d: Duration) -> Self {
        self.cluster.tick_interval = d;
        self
    }

    /// How long a silent peer stays up (default 5 s).
    pub fn peer_timeout(mut self, d: Duration) -> Self {
        self.cluster.peer_timeout = d;
        self
    }

    /// How long a handshake may take (default 5 s).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.cluster.handshake_timeout = d;
        self
    }

    /// How many inbound connections may be in handshake at once (default
    /// 64); the next one is refused and closed at once. Until its handshake
    /// is done a connection may send frames of at most
    /// [`PRE_AUTH_MAX_FRAME`](crate::transport::PRE_AUTH_MAX_FRAME) bytes.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.cluster.max_handshakes = n;
        self
    }

    /// How long an up session has to answer a liveness probe when another
    /// connection claims its node's name (default 1 s, at most half the
    /// handshake timeout): it answers, and the newcomer is refused; it stays
    /// silent or closes, and the newcomer (a restarted node) replaces it.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.cluster.probe_timeout = d;
        self
    }

    /// Global groups (OTP `global_group`): checked at start; a node listed
    /// twice or a malformed entry stops the node with a message naming it.
    pub fn global_groups(mut self, cfg: crate::core::global_group::GlobalGroupsConfig) -> Self {
        self.cluster.groups = cfg;
        self
    }

    /// Whether to connect to the peers of peers (default true).
    pub fn mesh(mut self, on: bool) -> Self {
        self.cluster.mesh = on;
        self
    }

    /// Whether to reconnect to lost nodes on its own (default true).
    pub fn reconnect(mut self, on: bool) -> Self {
        self.cluster.reconnect = on;
        self
    }

    /// Reconnect backoff: first delay and largest delay.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.cluster.backoff_min = min;
        self.cluster.backoff_max = max;
        self
    }

    /// Bytes that may wait in one peer's outgoing queue before replication
    /// deltas to it are shed (default 64 MiB); the peer then repairs the gap
    /// by re-asking, instead of this node growing without limit.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued = bytes;
        self
    }

    /// Largest frame accepted from a peer (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Largest metadata of a name or a process-group membership, in bytes
    /// (default 64 KiB, or the max frame size less 4 KiB when that is
    /// smaller); a larger one is refused with `TooLong`. It must fit in a
    /// frame: at most the max frame size less 4 KiB.
    pub fn max_meta(mut self, bytes: usize) -> Self {
        self.max_meta = Some(bytes);
        self
    }

    /// Uses another transport (an in-memory network in tests).
    pub fn transport(mut self, t: impl Transport) -> Self {
        self.transport = Some(Arc::new(t));
        self
    }

    /// Mutual TLS between nodes, with these PEM files: the node accepts
    /// and dials only peers whose certificate chains to the CA and is valid
    /// for the host of their node name; its own certificate must be valid
    /// for its own host. The cookie handshake runs inside TLS as before.
    /// Re-read the files with [`Node::reload_tls`].
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Seeds the node's randomness (creation, nonces, jitter) for
    /// reproducible tests. Without it, the OS supplies the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The global name tables (default: one locked table, `global`).
    pub fn names(mut self, cfg: crate::core::names::NamesConfig) -> Self {
        self.names = cfg;
        self
    }

    /// Checks the settings, binds the listener and starts the node.
    pub async fn start(self) -> Result<Node, StartError> {
        let name = NodeName::new(self.name.as_deref().ok_or(StartError::MissingName)?)?;
        let c = &self.cluster;
        if c.tick_interval.is_zero() {
            return Err(StartError::Config(ConfigError::ZeroTick));
        }
        if c.peer_timeout <= c.tick_interval {
            return Err(StartError::Config(ConfigError::PeerTimeout {
                peer_timeout: c.peer_timeout,
                tick: c.tick_interval,
            }));
        }
        if c.backoff_min.is_zero() || c.backoff_max < c.backoff_min {
            return Err(StartError::Config(ConfigError::Backoff));
        }
        if c.max_handshakes == 0 {
            return Err(StartError::Config(ConfigError::ZeroHandshakes));
        }
        if c.probe_timeout.is_zero() {
            return Err(StartError::Config(ConfigError::ZeroProbeTimeout));
        }
        if self.max_frame < 1024 {
            return Err(StartError::Config(ConfigError::MaxFrame));
        }
        let mut cluster = self.cluster.clone();
        // The probe must end well within the newcomer's handshake.
        cluster.probe_timeout = cluster.probe_timeout.min(cluster.handshake_timeout / 2);
        let max_meta = match self.max_meta {
            Some(m) => m,
            // The default shrinks to fit a small max frame.
            None => crate::core::limits::DEFAULT_MAX_META.min(self.max_frame.saturating_sub(4096)),
        };
        if max_meta + 4096 > self.max_frame {
            return Err(StartError::Config(ConfigError::MaxMeta {
                max_meta,
                max_frame: self.max_frame,
            }));
        }
        self.cluster
            .groups
            .validate(&name)
            .map_err(StartError::Groups)?;
        let cookie = self.cookie.load().map_err(StartError::Cookie)?;
        let tls = match &self.tls {
            Some(_) if self.transport.is_some() => {
                return Err(StartError::Config(ConfigError::TlsWithTransport))
            }
            Some(files) => {
                let t = TlsTransport::new(files.clone(), self.max_frame)?;
                if let Err(why) = t.check_own(name.as_str()) {
                    warn!(node = %name, "peers will refuse this node: {why}");
                }
                Some(t)
            }
            None => None,
        };
        let transport: Arc<dyn Transport> = match (&tls, self.transport) {
            (Some(t), _) => Arc::new(t.clone()),
            (None, Some(t)) => t,
            (None, None) => Arc::new(TcpTransport::new(self.max_frame)),
        };
        let listener =
            transport
                .listen(&self.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: self.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr();
        let mut rng = match self.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let creation = rng.random_range(1..=u32::MAX);
        let epoch = tokio::time::Instant::now();
        let mut core = NodeCore::new(
            CoreConfig {
                name: name.clone(),
                creation,
                listen: Some(local_addr.clone()),
                cookie,
                cluster,
                names: self.names.clone(),
            },
            rng,
            crate::core::time::Time::ZERO,
        );
        core.set_max_meta(max_meta);
        core.set_max_frame(self.max_frame);
        let shared = Arc::new(Shared {
            name,
            creation,
            local_addr,
            mailboxes: DashMap::default(),
            links: DashMap::new(),
            next_serial: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            names: NamesShared::new(&self.names, u64::from(creation)),
            engine: EngineCell::new(
                core,
                transport,
                epoch,
                self.cluster.handshake_timeout,
                self.max_queued,
            ),
            pg_subs: Default::default(),
            traffic: Default::default(),
            global_group_reqs: Default::default(),
            discovery: Default::default(),
            tls,
        });
        shared.with(|core, now, _| core.pg_start_scope(crate::core::pg::DEFAULT_SCOPE, now));
        engine::start(&shared, listener);
        Ok(Node {
            inner: Arc::new(Inner { shared }),
        })
    }
}

/// One up peer as this node sees it: where it is, what went over the
/// session and how far behind it this node's process groups are
/// ([`Node::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer.
    pub node: NodeName,
    /// Its creation (which incarnation of the name is up).
    pub creation: u32,
    /// Where it listens (from its handshake or a peer list), or the other
    /// end of the connection when it announced no listen address.
    pub addr: String,
    /// False for a hidden session (between a hidden global group and another).
    pub visible: bool,
    /// When the connection carrying the session was opened.
    pub since: std::time::SystemTime,
    /// Frames received over the session's connection (the handshake's included).
    pub frames_in: u64,
    /// Frames sent over it.
    pub frames_out: u64,
    /// Bytes received over it (frame bodies).
    pub bytes_in: u64,
    /// Bytes sent over it (frame bodies).
    pub bytes_out: u64,
    /// Process-group changes this node is behind the heads the peer last
    /// advertised, summed over scopes.
    pub sync_lag: u64,
}

/// Counters of a node, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Frames received from peers.
    pub frames_in: u64,
    /// Frames sent to peers.
    pub frames_out: u64,
    /// Bytes received from peers (frame bodies).
    pub bytes_in: u64,
    /// Bytes sent to peers (frame bodies).
    pub bytes_out: u64,
    /// Replication frames shed because a peer's queue was full.
    pub shed_frames: u64,
    /// Process-group changes this node is behind its peers' advertised heads.
    pub pg_lag: u64,
    /// Live local processes.
    pub processes: u64,
    /// Handshakes abandoned because they did not finish in time.
    pub handshake_timeouts: u64,
    /// Inbound connections refused because too many handshakes were in
    /// progress ([`NodeBuilder::max_handshakes`]).
    pub handshakes_refused_busy: u64,
    /// Connections refused because they claimed the name of a connected
    /// node that answered a liveness probe.
    pub handshakes_refused_alive: u64,
    /// Sessions replaced by a newer creation of the same node.
    pub sessions_replaced: u64,
    /// Sessions with other nodes that came up since the node started.
    pub sessions_up: u64,
    /// Sessions with other nodes that went down since the node started
    /// (each one a node-down event).
    pub sessions_down: u64,
}

struct Inner {
    shared: Arc<Shared>,
}

/// A handle that does not keep the node running (a discovery task holds
/// one: a node whose last handle is dropped stops).
#[derive(Clone)]
pub(crate) struct WeakNode(std::sync::Weak<Inner>);

impl WeakNode {
    /// The node, while a handle to it exists.
    pub(crate) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: leave the cluster in the background.
        let shared = self.shared.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { shared.shutdown().await });
        } else {
            shared.abort();
        }
    }
}

/// A running node. Cheap to clone; the node stops when the last handle
/// (including those held by its processes) is dropped, or at
/// [`Node::shutdown`].
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name())
            .field("creation", &self.creation())
            .finish()
    }
}

impl Node {
    /// Starts configuring a node; [`NodeBuilder::start`] starts it.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use cohort_registry::Node;
    ///
    /// let node = Node::builder()
    ///     .name("a@127.0.0.1")
    ///     .listen("127.0.0.1:0") // an ephemeral port; see local_addr()
    ///     .cookie("secret")
    ///     .peer_timeout(Duration::from_secs(10))
    ///     .start()
    ///     .await?;
    /// assert_eq!(node.name().as_str(), "a@127.0.0.1");
    /// assert!(node.nodes().is_empty());
    /// node.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.shared().name
    }

    /// This node's creation: new at every start, part of every local pid.
    pub fn creation(&self) -> u32 {
        self.shared().creation
    }

    /// Re-reads the TLS certificate, key and CA files given to
    /// [`NodeBuilder::tls`]. New connections use them; sessions already up
    /// keep theirs. On error nothing changes and the error says why.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        let t = self.shared().tls.as_ref().ok_or(TlsError::NotEnabled)?;
        t.reload()?;
        if let Err(why) = t.check_own(self.name().as_str()) {
            warn!(node = %self.name(), "peers will refuse new connections of this node: {why}");
        }
        Ok(())
    }

    /// Whether the node talks to peers over TLS.
    pub fn uses_tls(&self) -> bool {
        self.shared().tls.is_some()
    }

    /// The address this node accepts connections on, as `host:port` text
    /// (the form any transport gives; pass it to [`Node::connect`]).
    pub fn local_addr(&self) -> String {
        self.shared().local_addr.clone()
    }

    /// The address this node accepts connections on as a [`SocketAddr`](std::net::SocketAddr);
    /// `None` on a transport whose addresses are not IP addresses (the
    /// in-memory one of tests).
    pub fn local_socket_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared().local_addr.parse().ok()
    }

    /// Connects to the node at `addr` ([`ToAddr`]: `"host:port"`, a
    /// `SocketAddr`, an `(ip, port)` pair) and waits until the session is up.
    /// With the mesh on, the peer's peers are connected next, in the background.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cohort_registry::{ConnectError, Node, RefuseReason};
    ///
    /// let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
    /// let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
    /// assert_eq!(b.connect(a.local_socket_addr().unwrap()).await?, *a.name());
    /// assert_eq!(b.nodes(), vec![a.name().clone()]);
    ///
    /// // A node with another cookie is refused, and says why.
    /// let c = Node::builder().name("c@127.0.0.1").cookie("other").start().await?;
    /// let err = c.connect(&a.local_addr()).await.unwrap_err();
    /// assert!(matches!(err, ConnectError::Refused(RefuseReason::BadCookie)), "{err}");
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, addr: impl ToAddr) -> Result<NodeName, ConnectError> {
        let (tx, rx) = oneshot::channel();
        self.shared().connect_request(addr.to_addr(), tx);
        rx.await.unwrap_or(Err(ConnectError::ShuttingDown))
    }

    /// Ends the session with `node` on purpose; neither side reconnects on
    /// its own. False when it was not connected.
    pub async fn disconnect(&self, node: &NodeName) -> bool {
        self.shared()
            .with(|core, now, _| core.disconnect(node, now))
    }

    /// Stops redialing `node` after its session was lost, unless a session
    /// with it is up or being opened (then nothing changes). True when it
    /// was forgotten. Node discovery does this for a node that left its
    /// results and cannot be reached.
    pub fn forget(&self, node: &NodeName) -> bool {
        self.shared().with(|core, _, _| core.forget(node))
    }

    /// The nodes this node redials on its own (known from an earlier
    /// session or a peer's list, no session up), in name order.
    pub fn redialing(&self) -> Vec<NodeName> {
        self.shared()
            .with(|core, _, _| core.cluster().redialing().cloned().collect())
    }

    /// The discovery strategies running on the node.
    pub(crate) fn discovery_list(&self) -> &std::sync::Mutex<Vec<Arc<DiscoveryState>>> {
        &self.shared().discovery
    }

    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    pub(crate) fn add_task(&self, task: tokio::task::JoinHandle<()>) {
        self.shared().add_task(task);
    }

    /// Fault injection: drops and refuses all traffic with `node` until
    /// [`Node::unblock`].
    pub async fn block(&self, node: &NodeName) {
        self.shared()
            .with(|core, now, _| core.block(node.clone(), now));
    }

    /// Lifts a block and reconnects if the node is known. False when it was
    /// not blocked.
    pub async fn unblock(&self, node: &NodeName) -> bool {
        self.shared().with(|core, now, _| core.unblock(node, now))
    }

    /// The nodes with an up, visible session, in name order. A local read.
    /// Hidden sessions (between a hidden global group and another group)
    /// are left out; [`Node::nodes_hidden`] lists them.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.nodes_where(true)
    }

    /// The nodes with an up hidden session, in name order.
    pub fn nodes_hidden(&self) -> Vec<NodeName> {
        self.nodes_where(false)
    }

    fn nodes_where(&self, visible: bool) -> Vec<NodeName> {
        let mut v: Vec<NodeName> = self
            .shared()
            .links
            .iter()
            .filter(|e| e.value().visible == visible)
            .map(|e| e.key().clone())
            .collect();
        v.sort();
        v
    }

    /// Subscribes to node up/down events from now on: a bounded stream
    /// (see [`EventStream`] for what happens to a subscriber that lags).
    pub fn subscribe(&self) -> EventStream<NodeEvent> {
        let (tx, rx) = stream::channel();
        self.shared().subscribe(tx);
        rx
    }

    /// Sends raw bytes to `to`, from no process. Never fails: a message to
    /// a dead process or an unreachable node is dropped, as in Erlang.
    pub fn send(&self, to: &Pid, payload: impl Into<Bytes>) {
        self.shared().send(to, None, payload.into());
    }

    /// Sends a serde value (encoded with postcard) to `to`, from no process.
    pub fn send_typed<T: Serialize>(&self, to: &Pid, value: &T) -> Result<(), CodecError> {
        let bytes = postcard::to_stdvec(value)?;
        self.send(to, bytes);
        Ok(())
    }

    /// Ends process `pid` (local or remote); its monitors see `reason`.
    pub fn kill(&self, pid: &Pid, reason: ExitReason) {
        self.shared()
            .with(|core, now, _| core.kill(pid, reason, now));
    }

    /// The up peers, in name order, with the traffic of each session and
    /// the sync lag with each ([`Stats`] has the node's totals). One short
    /// look under the node's lock; the counters are read without it.
    pub fn peers(&self) -> Vec<PeerStats> {
        // Read before the lock: no session writer is held under it.
        let hidden = self.nodes_hidden();
        let s = self.shared();
        let e = s.engine.lock();
        let cluster = e.core.cluster();
        let pg = e.core.pg();
        cluster
            .nodes()
            .filter_map(|n| {
                let t = &e.conns.get(&cluster.peer_conn(n)?)?.traffic;
                let c = t.counts.snapshot();
                Some(PeerStats {
                    node: n.clone(),
                    creation: cluster.peer_creation(n).unwrap_or(0),
                    addr: cluster
                        .known_addr(n)
                        .map_or_else(|| t.remote_addr.clone(), str::to_string),
                    visible: !hidden.contains(n),
                    since: t.opened,
                    frames_in: c.frames_in,
                    frames_out: c.frames_out,
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                    sync_lag: pg.lag_of(n),
                })
            })
            .collect()
    }

    /// Traffic and replication counters.
    pub fn stats(&self) -> Stats {
        let s = self.shared();
        let t = &s.traffic;
        let (pg_lag, processes, hs) = s.with(|core, _, _| {
            (
                core.pg().lag(),
                core.processes().len() as u64,
                core.cluster().handshake_stats(),
            )
        });
        let c = t.counts.snapshot();
        Stats {
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            shed_frames: t.shed.load(Ordering::Relaxed),
            pg_lag,
            processes,
            handshake_timeouts: hs.timeouts,
            handshakes_refused_busy: hs.refused_busy,
            handshakes_refused_alive: hs.refused_alive,
            sessions_replaced: hs.replaced,
            sessions_up: hs.sessions_up,
            sessions_down: hs.sessions_down,
        }
    }

    /// Whether a local pid names a live process. A local read.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        let s = self.shared();
        pid.node() == &s.name
            && pid.creation() == s.creation
            && s.mailboxes.contains_key(&pid.serial())
    }

    pub(crate) fn monitor(&self, watcher: &Pid, target: &Pid) -> MonitorRef {
        let s = self.shared();
        let mref = MonitorRef(s.next_ref.fetch_add(1, Ordering::Relaxed));
        // Under the lock the Monitor frame is queued before this call
        // returns, so the watcher's later sends cannot overtake it.
        s.with(|core, _, _| core.monitor(mref, watcher.serial(), target));
        mref
    }

    pub(crate) fn demonitor(&self, watcher: u64, mref: MonitorRef) {
        self.shared()
            .with(|core, _, _| core.demonitor(watcher, mref));
    }

    pub(crate) fn exited(&self, serial: u64, reason: ExitReason) {
        let s = self.shared();
        s.mailboxes.remove(&serial);
        s.with(|core, now, _| core.exited(serial, reason, now));
    }

    pub(crate) fn send_from(&self, from: &Pid, to: &Pid, payload: Bytes) {
        self.shared().send(to, Some(from.clone()), payload);
    }

    /// Stops the node abruptly, without telling its peers, as if its OS
    /// process had died: peers see the connections drop. For tests and
    /// fault drills.
    pub async fn abort(&self) {
        self.shared().abort();
    }

    /// Leaves the cluster: says goodbye to every peer (they drop this node
    /// at once instead of waiting for a timeout) and stops the node.
    pub async fn shutdown(&self) {
        self.shared().shutdown().await;
    }
}
