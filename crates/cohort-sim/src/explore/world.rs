//! The world one schedule runs in: the real cores of a few nodes, their
//! connections as FIFO pipes whose next message is delivered only when the
//! schedule says so, and the facts the contract's invariants judge.
//!
//! The model, and why it covers what it leaves out:
//! - Every message (connection set-up included) waits in its pipe until a
//!   `Deliver` choice hands it over; pipes are FIFO per connection, as TCP.
//! - Time advances only when nothing can be delivered (deliveries are
//!   faster than timers) or across a partition. A partition shorter than
//!   the peers' time-outs only delays frames, which the delivery orders
//!   cover; a longer one ends in the peers closing the connection, which
//!   `Partition` does at once: both ends see the connection close, the
//!   frames still in it are lost, and dials across it fail.
//! - A crash drops the node's core; its peers see its connections reset.
//!   A crashed node does not come back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use bytes::Bytes;
use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::names::rank::winner;
use cohort_proto::names::{Claim, NameEvent, NamesEffect, NamesError, Outcome, RegisterArgs};
use cohort_proto::pid::{NodeName, Pid};
use cohort_proto::process::Message;
use cohort_proto::proto::Frame;
use cohort_proto::time::Time;
use cohort_proto::{ConnId, CoreConfig, Effect, NodeCore};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::case::{Case, Choice, Op, OpKind, TableMode};
use crate::net::NodeIdx;
use crate::registry;

/// How long the settling after a schedule may take in simulated time.
const SETTLE_LIMIT_SECS: u64 = 120;
/// How long the cluster stays quiet and connected before the final checks.
const SETTLE_QUIET_SECS: u64 = 10;

/// A message in a pipe.
#[derive(Debug, Clone)]
enum Msg {
    /// A dial reaching the listener.
    Syn,
    /// The listener accepted: the dialer's connection is up.
    SynAck,
    /// A frame.
    Frame(Frame),
    /// The sender closed its end.
    Fin,
}

/// One end of a connection.
#[derive(Debug, Clone)]
struct End {
    node: NodeIdx,
    /// The core's id for it, once accepted (listener) or from the dial.
    conn: Option<ConnId>,
    /// Whether the core still uses it.
    open: bool,
    /// Dialer side waiting for `SynAck`.
    connecting: bool,
}

/// A connection: `pipes[d]` carries messages from `ends[d]` to the other
/// end.
#[derive(Debug, Clone)]
struct Link {
    ends: [End; 2],
    pipes: [VecDeque<Msg>; 2],
}

/// Where an operation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    NotStarted,
    Pending,
    Done(Result<bool, NamesError>),
}

/// An operation of the case in this world.
#[derive(Debug, Clone)]
struct OpRun {
    op: Op,
    status: Status,
    /// The step it started at.
    started: u64,
    /// For an unregister: the claim the caller saw (holder, stamp).
    target: Option<(Pid, u64)>,
}

/// An acknowledged locked registration.
#[derive(Debug, Clone, Hash)]
struct Ack {
    pid: Pid,
    node: NodeIdx,
    started: u64,
    replace: bool,
}

/// A node of the world.
#[derive(Debug)]
struct XNode {
    name: NodeName,
    core: Option<NodeCore>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What happened.
    pub what: String,
}

/// The world of one schedule.
#[derive(Debug)]
pub struct World {
    case: Case,
    now: Time,
    step: u64,
    nodes: Vec<XNode>,
    links: Vec<Link>,
    cut: Option<NodeIdx>,
    partitioned: bool,
    crashed: Option<NodeIdx>,
    timers: usize,
    ops: Vec<OpRun>,
    /// Op ids (per node) of the case's operations: op id `k + 1` is `ops[k]`.
    setup_op: u64,
    /// `(a, b)` -> step since which `a` counts `b` as a names member.
    synced: BTreeMap<(NodeIdx, NodeIdx), u64>,
    acks: Vec<Ack>,
    /// Losers told, per process.
    told: BTreeMap<Pid, u32>,
    /// Registrations started, per process.
    registrations: BTreeMap<Pid, u32>,
    /// Clash settlements reported: (node, winner, loser).
    conflicts: Vec<(NodeIdx, Option<Pid>, Pid)>,
    /// Own claims removed by `unregister` in the current step.
    unregistered: Vec<(NodeIdx, Pid)>,
    /// The first broken invariant.
    pub violation: Option<Violation>,
    /// What happened, when tracing.
    pub trace: Option<Vec<String>>,
}

