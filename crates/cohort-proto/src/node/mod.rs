//! [`NodeCore`]: one node's protocol state, composing the peer sessions,
//! the process/monitor protocol, process groups, global names and global
//! groups. Inputs in, [`Effect`]s out.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use tracing::debug;

use crate::auth::Cookie;
use crate::cluster::{Cluster, ClusterConfig, Upcall};
use crate::ctx::{Ctx, Deferred};
use crate::effect::{ConnId, Effect, Effects, ReqId};
use crate::global_group::{
    Answer, GlobalGroupsEffect, GlobalGroupsFrame, GlobalGroupsState, Query, Transition,
};
use crate::names::{Names, NamesConfig};
use crate::pg::Pg;
use crate::pid::{ExitReason, NodeName, Pid};
use crate::process::{Message, MonitorAction, MonitorRef, Processes};
use crate::proto::Frame;
use crate::route::{route_received, Route};
use crate::time::Time;

/// Held changes (process-group joins and leaves, eventual names) go out
/// when the core's timer comes due, at least this long after its last
/// turn: the changes of a burst go out in batches (at most one per
/// rest, besides a full batch or anything else the node sends, which send
/// them at once) instead of one frame per change. A change after a quiet
/// spell goes out at once.
pub const FLUSH_REST: Duration = Duration::from_millis(1);

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
    pub names: NamesConfig,
}

/// All protocol state of one node.
#[derive(Debug)]
pub struct NodeCore {
    pub(crate) name: NodeName,
    pub(crate) creation: u32,
    pub(crate) cluster: Cluster,
    pub(crate) procs: Processes,
    pub(crate) pg: Pg,
    pub(crate) names: Names,
    pub(crate) groups: GlobalGroupsState,
    /// Peers taking part in names and groups (see [`Ctx::peers`]).
    pub(crate) eligible: BTreeSet<NodeName>,
    /// Bumped whenever `eligible` changes (see [`Ctx::peers_key`]).
    pub(crate) eligible_gen: u64,
    pub(crate) fx: Effects,
    pub(crate) up: Vec<Upcall>,
    pub(crate) deferred: Vec<Deferred>,
    /// The latest time the driver passed in (for inputs that carry none).
    pub(crate) clock: Time,
    /// When the timer last ran, sending the held changes (see [`FLUSH_REST`]).
    pub(crate) flushed_at: Time,
    /// Whether changes are held, published for lock-free readers.
    pub(crate) held: Arc<AtomicBool>,
}

/// Builds a [`Ctx`] from disjoint fields of a [`NodeCore`] and runs a
/// sub-protocol handler with it. The layers that hold changes for batching
/// (process groups, names), other than the one handling the input, ride
/// along: whatever the handler sends goes out after what they hold.
macro_rules! with_sub {
    ($self:ident, $field:ident, $now:expr, |$sub:ident, $ctx:ident| $body:expr) => {
        with_sub!(@others $self, $field, $now, |$sub, $ctx| $body)
    };
    (@ctx $self:ident, $now:expr, [$($other:expr),*]) => {
        Ctx {
            now: $now,
            cluster: &mut $self.cluster,
            procs: &$self.procs,
            fx: &mut $self.fx,
            deferred: &mut $self.deferred,
            eligible: &$self.eligible,
            eligible_gen: $self.eligible_gen,
            others: [$($other),*],
        }
    };
    (@others $self:ident, pg, $now:expr, |$sub:ident, $ctx:ident| $body:expr) => {{
        let mut $ctx = with_sub!(@ctx $self, $now, [Some(&mut $self.names), None]);
        let $sub = &mut $self.pg;
        $body
    }};
    (@others $self:ident, names, $now:expr, |$sub:ident, $ctx:ident| $body:expr) => {{
        let mut $ctx = with_sub!(@ctx $self, $now, [Some(&mut $self.pg), None]);
        let $sub = &mut $self.names;
        $body
    }};
    (@others $self:ident, groups, $now:expr, |$sub:ident, $ctx:ident| $body:expr) => {{
        let mut $ctx = with_sub!(@ctx $self, $now, [Some(&mut $self.pg), Some(&mut $self.names)]);
        let $sub = &mut $self.groups;
        $body
    }};
}

// After the macro: the sub-protocols' entry points use it.
mod names;
mod pg;
mod process;

