//! Peer sessions: the handshake, liveness ticks, the transitive mesh and
//! reconnection, as a sans-IO state machine.
//!
//! The runtime (or the simulator) tells the cluster about connections
//! opening, frames arriving, connections closing and time passing; the
//! cluster answers with [`Effect`]s (dial, send, close, node up/down) and with
//! [`Upcall`]s for the rest of the node core (session frames, peers up/down).
//!
//! Handshake (dialer D, acceptor A):
//! 1. D → A `Hello` (version, name, creation, listen address, nonce_d)
//! 2. A → D `Challenge` (the same fields for A, nonce_a)
//! 3. D → A `Response` (HMAC(cookie, dialer label, transcript))
//! 4. A → D `Ack` (HMAC(cookie, acceptor label, transcript)); A is up
//! 5. D checks the proof; D is up.
//!
//! When both nodes dial each other at once, the connection dialed by the
//! node with the smaller name is kept, decided identically on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod handshake;
mod mesh;
mod session;

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use tracing::{debug, error, info, warn};

use super::auth::{self, Cookie, Role, Transcript};
use super::global_group::{GlobalGroupsConfig, Visibility};
use super::pid::NodeName;
use super::proto::{Frame, Hello, Nonce, PeerInfo, RefuseReason, NONCE_LEN, PROTOCOL_VERSION};
use super::time::Time;
use super::{ConnId, ConnectError, DownReason, Effect, Effects, ReqId};

/// Settings of the peer-session layer.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How often a tick is sent to every peer.
    pub tick_interval: Duration,
    /// A peer silent for this long is declared down.
    pub peer_timeout: Duration,
    /// A handshake not finished within this time is abandoned.
    pub handshake_timeout: Duration,
    /// Connect to the peers of peers (transitive full mesh).
    pub mesh: bool,
    /// Reconnect to known nodes after a connection is lost.
    pub reconnect: bool,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Global groups: whom to mesh with, which sessions are hidden.
    pub groups: GlobalGroupsConfig,
    /// Inbound connections allowed in handshake at once; the next one is
    /// refused ([`RefuseReason::Busy`]) and closed at once.
    pub max_handshakes: usize,
    /// Dials this node runs at once to nodes it just heard of (from peer
    /// lists); the others wait in a queue, in random order, and start as
    /// those finish. When every node of a forming mesh learns of all the
    /// others at once, this keeps each from dialing them all together (and
    /// from overrunning the others' `max_handshakes`), and the other node
    /// of a pair has often reached this one by the time its turn comes, so
    /// the dial is skipped. A dial holds its place until its session is up,
    /// it fails, or one `tick_interval` has passed (a dial hanging into a
    /// partition does not stall the queue). Redials after a failure (with
    /// their backoff) and connections asked for on purpose
    /// ([`Cluster::connect`]) never wait. 0 is taken as 1.
    pub max_dials: usize,
    /// When a connection claims the name of a node with an up session,
    /// that session is probed ([`Frame::Ping`]); if no answer comes within
    /// this time (or it closes), the newcomer replaces it, else the
    /// newcomer is refused ([`RefuseReason::Alive`]).
    pub probe_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            tick_interval: Duration::from_millis(1000),
            peer_timeout: Duration::from_millis(5000),
            handshake_timeout: Duration::from_millis(5000),
            mesh: true,
            reconnect: true,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(5000),
            groups: GlobalGroupsConfig::default(),
            max_handshakes: 64,
            max_dials: 16,
            probe_timeout: Duration::from_millis(1000),
        }
    }
}

/// Counters of the handshake layer and of sessions, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// Handshakes abandoned because they did not finish in time.
    pub timeouts: u64,
    /// Inbound connections refused because `max_handshakes` were in progress.
    pub refused_busy: u64,
    /// Connections refused because a node with the claimed name answered a
    /// liveness probe.
    pub refused_alive: u64,
    /// Sessions replaced by a newer creation after a failed liveness probe
    /// (or because the old session closed while it was probed).
    pub replaced: u64,
    /// Sessions that came up (a node seen as up, however often).
    pub sessions_up: u64,
    /// Sessions that ended (each a node-down event).
    pub sessions_down: u64,
}

