//! A tiny deterministic network of sans-IO node cores for white-box tests:
//! frames go through `Frame::encode`/`decode` in FIFO order per connection,
//! and tests may inject frames a real peer would never send.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::pid::NodeName;
use cohort_proto::proto::Frame;
use cohort_proto::time::Time;
use cohort_proto::{ConnId, CoreConfig, Effect, NodeCore};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub struct CoreNet {
    pub nodes: Vec<NodeCore>,
    pub now: Time,
    /// (node, conn) → (peer node, peer conn).
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    queue: VecDeque<(usize, ConnId, Frame)>,
    /// Effects other than transport ones, per node, for inspection.
    pub seen: Vec<Vec<Effect>>,
    /// Every frame sent, with its sender, in order.
    pub sent: Vec<(usize, Frame)>,
    /// Directions `(from, to)` whose frames are held back (see [`CoreNet::hold`]).
    held: BTreeSet<(usize, usize)>,
    /// Frames held back, in the order they were sent.
    parked: VecDeque<(usize, ConnId, Frame)>,
}

impl CoreNet {
    pub fn new(names: &[&str]) -> Self {
        Self::with_names(names, Default::default())
    }

    /// Nodes with these name tables.
    pub fn with_names(names: &[&str], tables: cohort_proto::names::NamesConfig) -> Self {
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                NodeCore::new(
                    CoreConfig {
                        name: NodeName::new(n).unwrap(),
                        creation: 100 + i as u32,
                        listen: Some(n.to_string()),
                        cookie: Cookie::new("c"),
                        cluster: ClusterConfig::default(),
                        names: tables.clone(),
                    },
                    StdRng::seed_from_u64(i as u64),
                    Time::ZERO,
                )
            })
            .collect::<Vec<_>>();
        let n = nodes.len();
        CoreNet {
            nodes,
            now: Time::ZERO,
            links: BTreeMap::new(),
            queue: VecDeque::new(),
            seen: vec![Vec::new(); n],
            sent: Vec::new(),
            held: BTreeSet::new(),
            parked: VecDeque::new(),
        }
    }

    /// Carries out effects and delivers frames until nothing moves.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(e) = self.nodes[i].poll_effect() {
                    moved = true;
                    self.effect(i, e);
                }
                moved |= self.send_held(i);
            }
            if let Some((to, conn, frame)) = self.next_frame() {
                moved = true;
                let frame = Frame::decode(&frame.encode()).expect("own frames decode");
                self.nodes[to].frame(conn, frame, self.now);
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers at most one frame and carries out the effects (queueing
    /// the frames they send); false when nothing was left to deliver.
    pub fn step(&mut self) -> bool {
        let poll = |net: &mut CoreNet| {
            for i in 0..net.nodes.len() {
                while let Some(e) = net.nodes[i].poll_effect() {
                    net.effect(i, e);
                }
                net.send_held(i);
            }
        };
        poll(self);
        let Some((to, conn, frame)) = self.next_frame() else {
            return false;
        };
        let frame = Frame::decode(&frame.encode()).expect("own frames decode");
        self.nodes[to].frame(conn, frame, self.now);
        poll(self);
        true
    }

    /// The next frame to deliver; frames of held directions are parked.
    fn next_frame(&mut self) -> Option<(usize, ConnId, Frame)> {
        while let Some((to, conn, frame)) = self.queue.pop_front() {
            let from = self.links.get(&(to, conn)).map(|(src, _)| *src);
            if from.is_some_and(|f| self.held.contains(&(f, to))) {
                self.parked.push_back((to, conn, frame));
            } else {
                return Some((to, conn, frame));
            }
        }
        None
    }

    /// Holds back every frame node `from` sends node `to` (on a
    /// connection up now or later) until [`CoreNet::release`]: a slow
    /// link, not a broken one.
    pub fn hold(&mut self, from: usize, to: usize) {
        self.held.insert((from, to));
    }

    /// Lets the frames held back from `from` to `to` go, in order, and
    /// settles.
    pub fn release(&mut self, from: usize, to: usize) {
        self.held.remove(&(from, to));
        let links = &self.links;
        let (go, keep): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(t, c, _)| {
                *t == to && links.get(&(*t, *c)).map(|(src, _)| *src) == Some(from)
            });
        self.parked = keep;
        for f in go.into_iter().rev() {
            self.queue.push_front(f);
        }
        self.settle();
    }

    /// Drops the frames held back from `from` to `to` (lost on the way);
    /// the direction stays held. Returns how many were dropped.
    pub fn discard(&mut self, from: usize, to: usize) -> usize {
        let links = &self.links;
        let before = self.parked.len();
        self.parked.retain(|(t, c, _)| {
            !(*t == to && links.get(&(*t, *c)).map(|(src, _)| *src) == Some(from))
        });
        before - self.parked.len()
    }

    /// Sends what node `i` holds at once, as if its timer came due
    /// without time passing; true when it held something.
    fn send_held(&mut self, i: usize) -> bool {
        if !self.nodes[i].holds() {
            return false;
        }
        self.nodes[i].flush(self.now);
        while let Some(e) = self.nodes[i].poll_effect() {
            self.effect(i, e);
        }
        true
    }

    fn effect(&mut self, i: usize, e: Effect) {
        match e {
            Effect::Dial { conn, addr } => {
                // An address no node has (a hostile `Peers` frame may name
                // one) fails like a refused TCP connect.
                let Some(j) = self.nodes.iter().position(|n| n.name().as_str() == addr) else {
                    self.nodes[i].dial_failed(conn, "no such address".into(), self.now);
                    return;
                };
                let me = self.nodes[i].name().to_string();
                let peer_conn = self.nodes[j].accepted(me, self.now);
                self.links.insert((i, conn), (j, peer_conn));
                self.links.insert((j, peer_conn), (i, conn));
                self.nodes[i].dialed(conn, self.now);
            }
            Effect::Send { conn, frame } => {
                if let Some(&(j, pc)) = self.links.get(&(i, conn)) {
                    self.sent.push((i, frame.clone()));
                    self.queue.push_back((j, pc, frame));
                }
            }
            Effect::Broadcast { conns, frame } => {
                for conn in conns {
                    self.effect(
                        i,
                        Effect::Send {
                            conn,
                            frame: frame.clone(),
                        },
                    );
                }
            }
            Effect::Close { conn, .. } => {
                if let Some((j, pc)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, pc));
                    self.nodes[j].closed(pc, "closed by peer".into(), self.now);
                }
            }
            other => self.seen[i].push(other),
        }
    }

    /// Connects node `i` to node `j` and settles.
    pub fn connect(&mut self, i: usize, j: usize) {
        let addr = self.nodes[j].name().to_string();
        self.nodes[i].connect(addr, None, self.now);
        self.settle();
    }

    /// Delivers `frame` to node `to` as if node `from` had sent it.
    pub fn inject(&mut self, from: usize, to: usize, frame: Frame) {
        let conn = self
            .links
            .iter()
            .find(|((n, _), (p, _))| *n == to && *p == from)
            .map(|((_, c), _)| *c)
            .expect("connected");
        self.nodes[to].frame(conn, frame, self.now);
        self.settle();
    }

    /// Frames node `from` sends next are dropped instead of delivered.
    pub fn drop_queued_from(&mut self, from: usize) -> usize {
        for i in 0..self.nodes.len() {
            while let Some(e) = self.nodes[i].poll_effect() {
                self.effect(i, e);
            }
            self.send_held(i);
        }
        let before = self.queue.len();
        let links = self.links.clone();
        self.queue
            .retain(|(to, conn, _)| links.get(&(*to, *conn)).map(|(src, _)| *src) != Some(from));
        before - self.queue.len()
    }

    /// Lets time pass by `ms` milliseconds, running timers.
    pub fn advance(&mut self, ms: u64) {
        self.now = Time(self.now.0 + ms * 1000);
        for n in &mut self.nodes {
            n.timeout(self.now);
        }
        self.settle();
    }
}
