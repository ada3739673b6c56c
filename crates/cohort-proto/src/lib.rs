//! The sans-IO core: every protocol decision of a node, as a state machine.
//!
//! [`NodeCore`] takes inputs (a connection opened, a frame arrived, a local
//! process spawned or ended, time passed) and queues [`Effect`]s (dial, send
//! a frame, close, deliver to a mailbox, node up/down). It owns no sockets,
//! reads no clock and draws randomness only from the seeded generator it is
//! given, so the same inputs always give the same effects: the tokio runtime
//! and the deterministic simulator drive the very same code.
//!
//! This crate is the protocol of Cohort nodes, quinn-proto style: no tokio,
//! no socket and no clock in its dependency tree. The `cohort` crate is the
//! runtime around it (`docs/ARCHITECTURE.md` in the repository).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod ctx;
pub mod global_group;
pub mod names;
pub mod pg;
pub mod pid;
pub mod process;
pub mod proto;
pub mod time;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use rand::rngs::StdRng;
use tracing::debug;

use self::auth::Cookie;
use self::cluster::{Cluster, ClusterConfig, Upcall};
use self::ctx::{Ctx, Deferred};
use self::global_group::{
    Answer, GlobalGroupsEffect, GlobalGroupsFrame, GlobalGroupsState, Query, Transition,
};
use self::names::{Names, NamesEffect};
use self::pg::{Pg, PgEffect};
use self::pid::{ExitReason, NodeName, Pid};
use self::process::{Message, MonitorAction, MonitorRef, Processes};
use self::proto::{Frame, RefuseReason};
use self::time::Time;

/// Identifies one transport connection of a node.
pub type ConnId = u64;

/// Identifies one pending `connect` request.
pub type ReqId = u64;

/// Why a peer's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The connection closed or failed.
    ConnectionClosed(String),
    /// No frame arrived from the peer for longer than the peer timeout.
    Timeout,
    /// The peer left on purpose (it shut down or disconnected from us).
    PeerLeft,
    /// This node disconnected from the peer on purpose.
    Disconnected,
    /// The peer came back with a new creation; its old incarnation is gone.
    Restarted,
    /// Traffic with the peer is blocked on this node.
    Blocked,
    /// This node is shutting down.
    Shutdown,
    /// The peer broke the protocol.
    ProtocolError(String),
}