/// A newcomer waiting for the liveness probe of the session it would replace.
#[derive(Debug)]
struct Probe {
    /// The up session's connection that was sent a `Ping`.
    old: ConnId,
    /// The number the `Pong` must carry.
    id: u64,
    /// When the old session is deemed dead.
    deadline: Time,
    /// Which side of the newcomer's handshake this node is on: what
    /// happens when the old session is deemed dead.
    side: Role,
}

/// What the cluster tells the rest of the node core.
#[derive(Debug)]
pub enum Upcall {
    /// A session with `node` is up.
    PeerUp {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
    },
    /// The session with `node` ended; everything it owned must go.
    PeerDown {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// Why.
        reason: DownReason,
    },
    /// A session frame arrived from an up peer.
    Frame {
        /// The sender.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// The frame.
        frame: Frame,
    },
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node dialed.
    Outbound,
    /// The peer dialed.
    Inbound,
}

#[derive(Debug)]
enum State {
    /// Outbound, waiting for the transport to connect.
    Dialing,
    /// Outbound, `Hello` sent.
    HelloSent { nonce: Nonce },
    /// Outbound, `Response` sent; `peer` is the acceptor's `Challenge`.
    ResponseSent { peer: Hello, nonce: Nonce },
    /// Inbound, waiting for `Hello`.
    AwaitHello,
    /// Inbound, `Challenge` sent; `peer` is the dialer's `Hello`.
    ChallengeSent { peer: Hello, nonce: Nonce },
    /// Authenticated session.
    Up { node: NodeName, creation: u32 },
}

#[derive(Debug)]
struct Conn {
    dir: Direction,
    addr: String,
    opened: Time,
    last_heard: Time,
    state: State,
    /// The node we meant to reach, when dialing a known node.
    expect: Option<NodeName>,
    /// `connect` requests answered when this connection is up or fails.
    reqs: Vec<ReqId>,
    /// A dial to a node heard of that counts against `max_dials`: until
    /// its session is up, or for one tick interval at most (a dial that
    /// hangs, into a partition or to a dead host, does not hold its place
    /// until the connect times out).
    paced: bool,
}

impl Conn {
    /// Opened on purpose (a seed, `connect`), not to a node we heard of.
    fn on_purpose(&self) -> bool {
        self.dir == Direction::Outbound && self.expect.is_none()
    }

    /// An inbound connection whose handshake has not finished.
    fn pending_inbound(&self) -> bool {
        self.dir == Direction::Inbound && !matches!(self.state, State::Up { .. })
    }

    /// The peer's creation, once the handshake has told it.
    fn peer_creation(&self) -> Option<u32> {
        match &self.state {
            State::ResponseSent { peer, .. } | State::ChallengeSent { peer, .. } => {
                Some(peer.creation)
            }
            State::Up { creation, .. } => Some(*creation),
            _ => None,
        }
    }

    /// The node this connection is meant to reach: the name it was dialed
    /// for, or the one the handshake told. A failed handshake redials it
    /// (when it is known), whether the dial named it or only its address.
    fn whom(&self) -> Option<NodeName> {
        self.expect.clone().or_else(|| self.peer_name().cloned())
    }

