//! The scheduler: simulated time, the event queue, and the driver that
//! feeds events into the node cores and carries out their effects.
//!
//! Everything happens on one thread in one order decided by the seed:
//! events sit in a `BTreeMap` keyed by `(time, sequence number)`, so events
//! due at the same time run in the order they were scheduled. The only
//! randomness is one `StdRng` seeded from the run's seed; node cores get
//! generators seeded from it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::global_group::{GlobalGroupsConfig, Publish};
use cohort_proto::pid::{ExitReason, NodeName, Pid};
use cohort_proto::process::{Message, MonitorRef};
use cohort_proto::proto::Frame;
use cohort_proto::time::Time;
use cohort_proto::{ConnId, CoreConfig, DownReason, Effect, NodeCore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{FaultKind, Mismatch, SimConfig};
use crate::invariants::{self, Invariant};
use crate::ledger::{Ending, Ledger, MonRecord, ProcRecord, Stray};
use crate::net::{End, Link, LinkId, Net, NodeIdx, PipeMsg};
use crate::trace::Trace;

/// How long a dial into a partition or to a dead host waits before failing
/// (a SYN that gets no answer).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A timeout firing again and again at one instant means the core asks to
/// be woken at a time that has already passed: a livelock.
const TIMER_LIVELOCK: u32 = 1000;

/// Whether a node runs, and its core when it does.
#[derive(Debug)]
pub enum NodeState {
    /// The node runs this core.
    Running(Box<NodeCore>),
    /// The host is down: nothing it had survives, nothing reaches it, and
    /// it answers nothing (no resets).
    Crashed,
    /// The node stopped gracefully; the host is up, so connections to it
    /// are refused and frames to its old connections get a reset.
    Stopped,
}

/// One node of the simulation.
#[derive(Debug)]
pub struct SimNode {
    /// The node's name.
    pub name: NodeName,
    /// Where it listens.
    pub addr: String,
    /// Its creation (the current one while running, else the last one).
    pub creation: u32,
    /// Whether it runs.
    pub state: NodeState,
    /// Live local processes of the current incarnation.
    pub alive: BTreeSet<u64>,
    /// Frames this node sent, over all incarnations.
    pub sent_frames: u64,
    /// Encoded bytes this node sent, over all incarnations.
    pub sent_bytes: u64,
    timer_at: Option<Time>,
    next_serial: u64,
    next_req: u64,
}

impl SimNode {
    /// The core, while the node runs.
    pub fn core(&self) -> Option<&NodeCore> {
        match &self.state {
            NodeState::Running(core) => Some(core),
            _ => None,
        }
    }

    /// Whether the node runs.
    pub fn is_running(&self) -> bool {
        matches!(self.state, NodeState::Running(_))
    }

    /// The pid of local process `serial` of the current incarnation.
    pub fn pid(&self, serial: u64) -> Pid {
        Pid::new(self.name.clone(), self.creation, serial)
    }
}

#[derive(Debug)]
enum Event {
    /// The node's core asked to be woken now.
    Timer { node: NodeIdx, creation: u32 },
    /// The node's flusher task runs (the core held changes to batch).
    Flush { node: NodeIdx, creation: u32 },
    /// A dial reaches the target host.
    Syn { link: LinkId },
    /// A dial got no answer.
    DialTimeout { link: LinkId },
    /// The head of a pipe arrives.
    Pipe { link: LinkId, dir: usize },
    /// A reset reaches one end of a connection.
    Reset { link: LinkId, end: usize },
}

/// Something that went wrong in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant that failed.
    pub invariant: &'static str,
    /// The step after which it was found (`None`: in the final check).
    pub step: Option<usize>,
    /// Simulated time.
    pub at: Time,
    /// What was wrong.
    pub message: String,
}

/// Frames and bytes of one frame kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames sent.
    pub frames: u64,
    /// Encoded bytes sent.
    pub bytes: u64,
}

/// A deterministic simulation of a cluster of node cores.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    /// The run's only source of randomness.
    pub(crate) rng: StdRng,
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), Event>,
    /// The nodes, by index.
    pub(crate) nodes: Vec<SimNode>,
    /// The network.
    pub(crate) net: Net,
    /// What happened.
    pub(crate) ledger: Ledger,
    pub(crate) trace: Trace,
    /// Latency spikes are on (the `delay` fault, until the final heal).
    pub(crate) spikes: bool,
    traffic: BTreeMap<&'static str, Traffic>,
    step: Option<usize>,
    timer_streak: (Time, u32),
    /// Problems the driver found outside the cores' effects (a timer livelock).
    pub(crate) driver_faults: Vec<Stray>,
    counters: BTreeMap<&'static str, u64>,
    /// The global-group configuration of each node (empty: none).
    pub(crate) groups: Vec<GlobalGroupsConfig>,
    /// Whose definitions differ (resolved from the seed when `Seeded`).
    mismatch: Mismatch,
    /// The group each node syncs in: nodes with the same definition of
    /// their own group (all 0 without configuration).
    group_ids: Vec<usize>,
}