impl DownReason {
    /// Whether the node should try to reconnect after this.
    pub fn reconnects(&self) -> bool {
        !matches!(
            self,
            DownReason::PeerLeft | DownReason::Disconnected | DownReason::Shutdown
        )
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ConnectionClosed(why) => write!(f, "connection closed: {why}"),
            DownReason::Timeout => f.write_str("peer timeout (no ticks)"),
            DownReason::PeerLeft => f.write_str("peer left"),
            DownReason::Disconnected => f.write_str("disconnected"),
            DownReason::Restarted => f.write_str("peer restarted with a new creation"),
            DownReason::Blocked => f.write_str("blocked"),
            DownReason::Shutdown => f.write_str("shutting down"),
            DownReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// Why a `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The transport could not open the connection.
    #[error("cannot connect to {0}")]
    Io(String),
    /// The peer refused the handshake, or failed it.
    #[error("connection refused: {0}")]
    Refused(RefuseReason),
    /// The connection closed before the handshake finished.
    #[error("connection closed during handshake: {0}")]
    Closed(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// This node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

/// Something the driver of a [`NodeCore`] must carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a connection to `addr`; report [`NodeCore::dialed`] or [`NodeCore::dial_failed`].
    Dial {
        /// The id the core gave the connection.
        conn: ConnId,
        /// Where to connect.
        addr: String,
    },
    /// Send a frame on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// Send one frame on several connections (encoded once).
    Broadcast {
        /// The connections.
        conns: Vec<ConnId>,
        /// The frame.
        frame: Frame,
    },
    /// Close a connection after the frames already queued on it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
    /// A session with `node` is up on `conn`.
    NodeUp {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// The connection carrying the session.
        conn: ConnId,
        /// Whether the session is visible (`nodes()`); sessions between a
        /// hidden global group and another group are not.
        visible: bool,
    },
    /// The session with `node` ended.
    NodeDown {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// Why.
        reason: DownReason,
    },
    /// Put a message into a local process's mailbox.
    Deliver {
        /// The local process's serial.
        to: u64,
        /// The message.
        msg: Message,
    },
    /// End a local process: deliver `Message::Exit` and close its mailbox.
    Kill {
        /// The local process's serial.
        serial: u64,
        /// The reason.
        reason: ExitReason,
    },
    /// A `connect` request is answered.
    ConnectDone {
        /// The request.
        req: ReqId,
        /// The connected node, or why not.
        result: Result<NodeName, ConnectError>,
    },
    /// Local changes are held to be sent in a batch: call
    /// [`NodeCore::flush`] soon (for example from a task woken by this
    /// effect). Whatever the core sends for any other reason sends the held
    /// changes first, so they never fall behind later frames.
    Flush,
    /// Something for the process-group layer of the driver.
    Pg(PgEffect),
    /// Something for the name service of the driver.
    Names(NamesEffect),
    /// Something for the global-group layer of the driver.
    Groups(GlobalGroupsEffect),
}

/// The queue of effects the core produced and the driver has not taken yet.
#[derive(Debug, Default)]
pub struct Effects(VecDeque<Effect>);

impl Effects {
    /// Queues an effect.
    pub fn push(&mut self, e: Effect) {
        self.0.push_back(e);
    }

    /// Takes the oldest effect.
    pub fn pop(&mut self) -> Option<Effect> {
        self.0.pop_front()
    }

    /// Number of queued effects.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Settings of a node core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// This node's name.
    pub name: NodeName,
    /// This node's creation (new at every start).
    pub creation: u32,
    /// Where this node accepts connections, announced to peers.
    pub listen: Option<String>,
    /// The cluster's shared secret.
    pub cookie: Cookie,
    /// Peer-session settings.
    pub cluster: ClusterConfig,
    /// Global name tables.
    pub names: names::NamesConfig,
}

/// All protocol state of one node.
#[derive(Debug)]
pub struct NodeCore {
    name: NodeName,
    creation: u32,
    cluster: Cluster,
    procs: Processes,
    pg: Pg,
    names: Names,
    groups: GlobalGroupsState,
    /// Peers taking part in names and groups (see [`Ctx::peers`]).
    eligible: BTreeSet<NodeName>,
    fx: Effects,
    up: Vec<Upcall>,
    deferred: Vec<Deferred>,
    /// The latest time the driver passed in (for inputs that carry none).
    clock: Time,
}

/// Builds a [`Ctx`] from disjoint fields of a [`NodeCore`] and runs a
/// sub-protocol handler with it.
macro_rules! with_sub {
    ($self:ident, $field:ident, $now:expr, |$sub:ident, $ctx:ident| $body:expr) => {{
        let mut $ctx = Ctx {
            now: $now,
            cluster: &mut $self.cluster,
            procs: &$self.procs,
            fx: &mut $self.fx,
            deferred: &mut $self.deferred,
            eligible: &$self.eligible,
        };
        let $sub = &mut $self.$field;
        $body
    }};
}

impl NodeCore {
    /// A node core; `rng` is its only source of randomness (handshake
    /// nonces, reconnect jitter): seed it from the OS in production and from
    /// the simulation seed in tests.
    pub fn new(cfg: CoreConfig, rng: StdRng, now: Time) -> Self {
        let names = Names::new(cfg.names, u64::from(cfg.creation));
        let groups = GlobalGroupsState::new(cfg.cluster.groups.clone(), &cfg.name);
        NodeCore {
            name: cfg.name.clone(),
            creation: cfg.creation,
            cluster: Cluster::new(
                cfg.name,
                cfg.creation,
                cfg.listen,
                cfg.cookie,
                cfg.cluster,
                rng,
                now,
            ),
            procs: Processes::default(),
            pg: Pg::default(),
            names,
            groups,
            eligible: BTreeSet::new(),
            fx: Effects::default(),
            up: Vec::new(),
            deferred: Vec::new(),
            clock: now,
        }
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// This node's creation.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The pid of local process `serial`.
    pub fn pid(&self, serial: u64) -> Pid {
        Pid::new(self.name.clone(), self.creation, serial)
    }

    /// Sets the announced listen address (known only once bound).
    pub fn set_listen(&mut self, listen: Option<String>) {
        self.cluster.set_listen(listen);
    }

    /// The peers with an up session, in name order.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.cluster.nodes().cloned().collect()
    }

    /// The peer-session layer, for inspection.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The process table, for inspection.
    pub fn processes(&self) -> &Processes {
        &self.procs
    }

    /// Takes the next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.fx.pop()
    }

    /// The next time [`NodeCore::timeout`] must be called.
    pub fn next_timeout(&self) -> Time {
        let mut t = self.cluster.next_timeout();
        for sub in [self.pg.next_timeout(), self.names.next_timeout()]
            .into_iter()
            .flatten()
        {
            t = t.min(sub);
        }
        t
    }

    /// Sends the changes held for batching (see [`Effect::Flush`]).
    pub fn flush(&mut self, now: Time) {
        self.flush_pg(now);
        self.flush_names(now);
    }

    fn flush_pg(&mut self, now: Time) {
        self.clock = self.clock.max(now);
        if self.pg.holds() {
            with_sub!(self, pg, now, |pg, ctx| pg.flush(&mut ctx));
        }
    }

    fn flush_names(&mut self, now: Time) {
        self.clock = self.clock.max(now);
        if self.names.holds() {
            with_sub!(self, names, now, |names, ctx| names.flush(&mut ctx));
        }
    }

    /// Whether changes are held for batching (see [`Effect::Flush`]).
    pub fn holds(&self) -> bool {
        self.pg.holds() || self.names.holds()
    }

    /// Runs `f` on the process-group layer, then the deferred actions.
    /// Held names go out first (the layer orders its own held changes).
    pub fn with_pg<R>(&mut self, now: Time, f: impl FnOnce(&mut Pg, &mut Ctx<'_>) -> R) -> R {
        self.flush_names(now);
        let r = with_sub!(self, pg, now, |pg, ctx| f(pg, &mut ctx));
        self.run_deferred(now);
        r
    }

    /// Runs `f` on the name service, then the deferred actions. Held
    /// process-group changes go out first (the name service orders its
    /// own held claims).
    pub fn with_names<R>(&mut self, now: Time, f: impl FnOnce(&mut Names, &mut Ctx<'_>) -> R) -> R {
        self.flush_pg(now);
        let r = with_sub!(self, names, now, |names, ctx| f(names, &mut ctx));
        self.run_deferred(now);
        r
    }

    /// The global-group layer, for reads.
    pub fn groups(&self) -> &GlobalGroupsState {
        &self.groups
    }

    /// Asks `node` a question; answered by `GlobalGroupsEffect::Answered { req }`.
    pub fn groups_ask(&mut self, node: &NodeName, query: Query, req: ReqId, now: Time) {
        self.flush(now);
        with_sub!(self, groups, now, |g, ctx| g
            .ask(node, query, req, &mut ctx));
    }

    /// Re-checks the global-group definition with every own-group node;
    /// answered by `GlobalGroupsEffect::Synced { req }`.
    pub fn groups_sync(&mut self, req: ReqId, now: Time) {
        self.flush(now);
        with_sub!(self, groups, now, |g, ctx| g.sync(req, &mut ctx));
    }

    /// The process-group layer, for reads.
    pub fn pg(&self) -> &Pg {
        &self.pg
    }

    /// The name service, for reads.
    pub fn names(&self) -> &Names {
        &self.names
    }

    fn run_deferred(&mut self, now: Time) {
        while let Some(d) = self.deferred.pop() {
            match d {
                Deferred::Kill(pid, reason) => self.kill_at(&pid, reason, now),
            }
        }
    }

    // ---- transport inputs ---------------------------------------------

    /// The transport accepted a connection from `addr`.
    pub fn accepted(&mut self, addr: String, now: Time) -> ConnId {
        self.cluster.accepted(addr, now, &mut self.fx)
    }

    /// A [`Effect::Dial`] succeeded.
    pub fn dialed(&mut self, conn: ConnId, now: Time) {
        self.cluster.dialed(conn, now, &mut self.fx);
    }

    /// A [`Effect::Dial`] failed.
    pub fn dial_failed(&mut self, conn: ConnId, why: String, now: Time) {
        self.cluster.dial_failed(conn, why, now, &mut self.fx);
    }

    /// A connection closed (EOF, error, undecodable frame).
    pub fn closed(&mut self, conn: ConnId, why: String, now: Time) {
        self.cluster
            .closed(conn, why, now, &mut self.fx, &mut self.up);
        // Not before: nothing may go out on the closed connection.
        self.flush(now);
        self.run_upcalls(now);
    }

    /// A frame arrived.
    pub fn frame(&mut self, conn: ConnId, frame: Frame, now: Time) {
        self.flush(now);
        self.cluster
            .frame(conn, frame, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    /// Time passed: ticks, timeouts, reconnects.
    pub fn timeout(&mut self, now: Time) {
        self.flush(now);
        self.cluster.timeout(now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
        with_sub!(self, pg, now, |pg, ctx| pg.timeout(&mut ctx));
        with_sub!(self, names, now, |names, ctx| names.timeout(&mut ctx));
        self.run_deferred(now);
    }

    // ---- cluster control ----------------------------------------------

    /// Connects to the node at `addr`; answered by [`Effect::ConnectDone`].
    pub fn connect(&mut self, addr: String, req: Option<ReqId>, now: Time) {
        self.flush(now);
        self.cluster.connect(addr, req, now, &mut self.fx);
    }

    /// Ends the session with `node` on purpose. False when not connected.
    pub fn disconnect(&mut self, node: &NodeName, now: Time) -> bool {
        self.flush(now);
        let r = self
            .cluster
            .disconnect(node, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
        r
    }

    /// Drops and refuses all traffic with `node` until unblocked.
    pub fn block(&mut self, node: NodeName, now: Time) {
        self.flush(now);
        self.cluster.block(node, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    /// Lifts a block. False when the node was not blocked.
    pub fn unblock(&mut self, node: &NodeName, now: Time) -> bool {
        self.cluster.unblock(node, now)
    }

    /// Leaves the cluster: peers are told, connections closed.
    pub fn shutdown(&mut self, now: Time) {
        self.flush(now);
        self.cluster.shutdown(now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    // ---- processes ----------------------------------------------------

    /// A local process was created with `serial`.
    pub fn spawned(&mut self, serial: u64) {
        self.procs.spawned(serial);
    }

    /// A local process ended: its monitors fire, its memberships and names go.
    pub fn exited(&mut self, serial: u64, reason: ExitReason, now: Time) {
        self.flush(now);
        let me = self.pid(serial);
        if !self.procs.is_alive(serial) {
            return;
        }
        let acts = self.procs.exited(&me, &reason, &self.name);
        self.run_monitor_actions(acts);
        with_sub!(self, pg, now, |pg, ctx| pg.exited(&me, &reason, &mut ctx));
        with_sub!(self, names, now, |names, ctx| names
            .exited(&me, &reason, &mut ctx));
        self.run_deferred(now);
    }

    /// Ends process `pid` (local or remote) with `reason`.
    pub fn kill(&mut self, pid: &Pid, reason: ExitReason, now: Time) {
        self.flush(now);
        self.kill_at(pid, reason, now);
    }

    fn kill_at(&mut self, pid: &Pid, reason: ExitReason, now: Time) {
        if pid.node() == &self.name {
            if pid.creation() == self.creation && self.procs.is_alive(pid.serial()) {
                self.fx.push(Effect::Kill {
                    serial: pid.serial(),
                    reason: reason.clone(),
                });
                self.exited(pid.serial(), reason, now);
            }
        } else if self.cluster.peer_creation(pid.node()) == Some(pid.creation()) {
            let node = pid.node().clone();
            self.cluster.send(
                &node,
                Frame::Exit {
                    target: pid.clone(),
                    reason,
                },
                &mut self.fx,
            );
        }
    }

    /// Sends a message to `to`; silently dropped when `to` is dead or its
    /// node unreachable (as in Erlang: sending never fails).
    pub fn send(&mut self, to: &Pid, from: Option<Pid>, payload: Bytes) {
        self.flush(self.clock);
        if to.node() == &self.name {
            self.deliver_local(to, from, payload);
        } else if self.cluster.peer_creation(to.node()) == Some(to.creation()) {
            let node = to.node().clone();
            self.cluster.send(
                &node,
                Frame::Send {
                    to: to.clone(),
                    from,
                    payload,
                },
                &mut self.fx,
            );
        }
    }

    fn deliver_local(&mut self, to: &Pid, from: Option<Pid>, payload: Bytes) {
        if to.creation() == self.creation && self.procs.is_alive(to.serial()) {
            self.fx.push(Effect::Deliver {
                to: to.serial(),
                msg: Message::Data { from, payload },
            });
        }
    }

    /// Local process `watcher` monitors `target` under `mref` (unique on
    /// this node; see [`NodeCore::new_ref`]): exactly one `Message::Down`
    /// will follow, unless demonitored.
    pub fn monitor(&mut self, mref: MonitorRef, watcher: u64, target: &Pid) {
        self.flush(self.clock);
        let down = |reason| Effect::Deliver {
            to: watcher,
            msg: Message::Down {
                mref,
                pid: target.clone(),
                reason,
            },
        };
        if !self.procs.is_alive(watcher) {
            return;
        }
        if target.node() == &self.name {
            if target.creation() == self.creation && self.procs.is_alive(target.serial()) {
                self.procs.add_outgoing(mref, watcher, target.clone());
                let w = self.pid(watcher);
                self.procs.add_incoming(target.serial(), mref, w);
            } else {
                self.fx.push(down(ExitReason::NoProc));
            }
            return;
        }
        match self.cluster.peer_creation(target.node()) {
            Some(c) if c == target.creation() => {
                self.procs.add_outgoing(mref, watcher, target.clone());
                let frame = Frame::Monitor {
                    mref: mref.0,
                    watcher: self.pid(watcher),
                    target: target.clone(),
                };
                let node = target.node().clone();
                self.cluster.send(&node, frame, &mut self.fx);
            }
            Some(_) => self.fx.push(down(ExitReason::NoProc)),
            None => self.fx.push(down(ExitReason::NoConnection)),
        }
    }

    /// A fresh monitor reference, for drivers that let the core number them.
    pub fn new_ref(&mut self) -> MonitorRef {
        self.procs.new_ref()
    }

    /// Cancels a monitor; no `Down` for it arrives afterwards.
    pub fn demonitor(&mut self, watcher: u64, mref: MonitorRef) {
        self.flush(self.clock);
        let Some(target) = self.procs.remove_outgoing(mref) else {
            return;
        };
        let w = self.pid(watcher);
        if target.node() == &self.name {
            self.procs.remove_incoming(target.serial(), mref, &w);
        } else {
            let node = target.node().clone();
            self.cluster.send(
                &node,
                Frame::Demonitor {
                    mref: mref.0,
                    watcher: w,
                    target,
                },
                &mut self.fx,
            );
        }
    }

    // ---- internals ----------------------------------------------------

    fn run_upcalls(&mut self, now: Time) {
        while !self.up.is_empty() {
            let batch = std::mem::take(&mut self.up);
            for u in batch {
                match u {
                    Upcall::PeerUp { node, creation } => {
                        with_sub!(self, pg, now, |pg, ctx| pg
                            .session_up(&node, creation, &mut ctx));
                        let t = with_sub!(self, groups, now, |g, ctx| g
                            .peer_up(&node, creation, &mut ctx));
                        self.transitions(t, now);
                    }
                    Upcall::PeerDown { node, creation, .. } => {
                        let acts = self.procs.node_down(&node);
                        self.run_monitor_actions(acts);
                        let t = with_sub!(self, groups, now, |g, ctx| g
                            .peer_down(&node, creation, &mut ctx));
                        self.transitions(t, now);
                        with_sub!(self, pg, now, |pg, ctx| pg
                            .session_down(&node, creation, &mut ctx));
                    }
                    Upcall::Frame {
                        node,
                        creation,
                        frame,
                    } => self.session_frame(node, creation, frame, now),
                }
                self.run_deferred(now);
            }
        }
    }

    /// Peers joining or leaving the set that takes part in names and groups.
    fn transitions(&mut self, ts: Vec<Transition>, now: Time) {
        for t in ts {
            match t {
                Transition::Up(node, creation) => {
                    self.eligible.insert(node.clone());
                    self.fx.push(Effect::Groups(GlobalGroupsEffect::Node {
                        node: node.clone(),
                        up: true,
                    }));
                    with_sub!(self, pg, now, |pg, ctx| pg
                        .peer_up(&node, creation, &mut ctx));
                    with_sub!(self, names, now, |names, ctx| names
                        .peer_up(&node, creation, &mut ctx));
                }
                Transition::Down(node, creation) => {
                    with_sub!(self, pg, now, |pg, ctx| pg
                        .peer_down(&node, creation, &mut ctx));
                    with_sub!(self, names, now, |names, ctx| names
                        .peer_down(&node, creation, &mut ctx));
                    self.eligible.remove(&node);
                    self.fx
                        .push(Effect::Groups(GlobalGroupsEffect::Node { node, up: false }));
                }
            }
        }
    }

    /// Answers a query from another node (typically of another global group).
    fn answer(&mut self, query: Query, now: Time) -> Answer {
        let table = self.names.table_names().into_iter().next();
        let whereis =
            |names: &Names, name: &str| table.as_deref().and_then(|t| names.whereis(t, name));
        match query {
            Query::Whereis(name) => Answer::Whereis(whereis(&self.names, &name)),
            Query::RegisteredNames => {
                let mut names = table
                    .as_deref()
                    .map(|t| self.names.registered_names(t))
                    .unwrap_or_default();
                names.sort();
                Answer::Names(names)
            }
            Query::Send {
                name,
                from,
                payload,
            } => {
                let to = whereis(&self.names, &name);
                if let Some(pid) = &to {
                    self.send(pid, from, payload);
                }
                let _ = now;
                Answer::Sent(to)
            }
        }
    }

    fn session_frame(&mut self, node: NodeName, creation: u32, frame: Frame, now: Time) {
        match frame {
            // Names and groups only flow between nodes that take part in
            // them (the own global group, once its definition matched).
            Frame::Names(_) if !self.eligible.contains(&node) => {
                debug!(node = %self.name, peer = %node, "replication from a node outside the own global group; ignored");
            }
            Frame::Pg(f) => with_sub!(self, pg, now, |pg, ctx| pg
                .frame(&node, creation, f, &mut ctx)),
            Frame::Names(f) => with_sub!(self, names, now, |names, ctx| names
                .frame(&node, creation, f, &mut ctx)),
            Frame::GlobalGroup(GlobalGroupsFrame::Ask { id, query }) => {
                let answer = self.answer(query, now);
                self.cluster.send(
                    &node,
                    Frame::GlobalGroup(GlobalGroupsFrame::Answer { id, answer }),
                    &mut self.fx,
                );
            }
            Frame::GlobalGroup(f) => {
                let t = with_sub!(self, groups, now, |g, ctx| g.frame(&node, f, &mut ctx));
                self.transitions(t, now);
            }
            Frame::Send { to, from, payload } => {
                if to.node() == &self.name {
                    self.deliver_local(&to, from, payload);
                }
            }
            Frame::Monitor {
                mref,
                watcher,
                target,
            } => {
                if watcher.node() != &node {
                    debug!(node = %self.name, peer = %node, "monitor for a watcher of another node; ignored");
                    return;
                }
                let alive = target.node() == &self.name
                    && target.creation() == self.creation
                    && self.procs.is_alive(target.serial());
                if alive {
                    self.procs
                        .add_incoming(target.serial(), MonitorRef(mref), watcher);
                } else {
                    self.cluster.send(
                        &node,
                        Frame::Down {
                            mref,
                            watcher,
                            target,
                            reason: ExitReason::NoProc,
                        },
                        &mut self.fx,
                    );
                }
            }
            Frame::Demonitor {
                mref,
                watcher,
                target,
            } => {
                if target.node() == &self.name && watcher.node() == &node {
                    self.procs
                        .remove_incoming(target.serial(), MonitorRef(mref), &watcher);
                }
            }
            Frame::Down {
                mref,
                watcher,
                target,
                reason,
            } => {
                if watcher.node() == &self.name
                    && target.node() == &node
                    && self.procs.remove_outgoing(MonitorRef(mref)).is_some()
                {
                    self.fx.push(Effect::Deliver {
                        to: watcher.serial(),
                        msg: Message::Down {
                            mref: MonitorRef(mref),
                            pid: target,
                            reason,
                        },
                    });
                }
            }
            Frame::Exit { target, reason } => {
                if target.node() == &self.name {
                    self.kill_at(&target, reason, now);
                }
            }
            other => {
                debug!(node = %self.name, peer = %node, kind = other.kind(), "unhandled session frame");
            }
        }
    }

    fn run_monitor_actions(&mut self, acts: Vec<MonitorAction>) {
        for act in acts {
            match act {
                MonitorAction::Deliver { watcher, msg } => {
                    self.fx.push(Effect::Deliver { to: watcher, msg });
                }
                MonitorAction::RemoteDown {
                    mref,
                    watcher,
                    target,
                    reason,
                } => {
                    let node = watcher.node().clone();
                    self.cluster.send(
                        &node,
                        Frame::Down {
                            mref: mref.0,
                            watcher,
                            target,
                            reason,
                        },
                        &mut self.fx,
                    );
                }
                MonitorAction::RemoteDemonitor {
                    mref,
                    watcher,
                    target,
                } => {
                    let node = target.node().clone();
                    self.cluster.send(
                        &node,
                        Frame::Demonitor {
                            mref: mref.0,
                            watcher,
                            target,
                        },
                        &mut self.fx,
                    );
                }
            }
        }
    }
}