impl NodeCore {
    /// A node core; `rng` is its only source of randomness (handshake
    /// nonces, reconnect jitter): seed it from the OS in production and from
    /// the simulation seed in tests.
    pub fn new(cfg: CoreConfig, rng: StdRng, now: Time) -> Self {
        let names = Names::new(cfg.names);
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
            eligible_gen: 0,
            fx: Effects::default(),
            up: Vec::new(),
            deferred: Vec::new(),
            clock: now,
            flushed_at: Time::ZERO,
            held: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets the largest metadata of a name or a membership, in bytes
    /// (default [`DEFAULT_MAX_META`](crate::limits::DEFAULT_MAX_META));
    /// larger ones are refused with `TooLong` where they enter.
    pub fn set_max_meta(&mut self, bytes: usize) {
        self.pg.set_max_meta(bytes);
        self.names.set_max_meta(bytes);
    }

    /// Sets the max frame size of the transport (default
    /// [`DEFAULT_MAX_FRAME`](crate::proto::DEFAULT_MAX_FRAME)): process-group
    /// deltas, catch-ups and snapshots and name snapshots are cut into
    /// frames that fit.
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.pg.set_max_frame(bytes);
        self.names.set_max_frame(bytes);
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

    /// Takes the next effect to carry out. Drivers take every effect after
    /// each input; when none is left, [`NodeCore::held_flag`] is brought
    /// up to date.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        let e = self.fx.pop();
        if e.is_none() {
            // Stored only when it changes: the flag is shared with other
            // threads, and most inputs (ticks) change nothing. Only this
            // core stores it, so a relaxed load reads its own last store.
            let holds = self.holds();
            if holds != self.held.load(Ordering::Relaxed) {
                self.held.store(holds, Ordering::Release);
            }
        }
        e
    }

    /// The next time [`NodeCore::timeout`] must be called: ticks, retries,
    /// and, while changes are held, when they are due to go out
    /// ([`FLUSH_REST`] after the timer's last turn; possibly already past,
    /// meaning now).
    pub fn next_timeout(&self) -> Time {
        let mut t = self.cluster.next_timeout();
        for sub in [self.pg.next_timeout(), self.names.next_timeout()]
            .into_iter()
            .flatten()
        {
            t = t.min(sub);
        }
        if self.holds() {
            t = t.min(self.flushed_at + FLUSH_REST);
        }
        t
    }

    /// Whether changes are held, as a flag that readers outside the
    /// driver's lock can test (a runtime's fast send path, see
    /// [`route`](crate::route::route)): true from the input that held
    /// changes until the input that sent them, once the driver has taken
    /// the effects.
    pub fn held_flag(&self) -> Arc<AtomicBool> {
        self.held.clone()
    }

    /// Sends the changes held for batching now (the core's timer sends
    /// them otherwise, see [`FLUSH_REST`]).
    pub fn flush(&mut self, now: Time) {
        self.clock = self.clock.max(now);
        if self.pg.holds() {
            with_sub!(self, pg, now, |pg, ctx| pg.flush(&mut ctx));
        }
        if self.names.holds() {
            with_sub!(self, names, now, |names, ctx| names.flush(&mut ctx));
        }
    }

    /// Whether changes are held for batching (see [`FLUSH_REST`]).
    pub fn holds(&self) -> bool {
        self.pg.holds() || self.names.holds()
    }