    /// The peer's name, once the handshake has told it.
    fn peer_name(&self) -> Option<&NodeName> {
        match &self.state {
            State::ResponseSent { peer, .. } | State::ChallengeSent { peer, .. } => {
                Some(&peer.name)
            }
            State::Up { node, .. } => Some(node),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Peer {
    conn: ConnId,
    creation: u32,
    /// One of us opened this session on purpose and sent
    /// [`Frame::Introduce`]. Such sessions form a tree over the cluster
    /// (each node introduces itself to a seed), and news of nodes travels
    /// along it: each node hears of a new node about once.
    introduction: bool,
    /// Our view as we last told it to this peer ([`Frame::Digest`]).
    told: Option<View>,
    /// The peer's view as it last told it.
    heard: Option<View>,
    /// Our view when we last sent this peer our whole list.
    pushed: Option<View>,
}

impl Peer {
    fn new(conn: ConnId, creation: u32) -> Peer {
        Peer {
            conn,
            creation,
            introduction: false,
            told: None,
            heard: None,
            pushed: None,
        }
    }
}

/// A node's view of its own global group, in brief: how many of its nodes
/// it knows of (itself included) and the XOR of a fixed hash of their
/// names. Two nodes with the same view almost surely know the same nodes,
/// and each dials every node it knows of, so equal views everywhere make a
/// full mesh. Kept up to date as nodes are learned and forgotten, so
/// comparing costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    count: u32,
    hash: u64,
}

impl View {
    fn of(me: &NodeName) -> View {
        View {
            count: 1,
            hash: View::hash(me),
        }
    }

    fn hash(node: &NodeName) -> u64 {
        use std::hash::BuildHasher;
        // A fixed seed: every node must hash a name the same way.
        foldhash::fast::FixedState::with_seed(0x636f_686f_7274).hash_one(node.as_str())
    }

    /// Adds a node to the view, or takes it out (XOR is its own inverse).
    fn toggle(&mut self, node: &NodeName, added: bool) {
        self.hash ^= View::hash(node);
        if added {
            self.count += 1;
        } else {
            self.count -= 1;
        }
    }
}

#[derive(Debug)]
struct Known {
    addr: String,
    attempts: u32,
    next_try: Option<Time>,
}

/// The peer-session state machine of one node.
#[derive(Debug)]
pub struct Cluster {
    me: NodeName,
    creation: u32,
    listen: Option<String>,
    cookie: Cookie,
    cfg: ClusterConfig,
    vis: Visibility,
    rng: StdRng,
    next_conn: ConnId,
    conns: BTreeMap<ConnId, Conn>,
    peers: BTreeMap<NodeName, Peer>,
    /// Bumped whenever a peer comes up or goes down, so callers can keep
    /// what they derive from the up peers until it changes.
    peers_gen: u64,
    /// The connections that name each node, as the node they were dialed
    /// to reach or the peer their handshake told (a superset: callers check
    /// the connection itself). Asking "which connections are with this
    /// node" looks here instead of at every connection: a node of a large
    /// mesh has one connection per peer and asks once per handshake and
    /// per node it hears of.
    named: BTreeMap<NodeName, BTreeSet<ConnId>>,
    /// Inbound connections whose handshake has not finished (checked
    /// against `max_handshakes` at every accept).
    inbound_pending: usize,
    /// Connections that count against `max_dials` (see `Conn::paced`).
    paced_dials: usize,
    /// Nodes heard of waiting for a dial (`max_dials` were under way), by
    /// a random key: they are dialed in random order, so that the nodes of
    /// a forming mesh do not all dial the same node first.
    dial_queue: BTreeSet<(u64, NodeName)>,
    /// The key of each node in `dial_queue`.
    queued: BTreeMap<NodeName, u64>,
    known: BTreeMap<NodeName, Known>,
    /// This node's view of its own global group (see [`View`]).
    view: View,
    /// Nodes forgotten on purpose (a goodbye, `disconnect`, discovery):
    /// gossip does not teach them again.
    forgotten: BTreeSet<NodeName>,
    /// When each known node waiting for a redial is tried next (the
    /// `next_try` of its [`Known`], ordered by time).
    redials: BTreeSet<(Time, NodeName)>,
    /// The time of the first entry of `redials` (asked at every input).
    first_redial: Option<Time>,
    /// Nodes to introduce ourselves to once their session is up: our
    /// connection on purpose lost a tie-break to theirs.
    introduce_to: BTreeSet<NodeName>,
    blocked: BTreeSet<NodeName>,
    /// `connect` requests waiting for a node that another connection is bringing up.
    waiting: Vec<(NodeName, ReqId, Time)>,
    next_tick: Time,
    shutting_down: bool,
    /// Refused handshakes (a wrong cookie either way, a refusal by the
    /// peer) by who and why: when the last was logged and how many came
    /// since (see [`Cluster::log_refusal`]).
    refusals: BTreeMap<String, (Time, u64)>,
    /// Authenticated newcomers (by connection) waiting for the liveness
    /// probe of the up session with the same name.
    probes: BTreeMap<ConnId, Probe>,
    next_probe: u64,
    stats: HandshakeStats,
}

impl Cluster {
    /// A cluster layer for node `me` of `creation`.
    pub fn new(
        me: NodeName,
        creation: u32,
        listen: Option<String>,
        cookie: Cookie,
        cfg: ClusterConfig,
        rng: StdRng,
        now: Time,
    ) -> Self {
        let next_tick = now + cfg.tick_interval;
        let vis = Visibility::of(&cfg.groups, &me);
        let view = View::of(&me);
        Cluster {
            me,
            creation,
            listen,
            cookie,
            cfg,
            vis,
            rng,
            next_conn: 1,
            conns: BTreeMap::new(),
            peers: BTreeMap::new(),
            peers_gen: 0,
            named: BTreeMap::new(),
            inbound_pending: 0,
            paced_dials: 0,
            dial_queue: BTreeSet::new(),
            queued: BTreeMap::new(),
            known: BTreeMap::new(),
            view,
            introduce_to: BTreeSet::new(),
            redials: BTreeSet::new(),
            first_redial: None,
            forgotten: BTreeSet::new(),
            blocked: BTreeSet::new(),
            waiting: Vec::new(),
            next_tick,
            shutting_down: false,
            refusals: BTreeMap::new(),
            probes: BTreeMap::new(),
            next_probe: 1,
            stats: HandshakeStats::default(),
        }
    }

    /// Counters of the handshake layer and of sessions.
    pub fn handshake_stats(&self) -> HandshakeStats {
        self.stats
    }

    /// A number in `0..n` (0 when `n` is 0) from this node's seeded generator.
    pub(crate) fn random_below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    /// This node's name.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// This node's creation.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// Sets the address this node listens on (announced in handshakes).
    pub fn set_listen(&mut self, listen: Option<String>) {
        self.listen = listen;
    }

    /// The peers with an up session, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeName> {
        self.peers.keys()
    }

    /// A number that changes whenever a peer comes up or goes down (the
    /// set of [`Cluster::nodes`] or one of their creations changed).
    pub fn peers_generation(&self) -> u64 {
        self.peers_gen
    }

    /// The creation of an up peer.
    pub fn peer_creation(&self, node: &NodeName) -> Option<u32> {
        self.peers.get(node).map(|p| p.creation)
    }

    /// The up peers with their creations, in name order (one walk, no
    /// lookup per peer).
    pub fn peers_with_creation(&self) -> impl Iterator<Item = (&NodeName, u32)> {
        self.peers.iter().map(|(n, p)| (n, p.creation))
    }

    /// The connection carrying the session with an up peer.
    pub fn peer_conn(&self, node: &NodeName) -> Option<ConnId> {
        self.peers.get(node).map(|p| p.conn)
    }

    /// The last known listen address of `node`.
    pub fn known_addr(&self, node: &NodeName) -> Option<&str> {
        self.known.get(node).map(|k| k.addr.as_str())
    }

    /// Whether a session with `node` is hidden.
    pub fn is_hidden(&self, node: &NodeName) -> bool {
        self.vis.is_hidden(node)
    }

    /// Nodes whose traffic is blocked.
    pub fn blocked(&self) -> impl Iterator<Item = &NodeName> {
        self.blocked.iter()
    }

    /// Adds connection `conn`, indexed by the node it is meant to reach.
    fn insert_conn(&mut self, conn: ConnId, c: Conn) {
        if let Some(n) = &c.expect {
            self.index_name(n.clone(), conn);
        }
        if c.pending_inbound() {
            self.inbound_pending += 1;
        }
        if c.paced {
            self.paced_dials += 1;
        }
        self.conns.insert(conn, c);
    }

    /// Removes connection `conn` and its index entries.
    fn remove_conn(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        if c.pending_inbound() {
            self.inbound_pending -= 1;
        }
        if c.paced {
            self.paced_dials -= 1;
        }
        for n in c.expect.iter().chain(c.peer_name()) {
            if let Some(set) = self.named.get_mut(n) {
                set.remove(&conn);
                if set.is_empty() {
                    self.named.remove(n);
                }
            }
        }
        Some(c)
    }

    /// Sets the state of connection `conn`, indexing the peer it names.
    fn set_state(&mut self, conn: ConnId, state: State) {
        let c = self.conns.get_mut(&conn).expect("present");
        let was = c.pending_inbound();
        c.state = state;
        let is = c.pending_inbound();
        if c.paced && matches!(c.state, State::Up { .. }) {
            c.paced = false;
            self.paced_dials -= 1;
        }
        let name = c.peer_name().cloned();
        match (was, is) {
            (true, false) => self.inbound_pending -= 1,
            (false, true) => self.inbound_pending += 1,
            _ => {}
        }
        if let Some(n) = name {
            self.index_name(n, conn);
        }
    }

    fn index_name(&mut self, name: NodeName, conn: ConnId) {
        self.named.entry(name).or_default().insert(conn);
    }

    /// The connections that may be with `name` (see `named`), in id order.
    fn named(&self, name: &NodeName) -> impl Iterator<Item = (ConnId, &Conn)> {
        debug_assert!(
            self.conns
                .iter()
                .filter(|(_, c)| c.expect.as_ref() == Some(name) || c.peer_name() == Some(name))
                .all(|(id, _)| self.named.get(name).is_some_and(|s| s.contains(id))),
            "a connection with {name} is missing from the index"
        );
        self.named
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id).map(|c| (*id, c)))
    }

    fn alloc_conn(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    /// A frame arrived on `conn`.
    pub fn frame(
        &mut self,
        conn: ConnId,
        frame: Frame,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        self.on_frame(conn, frame, now, fx, up);
        self.pump_dials(now, fx);
    }

    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: Frame,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_heard = now;
        // Most frames are ticks on up sessions: hearing one is all they
        // do, so the peer's name is not even looked at.
        if matches!((&frame, &c.state), (Frame::Tick, State::Up { .. }))
            && (self.probes.is_empty() || !self.probes.contains_key(&conn))
        {
            return;
        }
        if matches!(frame, Frame::Refuse { .. }) {
            // A newcomer may give up while a probe decides (its handshake
            // timed out): it is refused as any handshake is, below.
            self.probes.remove(&conn);
        }
        if self.probes.contains_key(&conn) {
            // A newcomer waiting for a probe has nothing to say: an
            // authenticated dialer waits for our Ack, an acceptor for our
            // Response.
            let addr = c.addr.clone();
            warn!(node = %self.me, %addr, kind = frame.kind(), "frame while a liveness probe decides the connection; closing");
            self.probes.remove(&conn);
            return self.refuse(conn, RefuseReason::Protocol, fx);
        }
        if matches!(frame, Frame::Refuse { .. }) && matches!(c.state, State::Up { .. }) {
            // Refusals belong to handshakes; inside a session one is a
            // protocol error and takes the session down (it must not drop
            // the connection while the peer stays up).
            let addr = c.addr.clone();
            warn!(node = %self.me, %addr, "refusal inside a session; closing");
            return self.close(
                conn,
                DownReason::ProtocolError("refusal inside a session".into()),
                now,
                fx,
                up,
            );
        }
        if let Frame::Refuse { reason } = &frame {
            let reason = reason.clone();
            let c = self.remove_conn(conn).expect("present");
            fx.push(Effect::Close {
                conn,
                reason: format!("refused by peer: {reason}"),
            });
            let whom = c.whom();
            match (&reason, whom.clone()) {
                (RefuseReason::Simultaneous | RefuseReason::AlreadyConnected, Some(peer)) => {
                    debug!(node = %self.me, %peer, %reason, "handshake refused");
                    if c.on_purpose() {
                        self.introduce(&peer, fx);
                    }
                    self.park(&peer, c.reqs, now, fx);
                    // Should the kept connection never come up, try again.
                    self.schedule_reconnect(&peer, now);
                    return;
                }
                (RefuseReason::Alive, peer) => {
                    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
                    error!(node = %self.me, addr = %c.addr, %peer,
                        "refused by peer: a node named {} is alive and connected there; this node's name clashes with it", self.me);
                }
                (RefuseReason::Version(theirs), _) => self.log_refusal(
                    &format!("{} {reason}", c.addr),
                    &c.addr,
                    || format!("connection refused by peer: it speaks protocol version {theirs}, this node version {PROTOCOL_VERSION}"),
                    now,
                ),
                _ => self.log_refusal(
                    &format!("{} {reason}", c.addr),
                    &c.addr,
                    || format!("connection refused by peer: {reason}"),
                    now,
                ),
            }
            let err = match &reason {
                RefuseReason::Version(theirs) => ConnectError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: *theirs,
                },
                _ => ConnectError::Refused(reason.clone()),
            };
            for req in c.reqs {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(err.clone()),
                });
            }
            if let Some(name) = whom {
                self.schedule_reconnect(&name, now);
            }
            return;
        }
        match (&c.state, frame) {
            (State::AwaitHello, Frame::Hello(h)) => self.on_hello(conn, h, fx),
            (State::HelloSent { .. }, Frame::Challenge(h)) => self.on_challenge(conn, h, now, fx),
            (State::ChallengeSent { .. }, Frame::Response { proof }) => {
                self.on_response(conn, proof, now, fx, up)
            }
            (State::ResponseSent { .. }, Frame::Ack { proof }) => {
                self.on_ack(conn, proof, now, fx, up)
            }
            (State::Up { node, creation }, frame) => {
                let (node, creation) = (node.clone(), *creation);
                match frame {
                    Frame::Tick => {}
                    Frame::Ping(id) => {
                        fx.push(Effect::Send {
                            conn,
                            frame: Frame::Pong(id),
                        });
                    }
                    Frame::Pong(id) => self.on_pong(conn, id, now, fx),
                    Frame::Peers(list) => {
                        let news = self.on_peers(list, now, fx);
                        self.spread(&node, news, fx);
                    }
                    Frame::Introduce(list) => self.on_introduce(&node, list, now, fx),
                    Frame::Welcome(list) => self.on_welcome(&node, list, now, fx),
                    Frame::Digest { count, hash } => {
                        self.on_digest(&node, View { count, hash }, fx)
                    }
                    Frame::Bye => {
                        info!(node = %self.me, peer = %node, "peer said goodbye");
                        self.close(conn, DownReason::PeerLeft, now, fx, up);
                    }
                    Frame::Hello(_)
                    | Frame::Challenge(_)
                    | Frame::Response { .. }
                    | Frame::Ack { .. }
                    | Frame::Refuse { .. } => {
                        let addr = self.conns[&conn].addr.clone();
                        warn!(node = %self.me, peer = %node, %addr, "handshake frame inside a session; closing");
                        self.close(
                            conn,
                            DownReason::ProtocolError("handshake frame inside a session".into()),
                            now,
                            fx,
                            up,
                        );
                    }
                    frame => up.push(Upcall::Frame {
                        node,
                        creation,
                        frame,
                    }),
                }
            }
            (_, frame) => {
                let addr = c.addr.clone();
                warn!(node = %self.me, %addr, kind = frame.kind(), "unexpected frame during handshake; closing");
                self.refuse(conn, RefuseReason::Protocol, fx);
            }
        }
    }
}