impl World {
    /// A full mesh of `case.nodes` cores, the case's processes spawned and
    /// its setup operations run to their end.
    pub fn new(case: &Case, trace: bool) -> Self {
        let start = Time(1_000_000);
        let nodes = (0..case.nodes)
            .map(|i| {
                let name = NodeName::new(&format!("n{i}@x")).expect("valid node name");
                let cfg = CoreConfig {
                    name: name.clone(),
                    creation: 1,
                    listen: Some(format!("x:{i}")),
                    cookie: Cookie::new("explore"),
                    // Liveness is modelled by `Partition` and `Crash`
                    // closing connections; ticks would only multiply the
                    // interleavings.
                    cluster: ClusterConfig {
                        tick_interval: Duration::from_secs(1_000),
                        peer_timeout: Duration::from_secs(4_000),
                        ..ClusterConfig::default()
                    },
                    names: registry::names_config(),
                };
                let mut core = NodeCore::new(cfg, StdRng::seed_from_u64(i as u64), start);
                // Name events are produced only for watched tables.
                let table = case.mode.index();
                core.with_names(start, |names, _| names.watch(table));
                XNode {
                    name,
                    core: Some(core),
                }
            })
            .collect();
        let mut w = World {
            case: case.clone(),
            now: start,
            step: 0,
            nodes,
            links: Vec::new(),
            cut: None,
            partitioned: false,
            crashed: None,
            timers: 0,
            ops: case
                .ops
                .iter()
                .map(|op| OpRun {
                    op: op.clone(),
                    status: Status::NotStarted,
                    started: 0,
                    target: None,
                })
                .collect(),
            setup_op: 1000,
            synced: BTreeMap::new(),
            acks: Vec::new(),
            told: BTreeMap::new(),
            registrations: BTreeMap::new(),
            conflicts: Vec::new(),
            unregistered: Vec::new(),
            violation: None,
            trace: trace.then(Vec::new),
        };
        let procs: BTreeSet<(NodeIdx, u64)> = case
            .setup
            .iter()
            .chain(&case.ops)
            .map(|o| (o.node, o.serial))
            .collect();
        for (i, serial) in procs {
            if let Some(core) = w.nodes.get_mut(i).and_then(|n| n.core.as_mut()) {
                core.spawned(serial);
            }
        }
        for i in 0..case.nodes {
            for j in i + 1..case.nodes {
                let addr = format!("x:{j}");
                w.input(i, |c, now| c.connect(addr, None, now));
            }
        }
        w.settle_network();
        for op in case.setup.clone() {
            w.setup_op += 1;
            let id = w.setup_op;
            w.call(&op, id);
            w.settle_network();
        }
        w.note("setup done".to_string());
        w
    }