    /// Runs `f` on the process-group layer, then the deferred actions.
    pub fn with_pg<R>(&mut self, now: Time, f: impl FnOnce(&mut Pg, &mut Ctx<'_>) -> R) -> R {
        self.clock = self.clock.max(now);
        let r = with_sub!(self, pg, now, |pg, ctx| f(pg, &mut ctx));
        self.run_deferred(now);
        r
    }

    /// Runs `f` on the name service, then the deferred actions.
    pub fn with_names<R>(&mut self, now: Time, f: impl FnOnce(&mut Names, &mut Ctx<'_>) -> R) -> R {
        self.clock = self.clock.max(now);
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
        self.clock = self.clock.max(now);
        with_sub!(self, groups, now, |g, ctx| g
            .ask(node, query, req, &mut ctx));
    }

    /// Re-checks the global-group definition with every own-group node;
    /// answered by `GlobalGroupsEffect::Synced { req }`.
    pub fn groups_sync(&mut self, req: ReqId, now: Time) {
        self.clock = self.clock.max(now);
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
        self.clock = self.clock.max(now);
        self.cluster
            .closed(conn, why, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    /// A frame arrived.
    pub fn frame(&mut self, conn: ConnId, frame: Frame, now: Time) {
        self.clock = self.clock.max(now);
        self.cluster
            .frame(conn, frame, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    /// Time passed: held changes go out, then ticks, timeouts, reconnects.
    pub fn timeout(&mut self, now: Time) {
        self.clock = self.clock.max(now);
        // The rest counts from every turn of the timer, even when the held
        // changes went out already (a full batch, a message): the changes
        // of a burst keep going out in batches.
        self.flushed_at = now;
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
        self.clock = self.clock.max(now);
        self.cluster.connect(addr, req, now, &mut self.fx);
    }

    /// Ends the session with `node` on purpose. False when not connected.
    pub fn disconnect(&mut self, node: &NodeName, now: Time) -> bool {
        self.clock = self.clock.max(now);
        let r = self
            .cluster
            .disconnect(node, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
        r
    }

    /// Stops redialing `node` unless a session with it is up or being
    /// opened ([`Cluster::forget`]). True when it was forgotten.
    pub fn forget(&mut self, node: &NodeName) -> bool {
        self.cluster.forget(node)
    }

    /// Drops and refuses all traffic with `node` until unblocked.
    pub fn block(&mut self, node: NodeName, now: Time) {
        self.clock = self.clock.max(now);
        self.cluster.block(node, now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    /// Lifts a block. False when the node was not blocked.
    pub fn unblock(&mut self, node: &NodeName, now: Time) -> bool {
        self.cluster.unblock(node, now)
    }

    /// Leaves the cluster: peers are told, connections closed.
    pub fn shutdown(&mut self, now: Time) {
        self.clock = self.clock.max(now);
        self.cluster.shutdown(now, &mut self.fx, &mut self.up);
        self.run_upcalls(now);
    }

    // ---- processes ----------------------------------------------------

    fn run_upcalls(&mut self, now: Time) {
        while !self.up.is_empty() {
            let batch = std::mem::take(&mut self.up);
            for u in batch {
                match u {
                    Upcall::PeerUp { node, creation } => {
                        with_sub!(self, pg, now, |pg, ctx| pg.session_up(&node, &mut ctx));
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
                        with_sub!(self, pg, now, |pg, ctx| pg.session_down(&node, &mut ctx));
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
                Transition::Up(node, _) => {
                    self.eligible.insert(node.clone());
                    self.eligible_gen += 1;
                    self.fx.push(Effect::Groups(GlobalGroupsEffect::Node {
                        node: node.clone(),
                        up: true,
                    }));
                    with_sub!(self, pg, now, |pg, ctx| pg.peer_up(&node, &mut ctx));
                    with_sub!(self, names, now, |names, ctx| names
                        .peer_up(&node, &mut ctx));
                }
                Transition::Down(node, _) => {
                    with_sub!(self, pg, now, |pg, ctx| pg.peer_down(&node, &mut ctx));
                    with_sub!(self, names, now, |names, ctx| names
                        .peer_down(&node, &mut ctx));
                    self.eligible.remove(&node);
                    self.eligible_gen += 1;
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
                self.names.dropped_from(&node);
                debug!(node = %self.name, peer = %node, "replication from a node outside the own global group; ignored");
            }
            Frame::Pg(f) => with_sub!(self, pg, now, |pg, ctx| pg
                .frame(&node, creation, f, &mut ctx)),
            Frame::Names(f) => with_sub!(self, names, now, |names, ctx| names
                .frame(&node, creation, f, &mut ctx)),
            Frame::GlobalGroup(GlobalGroupsFrame::Ask { id, query }) => {
                let answer = self.answer(query, now);
                self.send_frame(
                    &node,
                    Frame::GlobalGroup(GlobalGroupsFrame::Answer { id, answer }),
                );
            }
            Frame::GlobalGroup(f) => {
                let t = with_sub!(self, groups, now, |g, ctx| g.frame(&node, f, &mut ctx));
                self.transitions(t, now);
            }
            Frame::Send { to, from, payload } => {
                if route_received(&self.name, self.creation, &to) == Route::Local {
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
                    self.send_frame(
                        &node,
                        Frame::Down {
                            mref,
                            watcher,
                            target,
                            reason: ExitReason::NoProc,
                        },
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
}
