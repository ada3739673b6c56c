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

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use tracing::{debug, info, warn};

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
        }
    }
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
}

impl Conn {
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
    known: BTreeMap<NodeName, Known>,
    blocked: BTreeSet<NodeName>,
    /// `connect` requests waiting for a node that another connection is bringing up.
    waiting: Vec<(NodeName, ReqId, Time)>,
    next_tick: Time,
    shutting_down: bool,
    /// Refused handshakes (a wrong cookie either way, a refusal by the
    /// peer) by who and why: when the last was logged and how many came
    /// since (see [`Cluster::log_refusal`]).
    refusals: BTreeMap<String, (Time, u64)>,
}

/// The same refused handshake is logged at most once in this time.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// How many kinds of refusal are remembered for that.
const REFUSAL_LOG_KEEP: usize = 1024;

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
            known: BTreeMap::new(),
            blocked: BTreeSet::new(),
            waiting: Vec::new(),
            next_tick,
            shutting_down: false,
            refusals: BTreeMap::new(),
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

    /// The creation of an up peer.
    pub fn peer_creation(&self, node: &NodeName) -> Option<u32> {
        self.peers.get(node).map(|p| p.creation)
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

    fn alloc_conn(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut n);
        n
    }

    fn my_hello(&self, nonce: Nonce) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            name: self.me.clone(),
            creation: self.creation,
            listen: self.listen.clone(),
            nonce,
        }
    }

    // ---- connection lifecycle ------------------------------------------

    /// Asks for a connection to `addr`; `req` is answered with
    /// [`Effect::ConnectDone`] once a session is up or the attempt failed.
    pub fn connect(&mut self, addr: String, req: Option<ReqId>, now: Time, fx: &mut Effects) {
        if self.shutting_down {
            if let Some(req) = req {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(ConnectError::ShuttingDown),
                });
            }
            return;
        }
        self.dial(addr, None, req, now, fx);
    }

    fn dial(
        &mut self,
        addr: String,
        expect: Option<NodeName>,
        req: Option<ReqId>,
        now: Time,
        fx: &mut Effects,
    ) {
        let conn = self.alloc_conn();
        debug!(node = %self.me, conn, %addr, ?expect, "dialing");
        self.conns.insert(
            conn,
            Conn {
                dir: Direction::Outbound,
                addr: addr.clone(),
                opened: now,
                last_heard: now,
                state: State::Dialing,
                expect,
                reqs: req.into_iter().collect(),
            },
        );
        fx.push(Effect::Dial { conn, addr });
    }

    /// The transport accepted a connection from `addr`; returns its id.
    pub fn accepted(&mut self, addr: String, now: Time, fx: &mut Effects) -> ConnId {
        let conn = self.alloc_conn();
        self.conns.insert(
            conn,
            Conn {
                dir: Direction::Inbound,
                addr,
                opened: now,
                last_heard: now,
                state: State::AwaitHello,
                expect: None,
                reqs: Vec::new(),
            },
        );
        if self.shutting_down {
            self.refuse(conn, RefuseReason::ShuttingDown, fx);
        }
        conn
    }

    /// An outbound connection is open: start the handshake.
    pub fn dialed(&mut self, conn: ConnId, now: Time, fx: &mut Effects) {
        let nonce = self.nonce();
        let hello = self.my_hello(nonce);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !matches!(c.state, State::Dialing) {
            return;
        }
        c.state = State::HelloSent { nonce };
        c.opened = now;
        c.last_heard = now;
        fx.push(Effect::Send {
            conn,
            frame: Frame::Hello(hello),
        });
    }

    /// An outbound connection could not be opened.
    pub fn dial_failed(&mut self, conn: ConnId, why: String, now: Time, fx: &mut Effects) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        debug!(node = %self.me, conn, addr = %c.addr, %why, "dial failed");
        for req in c.reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(ConnectError::Io(format!("{}: {why}", c.addr))),
            });
        }
        if let Some(name) = c.expect {
            self.schedule_reconnect(&name, now);
        }
    }

    /// The transport reports the connection closed (by the peer or an error).
    pub fn closed(
        &mut self,
        conn: ConnId,
        why: String,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let was_up = matches!(c.state, State::Up { .. });
        if !was_up {
            debug!(node = %self.me, conn, addr = %c.addr, %why, "connection closed during handshake");
        }
        let expect = c.expect.clone();
        let reason = DownReason::ConnectionClosed(why.clone());
        // Tell the driver too, so it releases what it holds for the connection.
        fx.push(Effect::Close { conn, reason: why });
        self.drop_conn(conn, reason, now, fx, up);
        if !was_up {
            if let Some(name) = expect {
                self.schedule_reconnect(&name, now);
            }
        }
    }

    /// Removes a connection, answering its requests, taking its peer down.
    fn drop_conn(
        &mut self,
        conn: ConnId,
        reason: DownReason,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for req in c.reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(match &reason {
                    DownReason::ConnectionClosed(why) => ConnectError::Closed(why.clone()),
                    other => ConnectError::Closed(other.to_string()),
                }),
            });
        }
        if let State::Up { node, creation } = c.state {
            if self.peers.get(&node).is_some_and(|p| p.conn == conn) {
                self.peers.remove(&node);
                info!(node = %self.me, peer = %node, %reason, "node down");
                let reconnect = reason.reconnects();
                fx.push(Effect::NodeDown {
                    node: node.clone(),
                    creation,
                    reason: reason.clone(),
                });
                up.push(Upcall::PeerDown {
                    node: node.clone(),
                    creation,
                    reason,
                });
                if reconnect && self.vis.in_own(&node) {
                    self.schedule_reconnect(&node, now);
                } else if !reconnect {
                    self.known.remove(&node);
                }
            }
        }
    }

    /// Closes a connection on this side.
    fn close(
        &mut self,
        conn: ConnId,
        reason: DownReason,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        if self.conns.contains_key(&conn) {
            fx.push(Effect::Close {
                conn,
                reason: reason.to_string(),
            });
            self.drop_conn(conn, reason, now, fx, up);
        }
    }

    /// Sends `Refuse` and closes; the connection never was up.
    /// Logs a refused handshake when it first happens, then at most once
    /// a minute with the number of repeats in between (a node with the
    /// wrong cookie retries every few seconds, forever). `key` says which
    /// refusals count as the same.
    fn log_refusal(&mut self, key: String, addr: &str, what: &str, now: Time) {
        match self.refusals.get_mut(&key) {
            Some((last, since)) if now.since(*last) < REFUSAL_LOG_EVERY => {
                *since += 1;
                debug!(node = %self.me, %addr, "{what} (repeated; logged once a minute)");
            }
            Some((last, since)) => {
                warn!(node = %self.me, %addr, repeated = *since, "{what} (again; {since} more since the last report)");
                *last = now;
                *since = 0;
            }
            None => {
                warn!(node = %self.me, %addr, "{what}");
                if self.refusals.len() >= REFUSAL_LOG_KEEP {
                    let oldest = self
                        .refusals
                        .iter()
                        .min_by_key(|(_, (t, _))| *t)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        self.refusals.remove(&k);
                    }
                }
                self.refusals.insert(key, (now, 0));
            }
        }
    }

    fn refuse(&mut self, conn: ConnId, reason: RefuseReason, fx: &mut Effects) {
        if let Some(c) = self.conns.remove(&conn) {
            fx.push(Effect::Send {
                conn,
                frame: Frame::Refuse {
                    reason: reason.clone(),
                },
            });
            fx.push(Effect::Close {
                conn,
                reason: format!("refused: {reason}"),
            });
            for req in c.reqs {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(ConnectError::Refused(reason.clone())),
                });
            }
        }
    }

    /// Closes a handshake that lost a tie-break or found the peer already
    /// up; its requests wait for the peer to come up another way.
    fn abandon(&mut self, conn: ConnId, peer: &NodeName, now: Time, fx: &mut Effects) {
        if let Some(c) = self.conns.remove(&conn) {
            fx.push(Effect::Close {
                conn,
                reason: "duplicate connection".into(),
            });
            self.park(peer, c.reqs, now, fx);
        }
    }

    /// Answers `reqs` once `peer` is up (now, or within the handshake timeout).
    fn park(&mut self, peer: &NodeName, reqs: Vec<ReqId>, now: Time, fx: &mut Effects) {
        for req in reqs {
            if self.peers.contains_key(peer) {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Ok(peer.clone()),
                });
            } else {
                self.waiting
                    .push((peer.clone(), req, now + self.cfg.handshake_timeout));
            }
        }
    }

    // ---- frames --------------------------------------------------------

    /// A frame arrived on `conn`.
    pub fn frame(
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
        if let Frame::Refuse { reason } = &frame {
            let reason = reason.clone();
            let c = self.conns.remove(&conn).expect("present");
            fx.push(Effect::Close {
                conn,
                reason: format!("refused by peer: {reason}"),
            });
            match (&reason, c.peer_name().cloned().or(c.expect.clone())) {
                (RefuseReason::Simultaneous | RefuseReason::AlreadyConnected, Some(peer)) => {
                    debug!(node = %self.me, %peer, %reason, "handshake refused");
                    self.park(&peer, c.reqs, now, fx);
                    // Should the kept connection never come up, try again.
                    self.schedule_reconnect(&peer, now);
                }
                _ => {
                    self.log_refusal(
                        format!("{} {reason}", c.addr),
                        &c.addr,
                        &format!("connection refused by peer: {reason}"),
                        now,
                    );
                    for req in c.reqs {
                        fx.push(Effect::ConnectDone {
                            req,
                            result: Err(ConnectError::Refused(reason.clone())),
                        });
                    }
                    if let Some(name) = c.expect {
                        self.schedule_reconnect(&name, now);
                    }
                }
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
                    Frame::Peers(list) => self.on_peers(list, now, fx),
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

    fn on_hello(&mut self, conn: ConnId, h: Hello, fx: &mut Effects) {
        let addr = self.conns[&conn].addr.clone();
        if h.version != PROTOCOL_VERSION {
            warn!(node = %self.me, %addr, version = h.version, "refusing connection: unsupported protocol version");
            return self.refuse(conn, RefuseReason::Version(PROTOCOL_VERSION), fx);
        }
        if h.name == self.me {
            warn!(node = %self.me, %addr, "refusing connection from a node with our own name");
            return self.refuse(conn, RefuseReason::SameName, fx);
        }
        if self.blocked.contains(&h.name) {
            debug!(node = %self.me, %addr, peer = %h.name, "refusing blocked node");
            return self.refuse(conn, RefuseReason::Blocked, fx);
        }
        let nonce = self.nonce();
        let challenge = self.my_hello(nonce);
        self.conns.get_mut(&conn).expect("present").state = State::ChallengeSent { peer: h, nonce };
        fx.push(Effect::Send {
            conn,
            frame: Frame::Challenge(challenge),
        });
    }

    /// Another handshake with `peer` that should be kept instead of `conn`.
    fn rival_wins(&self, conn: ConnId, peer: &NodeName) -> Option<ConnId> {
        let mine = &self.conns[&conn];
        self.conns.iter().find_map(|(&id, other)| {
            if id == conn
                || other.peer_name() != Some(peer)
                || matches!(other.state, State::Up { .. })
            {
                return None;
            }
            // A handshake with another incarnation of the peer is stale
            // (that incarnation crashed or restarted): the newer
            // connection wins, whatever its direction.
            if let (Some(a), Some(b)) = (mine.peer_creation(), other.peer_creation()) {
                if a != b {
                    return (id > conn).then_some(id);
                }
            }
            let keep_other = match (mine.dir, other.dir) {
                // Both dialed by the same node: the older one is kept.
                (a, b) if a == b => id < conn,
                // Otherwise the connection dialed by the smaller name is kept.
                (Direction::Outbound, Direction::Inbound) => *peer < self.me,
                (Direction::Inbound, Direction::Outbound) => self.me < *peer,
                _ => unreachable!(),
            };
            keep_other.then_some(id)
        })
    }

    /// Handshakes with `peer` other than `conn` (to close when `conn` wins).
    fn rivals(&self, conn: ConnId, peer: &NodeName) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(&id, c)| {
                id != conn && c.peer_name() == Some(peer) && !matches!(c.state, State::Up { .. })
            })
            .map(|(&id, _)| id)
            .collect()
    }

    /// The handshake transcript, this node playing `me_as` with `my_nonce`
    /// against `peer`'s hello.
    fn transcript<'a>(
        &'a self,
        me_as: Role,
        peer: &'a Hello,
        my_nonce: &'a Nonce,
    ) -> Transcript<'a> {
        let (mine, theirs) = (
            (&self.me, self.creation, my_nonce),
            (&peer.name, peer.creation, &peer.nonce),
        );
        let (d, a) = match me_as {
            Role::Dialer => (mine, theirs),
            Role::Acceptor => (theirs, mine),
        };
        Transcript {
            dialer: d.0,
            dialer_creation: d.1,
            dialer_nonce: d.2,
            acceptor: a.0,
            acceptor_creation: a.1,
            acceptor_nonce: a.2,
        }
    }

    fn on_challenge(&mut self, conn: ConnId, h: Hello, now: Time, fx: &mut Effects) {
        let c = &self.conns[&conn];
        let addr = c.addr.clone();
        if h.version != PROTOCOL_VERSION {
            warn!(node = %self.me, %addr, version = h.version, "peer speaks an unsupported protocol version");
            return self.refuse(conn, RefuseReason::Version(PROTOCOL_VERSION), fx);
        }
        if h.name == self.me {
            warn!(node = %self.me, %addr, "dialed a node with our own name");
            return self.refuse(conn, RefuseReason::SameName, fx);
        }
        if self.blocked.contains(&h.name) {
            return self.refuse(conn, RefuseReason::Blocked, fx);
        }
        if let Some(p) = self.peers.get(&h.name) {
            if p.creation == h.creation {
                let name = h.name.clone();
                return self.abandon(conn, &name, now, fx);
            }
        }
        let State::HelloSent { nonce } = c.state else {
            unreachable!()
        };
        let name = h.name.clone();
        self.conns.get_mut(&conn).expect("present").state = State::ResponseSent { peer: h, nonce };
        if self.rival_wins(conn, &name).is_some() {
            return self.abandon(conn, &name, now, fx);
        }
        let State::ResponseSent { peer, nonce } = &self.conns[&conn].state else {
            unreachable!()
        };
        let t = self.transcript(Role::Dialer, peer, nonce);
        let proof = auth::prove(&self.cookie, Role::Dialer, &t);
        fx.push(Effect::Send {
            conn,
            frame: Frame::Response { proof },
        });
    }

    fn on_response(
        &mut self,
        conn: ConnId,
        proof: [u8; 32],
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = &self.conns[&conn];
        let State::ChallengeSent { peer, nonce } = &c.state else {
            unreachable!()
        };
        let t = self.transcript(Role::Acceptor, peer, nonce);
        if !auth::verify(&self.cookie, Role::Dialer, &t, &proof) {
            let (addr, claimed) = (c.addr.clone(), peer.name.clone());
            self.log_refusal(
                format!("{claimed} refused"),
                &addr,
                &format!("refusing connection from {claimed}: wrong cookie"),
                now,
            );
            return self.refuse(conn, RefuseReason::BadCookie, fx);
        }
        let ack = auth::prove(&self.cookie, Role::Acceptor, &t);
        let (name, creation, listen) = (peer.name.clone(), peer.creation, peer.listen.clone());
        if let Some(p) = self.peers.get(&name) {
            if p.creation == creation {
                return self.refuse(conn, RefuseReason::AlreadyConnected, fx);
            }
            let old = p.conn;
            self.close(old, DownReason::Restarted, now, fx, up);
        }
        if self.rival_wins(conn, &name).is_some() {
            return self.refuse(conn, RefuseReason::Simultaneous, fx);
        }
        for rival in self.rivals(conn, &name) {
            self.abandon(rival, &name, now, fx);
        }
        fx.push(Effect::Send {
            conn,
            frame: Frame::Ack { proof: ack },
        });
        self.session_up(conn, name, creation, listen, now, fx, up);
    }

    fn on_ack(
        &mut self,
        conn: ConnId,
        proof: [u8; 32],
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = &self.conns[&conn];
        let State::ResponseSent { peer, nonce } = &c.state else {
            unreachable!()
        };
        let t = self.transcript(Role::Dialer, peer, nonce);
        if !auth::verify(&self.cookie, Role::Acceptor, &t, &proof) {
            let (addr, claimed) = (c.addr.clone(), peer.name.clone());
            self.log_refusal(
                format!("{claimed} failed"),
                &addr,
                &format!("peer {claimed} failed authentication: wrong cookie"),
                now,
            );
            let c = self.conns.remove(&conn).expect("present");
            fx.push(Effect::Close {
                conn,
                reason: "peer failed authentication".into(),
            });
            for req in c.reqs {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(ConnectError::Refused(RefuseReason::BadCookie)),
                });
            }
            return;
        }
        let (name, creation) = (peer.name.clone(), peer.creation);
        let listen = peer.listen.clone().or_else(|| Some(c.addr.clone()));
        if let Some(p) = self.peers.get(&name) {
            if p.creation == creation {
                return self.abandon(conn, &name, now, fx);
            }
            let old = p.conn;
            self.close(old, DownReason::Restarted, now, fx, up);
        }
        self.session_up(conn, name, creation, listen, now, fx, up);
    }

    #[allow(clippy::too_many_arguments)]
    fn session_up(
        &mut self,
        conn: ConnId,
        node: NodeName,
        creation: u32,
        listen: Option<String>,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = self.conns.get_mut(&conn).expect("present");
        c.state = State::Up {
            node: node.clone(),
            creation,
        };
        c.last_heard = now;
        let reqs = std::mem::take(&mut c.reqs);
        info!(node = %self.me, peer = %node, creation, addr = %c.addr, "node up");
        self.peers.insert(node.clone(), Peer { conn, creation });
        if let Some(addr) = listen.clone() {
            self.known.insert(
                node.clone(),
                Known {
                    addr,
                    attempts: 0,
                    next_try: None,
                },
            );
        } else if let Some(k) = self.known.get_mut(&node) {
            k.attempts = 0;
            k.next_try = None;
        }
        fx.push(Effect::NodeUp {
            node: node.clone(),
            creation,
            conn,
            visible: !self.vis.is_hidden(&node),
        });
        for req in reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Ok(node.clone()),
            });
        }
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].0 == node {
                let (_, req, _) = self.waiting.swap_remove(i);
                fx.push(Effect::ConnectDone {
                    req,
                    result: Ok(node.clone()),
                });
            } else {
                i += 1;
            }
        }
        up.push(Upcall::PeerUp {
            node: node.clone(),
            creation,
        });
        // Every new peer learns where our peers are; a receiver dials only
        // its own global group, and keeps other addresses for queries, so
        // other groups and hidden sessions are never meshed.
        if self.cfg.mesh {
            let others: Vec<PeerInfo> = self
                .peers
                .keys()
                .filter(|n| **n != node)
                .filter_map(|n| {
                    self.known.get(n).map(|k| PeerInfo {
                        name: n.clone(),
                        addr: k.addr.clone(),
                    })
                })
                .collect();
            if !others.is_empty() {
                fx.push(Effect::Send {
                    conn,
                    frame: Frame::Peers(others),
                });
            }
            if let Some(addr) = listen {
                let news = Frame::Peers(vec![PeerInfo {
                    name: node.clone(),
                    addr,
                }]);
                for (n, p) in &self.peers {
                    if *n != node && self.vis.in_own(n) {
                        fx.push(Effect::Send {
                            conn: p.conn,
                            frame: news.clone(),
                        });
                    }
                }
            }
        }
    }

    /// Whether a connection to `name` is being opened or authenticated.
    fn handshaking_with(&self, name: &NodeName) -> bool {
        self.conns
            .values()
            .any(|c| c.expect.as_ref() == Some(name) || c.peer_name() == Some(name))
    }

    fn on_peers(&mut self, list: Vec<PeerInfo>, now: Time, fx: &mut Effects) {
        if !self.cfg.mesh || self.shutting_down {
            return;
        }
        for PeerInfo { name, addr } in list {
            if name == self.me || self.peers.contains_key(&name) || self.blocked.contains(&name) {
                continue;
            }
            if !self.vis.in_own(&name) {
                // Remember where it is (for queries), but never mesh with it.
                self.known.entry(name).or_insert(Known {
                    addr,
                    attempts: 0,
                    next_try: None,
                });
                continue;
            }
            let busy = self.handshaking_with(&name);
            self.known.entry(name.clone()).or_insert(Known {
                addr: addr.clone(),
                attempts: 0,
                next_try: None,
            });
            if !busy {
                self.dial(addr, Some(name), None, now, fx);
            }
        }
    }

    // ---- control -------------------------------------------------------

    /// Sends one frame to every up peer among `nodes` (one effect, so the
    /// driver encodes it once).
    pub fn broadcast<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = &'a NodeName>,
        frame: Frame,
        fx: &mut Effects,
    ) {
        let conns: Vec<ConnId> = nodes
            .into_iter()
            .filter_map(|n| self.peers.get(n).map(|p| p.conn))
            .collect();
        match conns.len() {
            0 => {}
            1 => fx.push(Effect::Send {
                conn: conns[0],
                frame,
            }),
            _ => fx.push(Effect::Broadcast { conns, frame }),
        }
    }

    /// Sends a session frame to an up peer; false when it is not up.
    pub fn send(&mut self, node: &NodeName, frame: Frame, fx: &mut Effects) -> bool {
        match self.peers.get(node) {
            Some(p) => {
                fx.push(Effect::Send {
                    conn: p.conn,
                    frame,
                });
                true
            }
            None => false,
        }
    }

    /// Ends the session with `node` on purpose: the peer is told (so it does
    /// not reconnect) and forgotten. False when it was not connected.
    pub fn disconnect(
        &mut self,
        node: &NodeName,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) -> bool {
        self.known.remove(node);
        let Some(p) = self.peers.get(node) else {
            return false;
        };
        let conn = p.conn;
        fx.push(Effect::Send {
            conn,
            frame: Frame::Bye,
        });
        self.close(conn, DownReason::Disconnected, now, fx, up);
        true
    }

    /// Drops and refuses all traffic with `node` until [`Cluster::unblock`].
    pub fn block(&mut self, node: NodeName, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer_name() == Some(&node) || c.expect.as_ref() == Some(&node))
            .map(|(&id, _)| id)
            .collect();
        self.blocked.insert(node);
        for conn in conns {
            self.close(conn, DownReason::Blocked, now, fx, up);
        }
    }

    /// Lifts a block; reconnects at once if the node is known.
    pub fn unblock(&mut self, node: &NodeName, now: Time) -> bool {
        let was = self.blocked.remove(node);
        if let Some(k) = self.known.get_mut(node) {
            k.attempts = 0;
            k.next_try = Some(now);
        }
        was
    }

    /// Says goodbye to every peer and closes every connection.
    pub fn shutdown(&mut self, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        self.shutting_down = true;
        self.known.clear();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if matches!(self.conns[&conn].state, State::Up { .. }) {
                fx.push(Effect::Send {
                    conn,
                    frame: Frame::Bye,
                });
            }
            self.close(conn, DownReason::Shutdown, now, fx, up);
        }
        for (_, req, _) in self.waiting.drain(..) {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(ConnectError::ShuttingDown),
            });
        }
    }

    fn schedule_reconnect(&mut self, node: &NodeName, now: Time) {
        if !self.cfg.reconnect || self.shutting_down {
            return;
        }
        let Some(k) = self.known.get_mut(node) else {
            return;
        };
        let exp = k.attempts.min(16);
        let base = self
            .cfg
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.cfg.backoff_max);
        // Jitter in [base/2, base) keeps both sides of a split from redialing in lockstep.
        let jitter = self.rng.random_range(0.5..1.0);
        k.next_try = Some(now + base.mul_f64(jitter));
        k.attempts = k.attempts.saturating_add(1);
    }

    // ---- time ----------------------------------------------------------

    /// The next time [`Cluster::timeout`] has something to do.
    pub fn next_timeout(&self) -> Time {
        let mut t = self.next_tick;
        for k in self.known.values() {
            if let Some(n) = k.next_try {
                t = t.min(n);
            }
        }
        t
    }

    /// Sends ticks, declares silent peers down, ends stale handshakes,
    /// redials known nodes and expires waiting requests.
    pub fn timeout(&mut self, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        if now >= self.next_tick {
            self.next_tick = now + self.cfg.tick_interval;
            let mut dead = Vec::new();
            for (&id, c) in &self.conns {
                match &c.state {
                    State::Up { .. } => {
                        if now.since(c.last_heard) > self.cfg.peer_timeout {
                            dead.push((id, DownReason::Timeout));
                        } else {
                            fx.push(Effect::Send {
                                conn: id,
                                frame: Frame::Tick,
                            });
                        }
                    }
                    State::Dialing => {}
                    _ if now.since(c.opened) > self.cfg.handshake_timeout => {
                        dead.push((
                            id,
                            DownReason::ConnectionClosed("handshake timed out".into()),
                        ));
                    }
                    _ => {}
                }
            }
            for (id, reason) in dead {
                if matches!(reason, DownReason::Timeout) {
                    warn!(node = %self.me, addr = %self.conns[&id].addr, "peer silent for longer than the peer timeout");
                }
                let c = &self.conns[&id];
                let expect = c.expect.clone().or_else(|| c.peer_name().cloned());
                let was_up = matches!(c.state, State::Up { .. });
                self.close(id, reason, now, fx, up);
                if !was_up {
                    if let Some(n) = expect {
                        self.schedule_reconnect(&n, now);
                    }
                }
            }
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].2 <= now {
                    let (_, req, _) = self.waiting.swap_remove(i);
                    fx.push(Effect::ConnectDone {
                        req,
                        result: Err(ConnectError::Timeout),
                    });
                } else {
                    i += 1;
                }
            }
        }
        if self.shutting_down {
            return;
        }
        let due: Vec<(NodeName, String)> = self
            .known
            .iter()
            .filter(|(_, k)| k.next_try.is_some_and(|t| t <= now))
            .map(|(n, k)| (n.clone(), k.addr.clone()))
            .collect();
        for (name, addr) in due {
            self.known.get_mut(&name).expect("present").next_try = None;
            if self.peers.contains_key(&name) || self.blocked.contains(&name) {
                continue;
            }
            let handshaking = self.handshaking_with(&name);
            if handshaking {
                // Another handshake with it is under way; look again later
                // in case that one fails (it may be a stale half-open one).
                self.schedule_reconnect(&name, now);
            } else {
                self.dial(addr, Some(name), None, now, fx);
            }
        }
    }
}