    fn note(&mut self, line: String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("[{:>9}us] {line}", self.now.0));
        }
    }

    /// Delivers everything and fires timers until the mesh is up and no
    /// message waits (used for the setup, outside the explored choices).
    fn settle_network(&mut self) {
        for _ in 0..10_000 {
            if let Some(c) = self.deliverable().first().copied() {
                self.apply(c);
            } else if let Some(c) = self.flushable().first().copied() {
                self.apply(c);
            } else if self.all_synced() && self.ops_quiet() {
                return;
            } else {
                self.fire_timers();
            }
        }
    }

    fn ops_quiet(&self) -> bool {
        self.ops
            .iter()
            .all(|o| o.status != Status::Pending || self.nodes[o.op.node].core.is_none())
    }

    fn running(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].core.is_some())
    }

    fn all_synced(&self) -> bool {
        let run: Vec<NodeIdx> = self.running().collect();
        run.iter().all(|&a| {
            run.iter()
                .all(|&b| a == b || self.synced.contains_key(&(a, b)))
        })
    }

    /// Whether `a` and `b` can talk now.
    fn reachable(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let cut = self.cut.is_some_and(|c| (a == c) != (b == c));
        !cut && self.nodes[a].core.is_some() && self.nodes[b].core.is_some()
    }

    /// Feeds an input to node `i`'s core and carries out its effects.
    fn input(&mut self, i: NodeIdx, f: impl FnOnce(&mut NodeCore, Time)) {
        let now = self.now;
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        f(core, now);
        self.drain(i);
    }

    fn drain(&mut self, i: NodeIdx) {
        while let Some(effect) = self.nodes[i].core.as_mut().and_then(|c| c.poll_effect()) {
            self.effect(i, effect);
        }
    }

    fn link_of(&self, i: NodeIdx, conn: ConnId) -> Option<(usize, usize)> {
        self.links.iter().enumerate().find_map(|(l, link)| {
            (0..2)
                .find(|&e| link.ends[e].node == i && link.ends[e].conn == Some(conn))
                .map(|e| (l, e))
        })
    }

    fn effect(&mut self, i: NodeIdx, effect: Effect) {
        match effect {
            Effect::Dial { conn, addr } => {
                let target = addr
                    .strip_prefix("x:")
                    .and_then(|s| s.parse::<NodeIdx>().ok())
                    .filter(|&t| t < self.nodes.len());
                match target {
                    Some(t) if self.reachable(i, t) => {
                        let end = |node, conn, connecting| End {
                            node,
                            conn,
                            open: true,
                            connecting,
                        };
                        self.links.push(Link {
                            ends: [end(i, Some(conn), true), end(t, None, false)],
                            pipes: [VecDeque::from([Msg::Syn]), VecDeque::new()],
                        });
                    }
                    _ => {
                        let now = self.now;
                        if let Some(c) = self.nodes[i].core.as_mut() {
                            c.dial_failed(conn, "unreachable".into(), now);
                        }
                    }
                }
            }
            Effect::Send { conn, frame } => self.push(i, conn, Msg::Frame(frame)),
            Effect::Broadcast { conns, frame } => {
                for conn in conns {
                    self.push(i, conn, Msg::Frame(frame.clone()));
                }
            }
            Effect::Close { conn, .. } => {
                if let Some((l, e)) = self.link_of(i, conn) {
                    let link = &mut self.links[l];
                    link.ends[e].open = false;
                    if link.ends[1 - e].open {
                        link.pipes[e].push_back(Msg::Fin);
                    }
                }
            }
            Effect::Names(NamesEffect::Reply { op, result }) => self.reply(i, op, result),
            Effect::Names(NamesEffect::Event { table, event })
                if table == self.case.mode.index() =>
            {
                self.name_event(i, event);
            }
            Effect::Groups(cohort_proto::global_group::GlobalGroupsEffect::Node { node, up }) => {
                if let Some(b) = self.index_of(&node) {
                    if up {
                        self.synced.insert((i, b), self.step);
                    } else {
                        self.synced.remove(&(i, b));
                    }
                }
            }
            Effect::Kill { serial, .. } => {
                let pid = self.pid(i, serial);
                self.note(format!("kill {pid}"));
                *self.told.entry(pid).or_default() += 1;
            }
            Effect::Deliver {
                to,
                msg: Message::NameConflict { winner, .. },
            } => {
                let pid = self.pid(i, to);
                self.note(format!("tell {pid}: lost to {winner:?}"));
                *self.told.entry(pid).or_default() += 1;
            }
            Effect::NodeDown { node, .. } => {
                if let Some(b) = self.index_of(&node) {
                    self.synced.remove(&(i, b));
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, i: NodeIdx, conn: ConnId, msg: Msg) {
        if let Some((l, e)) = self.link_of(i, conn) {
            let link = &mut self.links[l];
            if link.ends[e].open && link.ends[1 - e].open {
                link.pipes[e].push_back(msg);
            }
        }
    }

    fn index_of(&self, node: &NodeName) -> Option<NodeIdx> {
        self.nodes.iter().position(|n| &n.name == node)
    }

    fn pid(&self, i: NodeIdx, serial: u64) -> Pid {
        Pid::new(self.nodes[i].name.clone(), 1, serial)
    }

    /// The messages that can be delivered now.
    pub fn deliverable(&self) -> Vec<Choice> {
        let mut out = Vec::new();
        for (l, link) in self.links.iter().enumerate() {
            for d in 0..2 {
                let (from, to) = (link.ends[d].node, link.ends[1 - d].node);
                if !link.pipes[d].is_empty() && self.reachable(from, to) {
                    out.push(Choice::Deliver { from, link: l, to });
                }
            }
        }
        out
    }

    /// The nodes that hold changes for batching.
    fn flushable(&self) -> Vec<Choice> {
        self.running()
            .filter(|&i| self.nodes[i].core.as_ref().is_some_and(NodeCore::holds))
            .map(Choice::Flush)
            .collect()
    }

    /// Whether an operation of a running node is still to start or answer,
    /// or a node holds changes.
    fn busy(&self) -> bool {
        self.ops
            .iter()
            .any(|o| !matches!(o.status, Status::Done(_)) && self.nodes[o.op.node].core.is_some())
            || !self.flushable().is_empty()
    }

    /// Every choice the schedule may take here.
    pub fn enabled(&self) -> Vec<Choice> {
        if self.violation.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (k, o) in self.ops.iter().enumerate() {
            let ready = o.status == Status::NotStarted
                && self.nodes[o.op.node].core.is_some()
                && self.ops[..k].iter().all(|p| {
                    (p.op.node, p.op.serial) != (o.op.node, o.op.serial)
                        || matches!(p.status, Status::Done(_))
                });
            if ready {
                out.push(Choice::Op(k));
            }
        }
        let deliver = self.deliverable();
        let flush = self.flushable();
        let quiet = deliver.is_empty() && flush.is_empty();
        out.extend(deliver);
        out.extend(flush);
        if !self.busy() {
            return out;
        }
        let waiting = self.ops.iter().any(|o| o.status == Status::Pending);
        if quiet && waiting && self.timers < self.case.timers {
            out.push(Choice::Timer);
        }
        if self.case.partition {
            if !self.partitioned {
                out.extend((0..self.nodes.len()).map(Choice::Partition));
            } else if self.cut.is_some() {
                out.push(Choice::Heal);
            }
        }
        if self.case.crash && self.crashed.is_none() {
            out.extend(self.running().map(Choice::Crash));
        }
        out
    }

    /// Takes one choice, then checks the invariants judged at every step.
    pub fn apply(&mut self, c: Choice) {
        self.step += 1;
        self.note(format!("choice {c}"));
        let before = self.own_claims();
        match c {
            Choice::Op(k) => {
                let op = self.ops[k].op.clone();
                self.ops[k].status = Status::Pending;
                self.ops[k].started = self.step;
                self.call(&op, k as u64 + 1);
            }
            Choice::Deliver { link, to, .. } => self.deliver(link, to),
            Choice::Flush(n) => {
                self.input(n, |c, now| c.flush(now));
            }
            Choice::Timer => {
                self.timers += 1;
                self.fire_timers();
            }
            Choice::Partition(n) => {
                self.partitioned = true;
                self.cut = Some(n);
                self.sever(|a, b| (a == n) != (b == n));
            }
            Choice::Heal => self.cut = None,
            Choice::Crash(n) => {
                self.crashed = Some(n);
                self.nodes[n].core = None;
                self.synced.retain(|&(a, b), _| a != n && b != n);
                self.sever(|a, b| a == n || b == n);
            }
        }
        self.check_unregistered(&before);
    }

    /// Closes every open connection between nodes that `cut` separates:
    /// the running ends see it close, its messages are lost.
    fn sever(&mut self, cut: impl Fn(NodeIdx, NodeIdx) -> bool) {
        for l in 0..self.links.len() {
            let (a, b) = (self.links[l].ends[0].node, self.links[l].ends[1].node);
            if !cut(a, b) {
                continue;
            }
            self.links[l].pipes = Default::default();
            for e in 0..2 {
                let end = self.links[l].ends[e].clone();
                self.links[l].ends[e].open = false;
                let (true, Some(conn)) = (end.open, end.conn) else {
                    continue;
                };
                if end.connecting {
                    self.input(end.node, |c, now| {
                        c.dial_failed(conn, "unreachable".into(), now)
                    });
                } else {
                    self.input(end.node, |c, now| {
                        c.closed(conn, "connection lost".into(), now)
                    });
                }
            }
        }
    }

    fn deliver(&mut self, l: usize, to: NodeIdx) {
        let e = usize::from(self.links[l].ends[0].node != to);
        let Some(msg) = self.links[l].pipes[1 - e].pop_front() else {
            return;
        };
        match msg {
            Msg::Syn => {
                let addr = format!("x:{}:{l}", self.links[l].ends[0].node);
                let now = self.now;
                if let Some(core) = self.nodes[to].core.as_mut() {
                    let conn = core.accepted(addr, now);
                    self.links[l].ends[1].conn = Some(conn);
                    self.links[l].pipes[1].push_back(Msg::SynAck);
                    self.drain(to);
                }
            }
            Msg::SynAck => {
                self.links[l].ends[0].connecting = false;
                if let (true, Some(conn)) = (self.links[l].ends[0].open, self.links[l].ends[0].conn)
                {
                    self.input(to, |c, now| c.dialed(conn, now));
                }
            }
            Msg::Frame(frame) => {
                if let (true, Some(conn)) = (self.links[l].ends[e].open, self.links[l].ends[e].conn)
                {
                    self.note(format!("n{to} <- {}", short(&frame)));
                    self.input(to, |c, now| c.frame(conn, frame, now));
                }
            }
            Msg::Fin => {
                let end = self.links[l].ends[e].clone();
                self.links[l].ends[e].open = false;
                if let (true, Some(conn)) = (end.open, end.conn) {
                    self.input(to, |c, now| c.closed(conn, "closed by peer".into(), now));
                }
            }
        }
    }

    /// Advances time to the earliest timer and fires every timer due.
    fn fire_timers(&mut self) {
        let Some(at) = self
            .running()
            .filter_map(|i| self.nodes[i].core.as_ref().map(|c| c.next_timeout()))
            .min()
        else {
            return;
        };
        self.now = self.now.max(at);
        let due: Vec<NodeIdx> = self
            .running()
            .filter(|&i| {
                self.nodes[i]
                    .core
                    .as_ref()
                    .is_some_and(|c| c.next_timeout() <= self.now)
            })
            .collect();
        for i in due {
            self.input(i, |c, now| c.timeout(now));
        }
    }

    /// Runs `op` on its node with operation id `id`.
    fn call(&mut self, op: &Op, id: u64) {
        let (i, table, name) = (op.node, self.case.mode.table(), op.name.clone());
        let pid = self.pid(i, op.serial);
        self.note(format!("start {op} (op {id})"));
        let mut out = None;
        match op.kind {
            OpKind::Register | OpKind::ReRegister => {
                *self.registrations.entry(pid.clone()).or_default() += 1;
                let args = RegisterArgs {
                    table: table.to_string(),
                    name,
                    pid,
                    meta: Bytes::new(),
                    policy: None,
                    replace: op.kind == OpKind::ReRegister,
                };
                self.input(i, |c, now| out = Some(c.names_register(now, id, args)));
            }
            OpKind::Unregister => {
                let target = self.nodes[i].core.as_ref().and_then(|c| {
                    let holder = c.names().whereis(table, &name)?;
                    let claims = c.names().claims(table);
                    let claim = claims.iter().find(|c| c.name == name && c.pid == holder)?;
                    Some((holder, claim.stamp))
                });
                if let Some(k) = id.checked_sub(1).filter(|&k| k < self.ops.len() as u64) {
                    self.ops[k as usize].target = target;
                }
                self.input(i, |c, now| {
                    out = Some(c.names_unregister(now, id, table, &name))
                });
            }
        }
        if let Some(Outcome::Done(r)) = out {
            self.reply(i, id, r);
        }
    }

    /// The own claims on the case's name of every running node.
    fn own_claims(&self) -> Vec<(NodeIdx, Pid, u64)> {
        let table = self.case.mode.table();
        let mut out = Vec::new();
        for i in self.running() {
            let core = self.nodes[i].core.as_ref().expect("running");
            for c in core.names().claims(table) {
                if c.pid.node() == &self.nodes[i].name {
                    out.push((i, c.pid, c.stamp));
                }
            }
        }
        out
    }

    fn fail(&mut self, invariant: &'static str, what: String) {
        self.note(format!("VIOLATION {invariant}: {what}"));
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, what });
        }
    }

    /// Mutual members since before step `since`.
    fn synced_since(&self, a: NodeIdx, b: NodeIdx, since: u64) -> bool {
        let ok = |x, y| self.synced.get(&(x, y)).is_some_and(|&s| s < since);
        ok(a, b) && ok(b, a)
    }

    fn holds(&self, i: NodeIdx, pid: &Pid) -> bool {
        let table = self.case.mode.table();
        self.nodes[i].core.as_ref().is_some_and(|c| {
            let names = c.names();
            names.claims(table).iter().any(|c| c.pid == *pid)
                || names
                    .staged(table, &self.case_name())
                    .is_some_and(|c| c.pid == *pid)
        })
    }

    fn case_name(&self) -> String {
        self.ops
            .first()
            .map(|o| o.op.name.clone())
            .or_else(|| self.case.setup.first().map(|o| o.name.clone()))
            .unwrap_or_default()
    }

    /// Operation `id` of node `i` answered.
    fn reply(&mut self, i: NodeIdx, id: u64, result: Result<bool, NamesError>) {
        let Some(k) = id
            .checked_sub(1)
            .map(|k| k as usize)
            .filter(|&k| k < self.ops.len() && self.ops[k].op.node == i)
        else {
            return;
        };
        self.note(format!("reply {} -> {result:?}", self.ops[k].op));
        self.ops[k].status = Status::Done(result.clone());
        let run = self.ops[k].clone();
        let pid = self.pid(i, run.op.serial);
        match (run.op.kind, result) {
            (OpKind::Unregister, Ok(true)) => {
                if let Some((holder, stamp)) = &run.target {
                    let h = self.index_of(holder.node()).expect("known node");
                    let still = self.nodes[h].core.as_ref().is_some_and(|c| {
                        c.names()
                            .claims(self.case.mode.table())
                            .iter()
                            .any(|c| c.pid == *holder && c.stamp == *stamp)
                    });
                    if still {
                        self.fail(
                            "unregister_applied",
                            format!(
                                "{} answered Ok, but n{h} still holds the claim of {holder} (stamp {stamp})",
                                run.op
                            ),
                        );
                    }
                }
            }
            (OpKind::Register | OpKind::ReRegister, Ok(true))
                if self.case.mode == TableMode::Locked =>
            {
                let replace = run.op.kind == OpKind::ReRegister;
                if !replace {
                    self.check_exclusive(&run, i, &pid);
                }
                self.check_held(&run, i, &pid);
                self.acks.push(Ack {
                    pid,
                    node: i,
                    started: run.started,
                    replace,
                });
            }
            _ => {}
        }
    }

    /// `locked_exclusive`: no other acknowledged holder still holds the
    /// name on a node that was a member of this one's table throughout.
    fn check_exclusive(&mut self, run: &OpRun, i: NodeIdx, pid: &Pid) {
        let last_replace = self.acks.iter().rposition(|a| a.replace);
        let live: Vec<Ack> = self
            .acks
            .iter()
            .enumerate()
            .filter(|(n, _)| last_replace.is_none_or(|r| *n >= r))
            .map(|(_, a)| a.clone())
            .collect();
        for a in live {
            if a.pid == *pid || !self.holds(a.node, &a.pid) {
                continue;
            }
            if a.node == i || self.synced_since(i, a.node, run.started) {
                let what = format!(
                    "{} acknowledged while {} (acknowledged before, on n{}) still holds it and the nodes were members of each other's table",
                    run.op, a.pid, a.node
                );
                self.fail("locked_exclusive", what);
            }
        }
    }

    /// `locked_held`: when a locked registration answers, every node that
    /// was a member throughout holds the claim or has it staged.
    fn check_held(&mut self, run: &OpRun, i: NodeIdx, pid: &Pid) {
        let peers: Vec<NodeIdx> = self.running().filter(|&j| j != i).collect();
        for j in peers {
            if self.synced_since(i, j, run.started) && !self.holds(j, pid) {
                let what = format!("{} acknowledged, but n{j} does not hold it", run.op);
                self.fail("locked_held", what);
            }
        }
    }

    fn name_event(&mut self, i: NodeIdx, event: NameEvent) {
        self.note(format!("n{i} event {event:?}"));
        match event {
            NameEvent::Unregistered {
                pid,
                reason: cohort_proto::names::UnregisterReason::Unregistered,
                ..
            } if pid.node() == &self.nodes[i].name => self.unregistered.push((i, pid)),
            NameEvent::ConflictResolved { winner, loser, .. } => {
                self.conflicts.push((i, winner, loser));
            }
            _ => {}
        }
    }

    /// `unregister_targets_claim`: an own claim removed by an `unregister`
    /// is one that some unregister saw when it was called.
    fn check_unregistered(&mut self, before: &[(NodeIdx, Pid, u64)]) {
        let removed = std::mem::take(&mut self.unregistered);
        if removed.is_empty() {
            return;
        }
        let after = self.own_claims();
        for (h, pid) in removed {
            for (_, _, stamp) in before
                .iter()
                .filter(|(n, p, _)| *n == h && *p == pid)
                .filter(|c| !after.contains(c))
            {
                let targeted = self.ops.iter().any(|o| {
                    o.status != Status::NotStarted
                        && o.op.kind == OpKind::Unregister
                        && o.target == Some((pid.clone(), *stamp))
                });
                if !targeted {
                    let what = format!(
                        "n{h} removed the claim of {pid} (stamp {stamp}) on an unregister that targeted another claim"
                    );
                    self.fail("unregister_targets_claim", what);
                }
            }
        }
    }

    /// After the schedule: heal, let every message and timer run until
    /// the cluster is connected and quiet, then check the end state.
    pub fn settle_and_check(&mut self) {
        if self.violation.is_some() {
            return;
        }
        self.note("settle".to_string());
        let pending = self
            .ops
            .iter()
            .any(|o| o.status == Status::Pending && self.nodes[o.op.node].core.is_some());
        let expected = (!pending).then(|| self.rank_winner());
        self.cut = None;
        let limit = self.now + Duration::from_secs(SETTLE_LIMIT_SECS);
        let mut quiet_since: Option<Time> = None;
        while self.now < limit {
            let before = self.own_claims();
            if let Some(c) = self.deliverable().first().copied() {
                self.step += 1;
                let Choice::Deliver { link, to, .. } = c else {
                    unreachable!()
                };
                self.deliver(link, to);
                self.check_unregistered(&before);
                continue;
            }
            if let Some(Choice::Flush(n)) = self.flushable().first().copied() {
                self.step += 1;
                self.input(n, |c, now| c.flush(now));
                self.check_unregistered(&before);
                continue;
            }
            if self.all_synced() && self.ops_quiet() {
                let since = *quiet_since.get_or_insert(self.now);
                if self.now.since(since).as_secs() >= SETTLE_QUIET_SECS {
                    break;
                }
            } else {
                quiet_since = None;
            }
            self.step += 1;
            self.fire_timers();
            self.check_unregistered(&before);
        }
        if self.violation.is_some() {
            return;
        }
        if !(self.all_synced() && self.ops_quiet()) {
            let what = format!("not connected and quiet after {SETTLE_LIMIT_SECS} s of settling");
            self.fail("settled", what);
            return;
        }
        let known = expected.is_some();
        self.check_end(expected.flatten().map(|c| c.pid), known);
    }

    /// The rank's winner among the claims their own nodes hold now.
    fn rank_winner(&self) -> Option<Claim> {
        let table = self.case.mode.table();
        let claims: Vec<Claim> = self
            .running()
            .flat_map(|i| {
                let core = self.nodes[i].core.as_ref().expect("running");
                let me = self.nodes[i].name.clone();
                core.names()
                    .claims(table)
                    .into_iter()
                    .filter(move |c| c.pid.node() == &me)
            })
            .collect();
        let refs: Vec<&Claim> = claims.iter().collect();
        winner(&refs, None).map(|k| claims[k].clone())
    }

    /// `settled` and `one_winner`: one view on every node, the rank's
    /// winner; `told_once`: no loser told twice for one registration.
    fn check_end(&mut self, expected: Option<Pid>, known: bool) {
        let table = self.case.mode.table();
        let name = self.case_name();
        let views: Vec<(NodeIdx, Option<Pid>)> = self
            .running()
            .map(|i| {
                let core = self.nodes[i].core.as_ref().expect("running");
                (i, core.names().whereis(table, &name))
            })
            .collect();
        if let Some((_, first)) = views.first() {
            if views.iter().any(|(_, v)| v != first) {
                self.fail("settled", format!("views of {name} differ: {views:?}"));
                return;
            }
            if known && *first != expected {
                let what = format!(
                    "every node shows {first:?} for {name}, the rank's winner of the claims at the end was {expected:?}"
                );
                self.fail("one_winner", what);
                return;
            }
        }
        let mut winners: BTreeMap<&Pid, BTreeSet<&Option<Pid>>> = BTreeMap::new();
        for (_, w, l) in &self.conflicts {
            winners.entry(l).or_default().insert(w);
        }
        if let Some((l, ws)) = winners.iter().find(|(_, ws)| ws.len() > 1) {
            let what = format!("nodes disagree on who beat {l}: {ws:?}");
            self.fail("one_winner", what);
            return;
        }
        let over: Vec<String> = self
            .told
            .iter()
            .filter(|(p, &n)| n > self.registrations.get(*p).copied().unwrap_or(0))
            .map(|(p, n)| format!("{p} told {n} times"))
            .collect();
        if !over.is_empty() {
            self.fail("told_once", over.join(", "));
        }
    }

    /// A hash of everything the rest of the schedule depends on.
    pub fn fingerprint(&self) -> u64 {
        let mut s = String::new();
        for n in &self.nodes {
            let _ = write!(s, "{:?}|", n.core);
        }
        let _ = write!(
            s,
            "{:?}{:?}{}{:?}{}",
            self.links, self.cut, self.partitioned, self.crashed, self.timers
        );
        for o in &self.ops {
            let _ = write!(s, "{:?}{:?}", o.status, o.target);
        }
        // Steps differ between orders that reach the same state: only what
        // the checks read of them goes in.
        for a in &self.acks {
            let members: Vec<bool> = (0..self.nodes.len())
                .map(|j| self.synced_since(a.node, j, a.started))
                .collect();
            let _ = write!(s, "{}{}{}{members:?}", a.pid, a.node, a.replace);
        }
        for o in &self.ops {
            let members: Vec<bool> = (0..self.nodes.len())
                .map(|j| self.synced_since(o.op.node, j, o.started))
                .collect();
            let _ = write!(s, "{members:?}");
        }
        let _ = write!(
            s,
            "{:?}{:?}{:?}",
            self.told,
            self.synced.keys().collect::<Vec<_>>(),
            self.conflicts
        );
        let mut h = std::hash::DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    }
}

/// A frame's kind, for traces.
fn short(frame: &Frame) -> String {
    let s = format!("{frame:?}");
    s.chars().take(160).collect()
}
