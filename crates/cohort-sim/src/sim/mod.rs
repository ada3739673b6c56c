//! The simulation: N node cores on one thread, driven by one seed.
//!
//! [`Sim`] holds the nodes, the network, the ledger and the trace, and runs
//! the event loop; each concept it carries out has its own file:
//! - `node`: a simulated node and whether it runs;
//! - `scheduler`: simulated time and the event queue;
//! - `driver`: feeding inputs to a core and carrying out its effects;
//! - `tcp`: the TCP model of connections (dials, pipes, resets);
//! - `faults`: crashes, stops, restarts, partitions, loss and delays;
//! - `ops`: the process and cluster operations the workload calls;
//! - `pg`, `names`, `global_group`: the registry operations the workload
//!   calls, and the bookkeeping of what the cores answer.
//!
//! The only randomness is one `StdRng` seeded from the run's seed; node
//! cores get generators seeded from it.

mod driver;
mod faults;
mod global_group;
mod names;
mod node;
mod ops;
mod pg;
mod scheduler;
mod tcp;

use std::collections::BTreeMap;

use cohort_proto::global_group::GlobalGroupsConfig;
use cohort_proto::pid::NodeName;
use cohort_proto::time::Time;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::scheduler::{Event, Scheduler};
use crate::config::{Mismatch, SimConfig};
use crate::ledger::{Ledger, Stray};
use crate::net::{Net, NodeIdx};
use crate::registry;
use crate::trace::Trace;

pub use self::node::{NodeState, SimNode};
pub use self::tcp::CONNECT_TIMEOUT;

/// Frames and bytes of one frame kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames sent.
    pub frames: u64,
    /// Encoded bytes sent.
    pub bytes: u64,
}

/// Values by a static name, for the few names the driver counts under
/// (frame kinds, events): found by the name's address first, which is
/// what a count per frame costs, instead of comparing strings in an
/// ordered map.
#[derive(Debug, Default)]
struct Tally<T> {
    entries: Vec<(&'static str, T)>,
}

impl<T: Default + Copy> Tally<T> {
    /// The value kept under `name`, made on first use.
    fn entry(&mut self, name: &'static str) -> &mut T {
        let same =
            |k: &&'static str| std::ptr::eq(k.as_ptr(), name.as_ptr()) && k.len() == name.len();
        let at = match self.entries.iter().position(|(k, _)| same(k)) {
            Some(i) => i,
            // The same text may sit at another address (another crate's
            // copy of the literal).
            None => match self.entries.iter().position(|(k, _)| *k == name) {
                Some(i) => i,
                None => {
                    self.entries.push((name, T::default()));
                    self.entries.len() - 1
                }
            },
        };
        &mut self.entries[at].1
    }

    /// Every value by name, in name order.
    fn to_map(&self) -> BTreeMap<&'static str, T> {
        let mut map = BTreeMap::new();
        for &(k, v) in &self.entries {
            map.insert(k, v);
        }
        map
    }
}

/// Node `.0` with creation `.1` as the trace names it (`n3.2`), formatted
/// only when the trace is written.
#[derive(Debug, Clone, Copy)]
struct Label(NodeIdx, u32);

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}.{}", self.0, self.1)
    }
}