impl Sim {
    /// A cluster of freshly started nodes, each asked to connect to an
    /// earlier one so the cluster forms.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let n = cfg.nodes.unwrap_or_else(|| rng.random_range(3..=7));
        let mut sim = Sim {
            trace: Trace::new(cfg.record_trace),
            spikes: false,
            cfg,
            rng,
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::with_capacity(n),
            net: Net::default(),
            ledger: Ledger::default(),
            traffic: BTreeMap::new(),
            step: None,
            timer_streak: (Time::ZERO, 0),
            driver_faults: Vec::new(),
            counters: BTreeMap::new(),
            groups: Vec::new(),
            mismatch: Mismatch::None,
            group_ids: vec![0; n],
        };
        if sim.cfg.groups {
            sim.mismatch = match sim.cfg.mismatch {
                Mismatch::Seeded => {
                    [Mismatch::None, Mismatch::Extra, Mismatch::Missing][sim.rng.random_range(0..3)]
                }
                m => m,
            };
        }
        sim.groups = crate::registry::groups_configs(n, sim.cfg.groups, sim.mismatch);
        if sim.cfg.groups {
            let mut defs: Vec<(String, Publish, Vec<NodeName>)> = Vec::new();
            for i in 0..n {
                let me = NodeName::new(&format!("n{i}@sim")).expect("valid node name");
                let own = sim.groups[i]
                    .group_of(&me)
                    .expect("every node is in a group");
                let mut nodes = own.nodes.clone();
                nodes.sort();
                let key = (own.name.clone(), own.publish, nodes);
                sim.group_ids[i] = defs.iter().position(|d| *d == key).unwrap_or_else(|| {
                    defs.push(key);
                    defs.len() - 1
                });
            }
        }
        for i in 0..n {
            let name = NodeName::new(&format!("n{i}@sim")).expect("valid node name");
            sim.nodes.push(SimNode {
                name,
                addr: format!("sim:{i}"),
                creation: 0,
                state: NodeState::Stopped,
                alive: BTreeSet::new(),
                sent_frames: 0,
                sent_bytes: 0,
                timer_at: None,
                next_serial: 0,
                next_req: 0,
            });
        }
        // Started once all exist: the global-group configuration lists them all.
        for i in 0..n {
            sim.start_node(i);
        }
        sim.trace.event(
            sim.now,
            format_args!("start seed={} nodes={n}", sim.cfg.seed),
        );
        if sim.cfg.groups {
            let m = sim.mismatch;
            let ids = format!("{:?}", sim.group_ids);
            sim.trace.event(
                sim.now,
                format_args!("global groups mismatch={m} groups={ids}"),
            );
        }
        for i in 1..n {
            let earlier: Vec<NodeIdx> = (0..i).filter(|&j| sim.counts(i, j)).collect();
            if !earlier.is_empty() {
                let to = earlier[sim.rng.random_range(0..earlier.len())];
                sim.connect(i, to);
            }
            // With differing definitions: also an earlier node that counts
            // this one in its group while this one does not count it (a
            // check that must be answered with a mismatch). Never drawn
            // when definitions agree, so such runs are unchanged.
            let counted_by: Vec<NodeIdx> = (0..i)
                .filter(|&j| sim.counts(j, i) && !sim.counts(i, j))
                .collect();
            if !counted_by.is_empty() {
                let to = counted_by[sim.rng.random_range(0..counted_by.len())];
                sim.connect(i, to);
            }
        }
        sim
    }

    /// The global group node `i` syncs in: nodes with the same definition
    /// of their own group share it (0 without a configuration). Without a
    /// [`Mismatch`], 0 for `g1` and 1 for `g2`.
    pub fn group_of(&self, i: NodeIdx) -> usize {
        self.group_ids[i]
    }

    /// Whether `a` and `b` are in the same global group (hold the same
    /// definition of their own group, so they sync with each other).
    pub fn same_group(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.group_of(a) == self.group_of(b)
    }

    /// Whether `a`'s configuration lists `b` in `a`'s own group (always
    /// without configuration): `a` meshes with `b` and checks its
    /// definition. Not symmetric when definitions differ.
    pub fn counts(&self, a: NodeIdx, b: NodeIdx) -> bool {
        if !self.cfg.groups {
            return true;
        }
        let (na, nb) = (&self.nodes[a].name, &self.nodes[b].name);
        self.groups[a]
            .group_of(na)
            .is_some_and(|g| g.nodes.contains(nb))
    }

    /// Whether one of `a` and `b` counts the other in its own group.
    pub fn related(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.counts(a, b) || self.counts(b, a)
    }

    /// Whose global-group definitions differ in this run.
    pub fn mismatch(&self) -> Mismatch {
        self.mismatch
    }

    // ---- inspection -----------------------------------------------------

    /// The configuration of this run.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Simulated time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The nodes, by index.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &NodeName) -> Option<NodeIdx> {
        let s = name.as_str();
        let i: NodeIdx = s.strip_prefix('n')?.strip_suffix("@sim")?.parse().ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// The record of what happened.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The network.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The event trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Frames and bytes sent, by frame kind.
    pub fn traffic(&self) -> &BTreeMap<&'static str, Traffic> {
        &self.traffic
    }

    /// How often things of interest happened (faults by kind, sessions up
    /// and down, `Down`s by reason...): the coverage of a run.
    pub fn counters(&self) -> &BTreeMap<&'static str, u64> {
        &self.counters
    }

    /// Counts one occurrence of `what`.
    pub(crate) fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    /// Problems the driver found itself (not through an effect).
    pub fn driver_faults(&self) -> &[Stray] {
        &self.driver_faults
    }

    /// Whether every pair of running nodes has a session up, both ways,
    /// with each other's current creation.
    pub fn full_mesh(&self) -> bool {
        let running: Vec<NodeIdx> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        let want = if self.cfg.groups {
            0
        } else {
            running.len() * running.len().saturating_sub(1)
        };
        // Cheap count first; the exact check only when it can succeed.
        if self.ledger.sessions.len() < want {
            return false;
        }
        running.iter().all(|&a| {
            running.iter().all(|&b| {
                a == b
                    || !self.same_group(a, b)
                    || self.ledger.sessions.get(&(a, b)) == Some(&self.nodes[b].creation)
            })
        })
    }

    fn label(&self, i: NodeIdx) -> String {
        format!("n{i}.{}", self.nodes[i].creation)
    }

    // ---- scheduling -----------------------------------------------------

    fn schedule(&mut self, at: Time, ev: Event) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    /// A one-way network latency: usually under two milliseconds; with the
    /// `delay` fault on, now and then seconds.
    fn latency(&mut self) -> Duration {
        if self.spikes && self.rng.random_bool(0.02) {
            return Duration::from_millis(self.rng.random_range(500..3000));
        }
        Duration::from_micros(self.rng.random_range(100..2000))
    }

    /// Runs every event due up to `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            self.handle(ev);
        }
        self.now = self.now.max(until);
    }

    /// Runs events until `until`, or until `done` holds after an event.
    /// Returns the time `done` first held.
    pub fn run_until_or(&mut self, until: Time, done: impl Fn(&Sim) -> bool) -> Option<Time> {
        if done(self) {
            return Some(self.now);
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            self.handle(ev);
            if done(self) {
                return Some(self.now);
            }
        }
        self.now = self.now.max(until);
        None
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Timer { node, creation } => self.on_timer(node, creation),
            Event::Flush { node, creation } => {
                if self.nodes[node].creation == creation {
                    self.input(node, |c, now| c.flush(now));
                }
            }
            Event::Syn { link } => self.on_syn(link),
            Event::DialTimeout { link } => self.on_dial_timeout(link),
            Event::Pipe { link, dir } => self.on_pipe(link, dir),
            Event::Reset { link, end } => self.on_reset(link, end),
        }
    }

    // ---- driving a core ---------------------------------------------------

    /// Feeds one input to node `i`'s core (if it runs) and carries out
    /// what it asks for.
    pub(crate) fn input(&mut self, i: NodeIdx, f: impl FnOnce(&mut NodeCore, Time)) {
        let now = self.now;
        let NodeState::Running(core) = &mut self.nodes[i].state else {
            return;
        };
        f(core, now);
        self.drain(i);
    }

    fn drain(&mut self, i: NodeIdx) {
        loop {
            let NodeState::Running(core) = &mut self.nodes[i].state else {
                return;
            };
            let Some(effect) = core.poll_effect() else {
                break;
            };
            self.apply(i, effect);
        }
        self.rearm_timer(i);
    }

    fn rearm_timer(&mut self, i: NodeIdx) {
        let Some(core) = self.nodes[i].core() else {
            return;
        };
        let at = core.next_timeout().max(self.now);
        if self.nodes[i].timer_at != Some(at) {
            self.nodes[i].timer_at = Some(at);
            let creation = self.nodes[i].creation;
            self.schedule(at, Event::Timer { node: i, creation });
        }
    }

    fn on_timer(&mut self, i: NodeIdx, creation: u32) {
        let n = &self.nodes[i];
        // Timers of an old incarnation, or superseded by a new wake-up time.
        if n.creation != creation || n.timer_at != Some(self.now) || !n.is_running() {
            return;
        }
        if self.timer_streak.0 == self.now {
            self.timer_streak.1 += 1;
            if self.timer_streak.1 == TIMER_LIVELOCK {
                let what = format!(
                    "{} asked to be woken at {} again and again",
                    self.label(i),
                    self.now.0
                );
                self.driver_faults.push(Stray { at: self.now, what });
                return;
            }
            if self.timer_streak.1 > TIMER_LIVELOCK {
                return;
            }
        } else {
            self.timer_streak = (self.now, 1);
        }
        self.nodes[i].timer_at = None;
        self.input(i, |c, now| c.timeout(now));
    }

    fn apply(&mut self, i: NodeIdx, effect: Effect) {
        let creation = self.nodes[i].creation;
        match effect {
            Effect::Dial { conn, addr } => {
                let target = addr
                    .strip_prefix("sim:")
                    .and_then(|s| s.parse::<NodeIdx>().ok())
                    .filter(|&t| t < self.nodes.len());
                let id = self.net.alloc_link();
                let label = self.label(i);
                self.trace.event(
                    self.now,
                    format_args!("{label} dial conn={conn} {addr} link={id}"),
                );
                self.net.links.insert(
                    id,
                    Link {
                        ends: [
                            End {
                                node: i,
                                creation,
                                conn: Some(conn),
                                open: true,
                            },
                            End {
                                node: target.unwrap_or(i),
                                creation: 0,
                                conn: None,
                                open: false,
                            },
                        ],
                        pipes: Default::default(),
                        target,
                        dialed_at: self.now,
                        broken: false,
                    },
                );
                self.net.by_conn.insert((i, creation, conn), (id, 0));
                let lat = self.latency();
                if target.is_some() {
                    self.schedule(self.now + lat, Event::Syn { link: id });
                } else {
                    self.schedule(self.now + lat, Event::DialTimeout { link: id });
                }
            }
            Effect::Send { conn, frame } => self.send(i, conn, frame),
            Effect::Flush => {
                // The runtime's flusher task wakes a moment later; changes
                // made meanwhile join the batch.
                let at = self.now + Duration::from_micros(self.rng.random_range(0..200));
                self.schedule(at, Event::Flush { node: i, creation });
            }
            Effect::Broadcast { conns, frame } => {
                for conn in conns {
                    self.send(i, conn, frame.clone());
                }
            }
            Effect::Close { conn, reason } => {
                let label = self.label(i);
                self.trace.event(
                    self.now,
                    format_args!("{label} close conn={conn} ({reason})"),
                );
                let Some((id, e)) = self.net.find(i, creation, conn) else {
                    self.contract(format!("{label} closed unknown connection {conn}"));
                    return;
                };
                let link = self.net.links.get_mut(&id).expect("indexed link exists");
                // Closing twice, or closing what the transport reported
                // closed, is harmless: a socket is closed once.
                if link.ends[e].open {
                    link.ends[e].open = false;
                    if !link.broken {
                        self.push_pipe(id, e, PipeMsg::Fin);
                    }
                }
                self.net.collect(id);
            }
            Effect::NodeUp {
                node,
                creation: peer_creation,
                conn,
                ..
            } => {
                let label = self.label(i);
                self.trace.event(
                    self.now,
                    format_args!("{label} node-up {node}.{peer_creation} conn={conn}"),
                );
                self.count("node-up");
                if let Some(b) = self.index_of(&node) {
                    self.ledger.session_up(i, b, peer_creation);
                }
            }
            Effect::NodeDown {
                node,
                creation: peer_creation,
                reason,
            } => {
                let label = self.label(i);
                self.trace.event(
                    self.now,
                    format_args!("{label} node-down {node}.{peer_creation} ({reason})"),
                );
                self.count(match reason {
                    DownReason::ConnectionClosed(_) => "node-down: connection closed",
                    DownReason::Timeout => "node-down: timeout",
                    DownReason::PeerLeft => "node-down: peer left",
                    DownReason::Disconnected => "node-down: disconnected",
                    DownReason::Restarted => "node-down: restarted",
                    DownReason::Blocked => "node-down: blocked",
                    DownReason::Shutdown => "node-down: shutdown",
                    DownReason::ProtocolError(_) => "node-down: protocol error",
                });
                if let Some(b) = self.index_of(&node) {
                    self.ledger.session_down(i, b, !reason.reconnects());
                }
            }
            Effect::Deliver { to, msg } => self.deliver(i, to, msg),
            Effect::Kill { serial, reason } => {
                let pid = self.nodes[i].pid(serial);
                self.trace
                    .event(self.now, format_args!("kill-effect {pid} ({reason})"));
                if !self.ledger.is_alive(&pid) {
                    let what = format!("Exit({reason}) to {pid}, which had ended");
                    self.ledger
                        .late_deliveries
                        .push(Stray { at: self.now, what });
                }
                self.ledger
                    .end(&pid, self.now, Ending::Exited(reason.clone()));
                self.ledger.reg.proc_gone(i, &pid);
                self.nodes[i].alive.remove(&serial);
            }
            Effect::ConnectDone { req, result } => {
                let label = self.label(i);
                self.trace.event(
                    self.now,
                    format_args!("{label} connect-done req={req} {result:?}"),
                );
            }
            other => {
                let label = self.label(i);
                self.trace
                    .event(self.now, format_args!("{label} effect {other:?}"));
                self.registry_effect(i, other);
            }
        }
    }

    fn contract(&mut self, what: String) {
        self.ledger.contract.push(Stray { at: self.now, what });
    }

    fn send(&mut self, i: NodeIdx, conn: ConnId, frame: Frame) {
        let creation = self.nodes[i].creation;
        let bytes = frame.encode();
        let kind = frame.kind();
        let label = self.label(i);
        self.trace.event(
            self.now,
            format_args!("{label} send conn={conn} {kind} {}B", bytes.len()),
        );
        self.trace.mix(&bytes);
        self.nodes[i].sent_frames += 1;
        self.nodes[i].sent_bytes += bytes.len() as u64;
        let t = self.traffic.entry(kind).or_default();
        t.frames += 1;
        t.bytes += bytes.len() as u64;
        let Some((id, e)) = self.net.find(i, creation, conn) else {
            self.contract(format!("{label} sent {kind} on unknown connection {conn}"));
            return;
        };
        let link = &self.net.links[&id];
        if !link.ends[e].open {
            self.contract(format!(
                "{label} sent {kind} on connection {conn} after it closed"
            ));
            return;
        }
        if link.broken || link.pipes[e].blackhole {
            return;
        }
        self.push_pipe(id, e, PipeMsg::Data(bytes, Box::new(frame)));
    }

    fn push_pipe(&mut self, id: LinkId, dir: usize, msg: PipeMsg) {
        let ready = self.now + self.latency();
        let link = self.net.links.get_mut(&id).expect("link exists");
        link.pipes[dir].queue.push_back((ready, msg));
        self.arm(id, dir);
    }

    /// Schedules the delivery of a pipe's head, unless one is scheduled or
    /// the direction is cut (the pipe stalls until the heal).
    fn arm(&mut self, id: LinkId, dir: usize) {
        let link = &self.net.links[&id];
        let (from, to) = (link.ends[dir].node, link.ends[1 - dir].node);
        let pipe = &link.pipes[dir];
        if pipe.armed || self.net.is_cut(from, to) {
            return;
        }
        let Some(&(ready, _)) = pipe.queue.front() else {
            return;
        };
        self.net.links.get_mut(&id).expect("link exists").pipes[dir].armed = true;
        self.schedule(ready, Event::Pipe { link: id, dir });
    }

    fn on_pipe(&mut self, id: LinkId, dir: usize) {
        let Some(link) = self.net.links.get_mut(&id) else {
            return;
        };
        link.pipes[dir].armed = false;
        if link.broken {
            link.pipes[dir].queue.clear();
            self.net.collect(id);
            return;
        }
        let (from, to) = (link.ends[dir].node, link.ends[1 - dir].node);
        if self.net.is_cut(from, to) {
            return;
        }
        let link = self.net.links.get_mut(&id).expect("link exists");
        let Some((_, msg)) = link.pipes[dir].queue.pop_front() else {
            return;
        };
        // The next frame leaves no earlier than this one arrived.
        if let Some(front) = link.pipes[dir].queue.front_mut() {
            front.0 = front.0.max(self.now);
        }
        self.arm(id, dir);
        self.arrive(id, 1 - dir, msg);
        self.net.collect(id);
    }

    /// `msg` reaches end `e` of link `id`.
    fn arrive(&mut self, id: LinkId, e: usize, msg: PipeMsg) {
        let end = self.net.links[&id].ends[e].clone();
        let node = &self.nodes[end.node];
        match &node.state {
            NodeState::Crashed => {
                // The host is down: the frame is lost, nobody answers.
            }
            NodeState::Running(_) if node.creation == end.creation => {
                let (Some(conn), true) = (end.conn, end.open) else {
                    return;
                };
                let label = self.label(end.node);
                match msg {
                    PipeMsg::Connected => {
                        self.trace
                            .event(self.now, format_args!("{label} dialed conn={conn}"));
                        self.input(end.node, |c, now| c.dialed(conn, now));
                    }
                    PipeMsg::Refused => {
                        self.trace
                            .event(self.now, format_args!("{label} dial-refused conn={conn}"));
                        self.count("dial refused");
                        self.end_closed(id, e);
                        self.input(end.node, |c, now| {
                            c.dial_failed(conn, "connection refused".into(), now)
                        });
                    }
                    PipeMsg::Data(bytes, sent) => {
                        self.trace.event(
                            self.now,
                            format_args!("{label} recv conn={conn} {}B", bytes.len()),
                        );
                        match Frame::decode(&bytes) {
                            Ok(frame) if frame == *sent => {
                                self.count("frames delivered");
                                self.frame_arrived(&frame);
                                self.input(end.node, |c, now| c.frame(conn, frame, now));
                            }
                            Ok(frame) => {
                                self.contract(format!(
                                    "codec: {} decoded as {}",
                                    sent.kind(),
                                    frame.kind()
                                ));
                            }
                            Err(err) => {
                                self.contract(format!(
                                    "codec: {} does not decode: {err}",
                                    sent.kind()
                                ));
                                self.end_closed(id, e);
                                self.input(end.node, |c, now| {
                                    c.closed(conn, format!("malformed frame: {err}"), now)
                                });
                            }
                        }
                    }
                    PipeMsg::Fin => {
                        self.trace
                            .event(self.now, format_args!("{label} closed conn={conn} (eof)"));
                        self.end_closed(id, e);
                        self.input(end.node, |c, now| {
                            c.closed(conn, "closed by peer".into(), now)
                        });
                    }
                }
            }
            _ => {
                // The host is up but this connection's process is gone (a
                // restart or a stop): its kernel answers with a reset.
                if !matches!(msg, PipeMsg::Fin) {
                    self.count("reset by restarted host");
                    self.reset(id, [1 - e].as_slice(), "reset by restarted host");
                }
            }
        }
    }

    fn end_closed(&mut self, id: LinkId, e: usize) {
        if let Some(link) = self.net.links.get_mut(&id) {
            link.ends[e].open = false;
        }
    }

    /// Breaks a connection: nothing more is delivered on it, and the
    /// listed ends are told it closed.
    pub(crate) fn reset(&mut self, id: LinkId, notify: &[usize], why: &str) {
        let Some(link) = self.net.links.get_mut(&id) else {
            return;
        };
        link.broken = true;
        link.pipes[0].queue.clear();
        link.pipes[1].queue.clear();
        self.trace
            .event(self.now, format_args!("reset link={id} ({why})"));
        for &e in notify {
            let lat = self.latency();
            self.schedule(self.now + lat, Event::Reset { link: id, end: e });
        }
    }

    fn on_reset(&mut self, id: LinkId, e: usize) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let end = link.ends[e].clone();
        let (Some(conn), true) = (end.conn, end.open) else {
            return;
        };
        if self.nodes[end.node].creation != end.creation || !self.nodes[end.node].is_running() {
            return;
        }
        self.end_closed(id, e);
        let label = self.label(end.node);
        self.trace
            .event(self.now, format_args!("{label} closed conn={conn} (reset)"));
        self.input(end.node, |c, now| {
            c.closed(conn, "connection reset by peer".into(), now)
        });
        self.net.collect(id);
    }

    fn on_syn(&mut self, id: LinkId) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let a = link.ends[0].node;
        let Some(b) = link.target else {
            return;
        };
        let dialed_at = link.dialed_at;
        let cut = self.net.is_cut(a, b) || self.net.is_cut(b, a);
        let creation = self.nodes[b].creation;
        match &self.nodes[b].state {
            _ if cut => self.schedule(dialed_at + CONNECT_TIMEOUT, Event::DialTimeout { link: id }),
            NodeState::Crashed => {
                self.schedule(dialed_at + CONNECT_TIMEOUT, Event::DialTimeout { link: id })
            }
            NodeState::Stopped => {
                self.net.links.get_mut(&id).expect("link exists").ends[1].creation = creation;
                self.push_pipe(id, 1, PipeMsg::Refused);
            }
            NodeState::Running(_) => {
                let peer_addr = format!("sim:{a}:{id}");
                let NodeState::Running(core) = &mut self.nodes[b].state else {
                    unreachable!()
                };
                let conn = core.accepted(peer_addr, self.now);
                let label = self.label(b);
                self.trace.event(
                    self.now,
                    format_args!("{label} accepted conn={conn} link={id}"),
                );
                let link = self.net.links.get_mut(&id).expect("link exists");
                link.ends[1] = End {
                    node: b,
                    creation,
                    conn: Some(conn),
                    open: true,
                };
                self.net.by_conn.insert((b, creation, conn), (id, 1));
                // The dialer learns it connected before any frame the
                // acceptor sends.
                self.push_pipe(id, 1, PipeMsg::Connected);
                self.drain(b);
            }
        }
    }

    fn on_dial_timeout(&mut self, id: LinkId) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let end = link.ends[0].clone();
        let (Some(conn), true) = (end.conn, end.open) else {
            return;
        };
        if self.nodes[end.node].creation != end.creation || !self.nodes[end.node].is_running() {
            return;
        }
        self.end_closed(id, 0);
        let label = self.label(end.node);
        self.trace
            .event(self.now, format_args!("{label} dial-timeout conn={conn}"));
        self.count("dial timed out");
        self.input(end.node, |c, now| {
            c.dial_failed(conn, "connect timed out".into(), now)
        });
        self.net.collect(id);
    }

    fn deliver(&mut self, i: NodeIdx, to: u64, msg: Message) {
        let pid = self.nodes[i].pid(to);
        let now = self.now;
        match &msg {
            Message::Data { from, payload } => {
                self.trace.event(
                    now,
                    format_args!("deliver {pid} data {}B from {from:?}", payload.len()),
                );
                self.count("deliver: data");
            }
            Message::Down {
                mref,
                pid: target,
                reason,
            } => {
                self.trace.event(
                    now,
                    format_args!("deliver {pid} down {} {target} ({reason})", mref.0),
                );
                self.count(match reason {
                    ExitReason::NoProc => "down: noproc",
                    ExitReason::NoConnection => "down: noconnection",
                    _ => "down: exit reason",
                });
            }
            Message::Exit { reason } => {
                self.trace
                    .event(now, format_args!("deliver {pid} exit ({reason})"));
                self.count("deliver: exit");
            }
            other => {
                self.trace
                    .event(now, format_args!("deliver {pid} {other:?}"));
                self.count("deliver: other");
            }
        }
        if !self.ledger.is_alive(&pid) {
            let what = format!("{msg:?} delivered to {pid}, which had ended");
            self.ledger.late_deliveries.push(Stray { at: now, what });
        }
        if let Message::Down {
            mref,
            pid: target,
            reason,
        } = msg
        {
            match self.ledger.monitors.get_mut(&(pid.clone(), mref)) {
                Some(m) if m.target == target => {
                    let after = m.demonitored;
                    m.downs.push((now, reason, after));
                }
                _ => {
                    let what = format!("Down {} for {target} to {pid}, which never set it", mref.0);
                    self.ledger.stray_downs.push(Stray { at: now, what });
                }
            }
        }
    }

    // ---- operations (workload and faults) ---------------------------------

    fn start_node(&mut self, i: NodeIdx) {
        let creation = self.nodes[i].creation + 1;
        let seed = self.rng.random::<u64>();
        let cfg = CoreConfig {
            name: self.nodes[i].name.clone(),
            creation,
            listen: Some(self.nodes[i].addr.clone()),
            cookie: Cookie::new("sim"),
            cluster: ClusterConfig {
                groups: self.groups[i].clone(),
                ..ClusterConfig::default()
            },
            names: crate::registry::names_config(),
        };
        let core = NodeCore::new(cfg, StdRng::seed_from_u64(seed), self.now);
        let n = &mut self.nodes[i];
        n.creation = creation;
        n.state = NodeState::Running(Box::new(core));
        n.alive.clear();
        n.timer_at = None;
        n.next_serial = 0;
        n.next_req = 0;
        let label = self.label(i);
        self.trace.event(self.now, format_args!("{label} start"));
        self.start_scopes(i);
        self.rearm_timer(i);
    }

    /// A fresh request id of node `i`'s current incarnation.
    pub(crate) fn bump_req(&mut self, i: NodeIdx) -> u64 {
        self.nodes[i].next_req += 1;
        self.nodes[i].next_req
    }

    /// A random number from the run's generator.
    pub(crate) fn rng_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// Node `a` connects to node `b`.
    pub(crate) fn connect(&mut self, a: NodeIdx, b: NodeIdx) {
        let addr = self.nodes[b].addr.clone();
        let n = &mut self.nodes[a];
        n.next_req += 1;
        let req = n.next_req;
        let label = self.label(a);
        self.trace.event(
            self.now,
            format_args!("op {label} connect {addr} req={req}"),
        );
        self.input(a, |c, now| c.connect(addr, Some(req), now));
    }

    /// Node `a` disconnects node `b` on purpose.
    pub(crate) fn disconnect(&mut self, a: NodeIdx, b: NodeIdx) {
        let name = self.nodes[b].name.clone();
        let label = self.label(a);
        self.trace
            .event(self.now, format_args!("op {label} disconnect {name}"));
        self.input(a, |c, now| {
            c.disconnect(&name, now);
        });
        // Even when they were not connected, `a` forgot `b` and will not
        // redial it.
        self.ledger.disconnected(a, b);
    }

    /// Spawns a process on node `i`.
    pub(crate) fn spawn(&mut self, i: NodeIdx) -> Option<Pid> {
        if !self.nodes[i].is_running() {
            return None;
        }
        let n = &mut self.nodes[i];
        n.next_serial += 1;
        let serial = n.next_serial;
        n.alive.insert(serial);
        let pid = n.pid(serial);
        self.ledger
            .procs
            .insert(pid.clone(), ProcRecord { ended: None });
        self.trace.event(self.now, format_args!("op spawn {pid}"));
        self.input(i, |c, _| c.spawned(serial));
        Some(pid)
    }

    /// Local process `serial` of node `i` ends.
    pub(crate) fn exit(&mut self, i: NodeIdx, serial: u64, reason: ExitReason) {
        let pid = self.nodes[i].pid(serial);
        self.trace
            .event(self.now, format_args!("op exit {pid} ({reason})"));
        self.ledger
            .end(&pid, self.now, Ending::Exited(reason.clone()));
        self.ledger.reg.proc_gone(i, &pid);
        self.nodes[i].alive.remove(&serial);
        self.input(i, |c, now| c.exited(serial, reason, now));
    }

    /// Node `i` kills `pid`.
    pub(crate) fn kill(&mut self, i: NodeIdx, pid: &Pid) {
        let label = self.label(i);
        self.trace
            .event(self.now, format_args!("op {label} kill {pid}"));
        let reason = ExitReason::Killed("sim".into());
        self.input(i, |c, now| c.kill(pid, reason, now));
    }

    /// Local process `watcher` of node `i` monitors `target`.
    pub(crate) fn monitor(&mut self, i: NodeIdx, watcher: u64, target: &Pid) {
        let NodeState::Running(core) = &mut self.nodes[i].state else {
            return;
        };
        let mref = core.new_ref();
        let w = self.nodes[i].pid(watcher);
        self.trace.event(
            self.now,
            format_args!("op monitor {w} -> {target} mref={}", mref.0),
        );
        // Recorded before the call: the core may answer with an
        // immediate `Down` (NoProc, NoConnection).
        self.ledger.monitors.insert(
            (w, mref),
            MonRecord {
                target: target.clone(),
                demonitored: false,
                downs: Vec::new(),
            },
        );
        self.input(i, |c, _| c.monitor(mref, watcher, target));
    }

    /// Local process `watcher` of node `i` cancels monitor `mref`.
    pub(crate) fn demonitor(&mut self, i: NodeIdx, watcher: u64, mref: MonitorRef) {
        let w = self.nodes[i].pid(watcher);
        self.trace
            .event(self.now, format_args!("op demonitor {w} mref={}", mref.0));
        if let Some(m) = self.ledger.monitors.get_mut(&(w, mref)) {
            m.demonitored = true;
        }
        self.input(i, |c, _| c.demonitor(watcher, mref));
    }

    /// Node `i` sends a message to `to`, from one of its processes or none.
    pub(crate) fn send_msg(&mut self, i: NodeIdx, from: Option<u64>, to: &Pid, size: usize) {
        let from = from.map(|s| self.nodes[i].pid(s));
        let label = self.label(i);
        self.trace
            .event(self.now, format_args!("op {label} send {to} {size}B"));
        let payload = Bytes::from(vec![0xa5; size]);
        self.input(i, |c, _| c.send(to, from, payload));
    }

    /// The host of node `i` goes down: the core and its processes vanish
    /// without a word.
    pub(crate) fn crash(&mut self, i: NodeIdx) {
        let label = self.label(i);
        self.trace
            .event(self.now, format_args!("fault crash {label}"));
        self.forget_node(i, NodeState::Crashed);
    }

    fn forget_node(&mut self, i: NodeIdx, state: NodeState) {
        let serials: Vec<u64> = self.nodes[i].alive.iter().copied().collect();
        for s in serials {
            let pid = self.nodes[i].pid(s);
            self.ledger.end(&pid, self.now, Ending::NodeGone);
        }
        let n = &mut self.nodes[i];
        n.alive.clear();
        n.state = state;
        n.timer_at = None;
        self.ledger.node_gone(i);
        let (name, creation) = (self.nodes[i].name.clone(), self.nodes[i].creation);
        self.ledger
            .reg
            .node_gone(i, |s| Pid::new(name.clone(), creation, s));
    }

    /// Node `i` stops gracefully: its processes exit, then it leaves.
    pub(crate) fn stop(&mut self, i: NodeIdx) {
        let label = self.label(i);
        self.trace
            .event(self.now, format_args!("fault stop {label}"));
        let serials: Vec<u64> = self.nodes[i].alive.iter().copied().collect();
        for s in serials {
            self.exit(i, s, ExitReason::Shutdown);
        }
        self.input(i, |c, now| c.shutdown(now));
        self.forget_node(i, NodeState::Stopped);
    }

    /// A crashed or stopped node starts again with a new creation and
    /// connects to `seed`, as a node configured with seed nodes would.
    pub(crate) fn restart(&mut self, i: NodeIdx, seed: Option<NodeIdx>) {
        let label = self.label(i);
        self.trace
            .event(self.now, format_args!("fault restart {label}"));
        self.start_node(i);
        if let Some(s) = seed {
            self.connect(i, s);
        }
    }

    /// Cuts `cuts` (directed node pairs) until healed.
    pub(crate) fn partition(&mut self, cuts: Vec<(NodeIdx, NodeIdx)>) {
        let desc: Vec<String> = cuts.iter().map(|(a, b)| format!("{a}>{b}")).collect();
        let id = self.net.partition(cuts);
        self.trace.event(
            self.now,
            format_args!("fault partition #{id} cuts {}", desc.join(" ")),
        );
    }

    /// Heals the active partition at `index`; stalled pipes flow again.
    pub(crate) fn heal(&mut self, index: usize) {
        let p = self.net.heal(index);
        self.trace
            .event(self.now, format_args!("fault heal #{}", p.id));
        self.rearm_all();
    }

    fn rearm_all(&mut self) {
        let stalled: Vec<(LinkId, usize)> = self
            .net
            .links
            .iter()
            .flat_map(|(&id, l)| {
                (0..2)
                    .filter(move |&d| !l.pipes[d].armed && !l.pipes[d].queue.is_empty())
                    .map(move |d| (id, d))
            })
            .collect();
        for (id, d) in stalled {
            // A stalled segment is retransmitted a little after the heal.
            let ready = self.now + self.latency();
            let link = self.net.links.get_mut(&id).expect("link exists");
            if let Some(front) = link.pipes[d].queue.front_mut() {
                front.0 = front.0.max(ready);
            }
            self.arm(id, d);
        }
    }

    /// Black-holes direction `dir` of link `id`.
    pub(crate) fn blackhole(&mut self, id: LinkId, dir: usize) {
        if let Some(link) = self.net.links.get_mut(&id) {
            link.pipes[dir].blackhole = true;
            link.pipes[dir].queue.clear();
            self.trace
                .event(self.now, format_args!("fault loss link={id} dir={dir}"));
        }
    }

    // ---- runs ---------------------------------------------------------------

    fn check(&mut self, invariants: &[Box<dyn Invariant>], eventual: bool) -> Option<Violation> {
        for inv in invariants {
            let r = if eventual {
                inv.always(self).and_then(|()| inv.eventually(self))
            } else {
                inv.always(self)
            };
            if let Err(message) = r {
                return Some(Violation {
                    invariant: inv.name(),
                    step: if eventual { None } else { self.step },
                    at: self.now,
                    message,
                });
            }
        }
        None
    }

    /// Runs the steps, the final heal and the settle period, checking the
    /// invariants; returns the first violation.
    pub fn run(&mut self) -> Option<Violation> {
        let invariants = invariants::all();
        for step in 0..self.cfg.steps {
            self.step = Some(step);
            crate::workload::step(self);
            self.record_clashes();
            if let Some(v) = self.check(&invariants, false) {
                return Some(v);
            }
        }
        self.step = None;
        self.settle();
        self.check(&invariants, true)
    }

    /// Heals every fault, brings every node back and lets the cluster settle.
    pub fn settle(&mut self) {
        self.trace.event(self.now, format_args!("final heal"));
        while !self.net.partitions.is_empty() {
            self.heal(0);
        }
        self.spikes = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                let seed = (0..self.nodes.len())
                    .find(|&j| j != i && self.nodes[j].is_running() && self.related(i, j));
                self.restart(i, seed);
            }
        }
        let until = self.now + self.cfg.settle;
        self.run_until(until);
        self.record_clashes();
        self.count_group_states();
    }

    /// Coverage: the own-group nodes listed under `sync_error` after
    /// settling, by why (the peer counts this node too, with another
    /// definition; or it does not count this node at all).
    fn count_group_states(&mut self) {
        let mut seen = Vec::new();
        for (o, node) in self.nodes.iter().enumerate() {
            let Some(core) = node.core() else { continue };
            if !core.groups().configured() {
                continue;
            }
            for x in core.groups().info(&[]).sync_error {
                if let Some(b) = self.index_of(&x) {
                    seen.push(if self.counts(b, o) {
                        "groups: sync_error, other definition"
                    } else {
                        "groups: sync_error, not counted back"
                    });
                }
            }
        }
        for what in seen {
            self.count(what);
        }
    }

    /// Whether the fault `kind` is enabled for this run.
    pub(crate) fn fault_enabled(&self, kind: FaultKind) -> bool {
        self.cfg.faults.has(kind)
    }
}