/// A deterministic simulation of a cluster of node cores.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    /// The run's only source of randomness.
    pub(crate) rng: StdRng,
    sched: Scheduler,
    /// The nodes, by index.
    pub(crate) nodes: Vec<SimNode>,
    /// How many of them run.
    running: usize,
    /// The network.
    pub(crate) net: Net,
    /// What happened.
    pub(crate) ledger: Ledger,
    trace: Trace,
    /// Latency spikes are on (the `delay` fault, until the final heal).
    spikes: bool,
    traffic: Tally<Traffic>,
    /// The encoding of the frame being sent (reused: no allocation per frame).
    wire: Vec<u8>,
    timer_streak: (Time, u32),
    /// Problems the driver found outside the cores' effects (a timer livelock).
    driver_faults: Vec<Stray>,
    counters: Tally<u64>,
    /// The global-group configuration of each node (empty: none).
    groups: Vec<GlobalGroupsConfig>,
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
            trace: Trace::new(cfg.record_trace, cfg.hash_trace),
            spikes: false,
            cfg,
            rng,
            sched: Scheduler::new(),
            nodes: Vec::with_capacity(n),
            running: 0,
            net: Net::default(),
            ledger: Ledger::default(),
            traffic: Tally::default(),
            wire: Vec::new(),
            timer_streak: (Time::ZERO, 0),
            driver_faults: Vec::new(),
            counters: Tally::default(),
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
        sim.groups = if sim.cfg.groups && sim.cfg.group_count > 0 {
            sim.mismatch = Mismatch::None;
            registry::split_groups(n, sim.cfg.group_count)
        } else {
            registry::groups_configs(n, sim.cfg.groups, sim.mismatch)
        };
        if sim.cfg.groups {
            sim.group_ids = registry::group_ids(&sim.groups);
        }
        for i in 0..n {
            sim.nodes.push(SimNode::new(i));
        }
        // Started once all exist: the global-group configuration lists them all.
        for i in 0..n {
            sim.start_node(i);
        }
        sim.trace.event(
            sim.now(),
            format_args!("start seed={} nodes={n}", sim.cfg.seed),
        );
        if sim.cfg.groups {
            let m = sim.mismatch;
            let ids = format!("{:?}", sim.group_ids);
            sim.trace.event(
                sim.now(),
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

    // ---- inspection -----------------------------------------------------

    /// The configuration of this run.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Simulated time.
    pub fn now(&self) -> Time {
        self.sched.now()
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
    pub fn traffic(&self) -> BTreeMap<&'static str, Traffic> {
        self.traffic.to_map()
    }

    /// How often things of interest happened (faults by kind, sessions up
    /// and down, `Down`s by reason...): the coverage of a run.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        self.counters.to_map()
    }

    /// Counts one occurrence of `what`.
    pub(crate) fn count(&mut self, what: &'static str) {
        *self.counters.entry(what) += 1;
    }

    /// Problems the driver found itself (not through an effect).
    pub fn driver_faults(&self) -> &[Stray] {
        &self.driver_faults
    }

    /// Whether every pair of running nodes has a session up, both ways,
    /// with each other's current creation.
    pub fn full_mesh(&self) -> bool {
        // Cheap count first (it runs after every event while a mesh
        // forms); the exact check only when it can succeed.
        if !self.cfg.groups {
            let up = self.running;
            debug_assert_eq!(up, self.nodes.iter().filter(|n| n.is_running()).count());
            if self.ledger.sessions.len() < up * up.saturating_sub(1) {
                return false;
            }
        }
        let running: Vec<NodeIdx> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        running.iter().all(|&a| {
            running.iter().all(|&b| {
                a == b
                    || !self.same_group(a, b)
                    || self.ledger.sessions.get(&(a, b)) == Some(&self.nodes[b].creation)
            })
        })
    }

    /// Node `i` as the trace names it: index and creation.
    fn label(&self, i: NodeIdx) -> Label {
        Label(i, self.nodes[i].creation)
    }

    // ---- the event loop ---------------------------------------------------

    /// Runs every event due up to `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some(ev) = self.sched.next_due(until) {
            self.handle(ev);
        }
        self.sched.advance_to(until);
    }

    /// Runs events until `until`, or until `done` holds after an event.
    /// Returns the time `done` first held.
    pub fn run_until_or(&mut self, until: Time, done: impl Fn(&Sim) -> bool) -> Option<Time> {
        if done(self) {
            return Some(self.now());
        }
        while let Some(ev) = self.sched.next_due(until) {
            self.handle(ev);
            if done(self) {
                return Some(self.now());
            }
        }
        self.sched.advance_to(until);
        None
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Timer { node, creation } => self.on_timer(node, creation),
            Event::Syn { link } => self.on_syn(link),
            Event::DialTimeout { link } => self.on_dial_timeout(link),
            Event::Pipe { link, dir } => self.on_pipe(link, dir),
            Event::Reset { link, end } => self.on_reset(link, end),
        }
    }

    /// Heals every fault, brings every node back and lets the cluster settle.
    pub fn settle(&mut self) {
        self.trace.event(self.now(), format_args!("final heal"));
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
        let until = self.now() + self.cfg.settle;
        self.run_until(until);
        self.record_clashes();
        self.count_group_states();
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::Tally;

    #[test]
    fn tally_counts_a_name_once_wherever_its_text_lives() {
        let mut t: Tally<u64> = Tally::default();
        *t.entry("tick") += 1;
        *t.entry("pg") += 2;
        // The same text at another address is the same name.
        let copy: &'static str = Box::leak(String::from("tick").into_boxed_str());
        *t.entry(copy) += 3;
        *t.entry("tick") += 1;
        let map = t.to_map();
        assert_eq!(map.len(), 2);
        assert_eq!(map["tick"], 5);
        assert_eq!(map["pg"], 2);
    }
}
