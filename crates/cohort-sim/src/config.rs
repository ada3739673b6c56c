//! What one simulation run does: seed, size, length and the faults it may inject.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A kind of fault the simulator may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Cut both directions between two sides of the cluster.
    Partition,
    /// Cut one direction only: one side hears the other, not back.
    OneWay,
    /// Allow a new partition while others are active (they stack; healing
    /// one leaves the others in place).
    Overlap,
    /// Reset one established connection: both sides see it close.
    Reset,
    /// Black-hole one direction of one connection: every later frame on it
    /// vanishes silently (TCP cannot skip a frame, so loss on a live
    /// connection is a silent partition of that connection).
    Loss,
    /// Latency spikes: a frame now and then waits up to seconds, stalling
    /// the frames behind it on the same connection.
    Delay,
    /// Crash a node: its state is gone and it says nothing; peers notice by
    /// timeout, or by a reset once the host is back.
    Crash,
    /// Stop a node gracefully (`shutdown`).
    Stop,
    /// Restart a crashed or stopped node with a new creation.
    Restart,
}

impl FaultKind {
    /// Every fault kind, in a fixed order.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Overlap,
        FaultKind::Reset,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Crash,
        FaultKind::Stop,
        FaultKind::Restart,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "oneway",
            FaultKind::Overlap => "overlap",
            FaultKind::Reset => "reset",
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Crash => "crash",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of enabled fault kinds, parsed from `all`, `none` or a
/// comma-separated list such as `partition,crash,restart`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultSet(BTreeSet<FaultKind>);

impl FaultSet {
    /// Every fault kind.
    pub fn all() -> Self {
        FaultSet(FaultKind::ALL.into_iter().collect())
    }

    /// No faults: the workload only.
    pub fn none() -> Self {
        FaultSet::default()
    }

    /// Whether `kind` is enabled.
    pub fn has(&self, kind: FaultKind) -> bool {
        self.0.contains(&kind)
    }

    /// The enabled kinds, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = FaultKind> + '_ {
        self.0.iter().copied()
    }

    /// Whether no fault is enabled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for FaultSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => set.extend(FaultKind::ALL),
                "none" => {}
                _ => {
                    let kind = FaultKind::ALL
                        .into_iter()
                        .find(|k| k.name() == word)
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                FaultKind::ALL.iter().map(|k| k.name()).collect();
                            format!(
                                "unknown fault kind {word:?}; expected all, none or some of {}",
                                names.join(",")
                            )
                        })?;
                    set.insert(kind);
                }
            }
        }
        Ok(FaultSet(set))
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|k| k.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// How the global-group definitions of a [`SimConfig::groups`] run differ
/// between nodes. Whatever differs, every node of a group in the base
/// configuration (`g1` normal, the first half; `g2` hidden, the rest) that
/// shares its definition with others syncs with them; a node whose
/// definition is its own syncs with nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mismatch {
    /// Drawn from the seed: `none`, `extra` or `missing`, a third each.
    #[default]
    Seeded,
    /// Every node has the base configuration.
    None,
    /// The last node lists itself in `g1` (and not in `g2`), while every
    /// other node lists it in `g2`: it counts the `g1` nodes, which do
    /// not count it, and the `g2` nodes count it, which it does not count
    /// (the `e`/`a`/`b` case of a definition check from a node outside
    /// the receiver's group).
    Extra,
    /// Node 0 leaves node 1 out of its `g1` (node 1 is in no group of its
    /// configuration): node 1 counts node 0, which does not count it, and
    /// node 0 and the other `g1` nodes count each other with different
    /// definitions. Needs three nodes; with fewer it is `extra`.
    Missing,
}

impl Mismatch {
    /// Every choice, in a fixed order.
    pub const ALL: [Mismatch; 4] = [
        Mismatch::Seeded,
        Mismatch::None,
        Mismatch::Extra,
        Mismatch::Missing,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mismatch::Seeded => "seeded",
            Mismatch::None => "none",
            Mismatch::Extra => "extra",
            Mismatch::Missing => "missing",
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mismatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Mismatch::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown mismatch {s:?}; expected seeded, none, extra or missing")
            })
    }
}

/// Settings of one simulation run. Everything that varies between runs of
/// the same configuration comes from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes; `None` draws 3 to 7 from the seed.
    pub nodes: Option<usize>,
    /// Number of workload/fault steps before the final heal.
    pub steps: usize,
    /// Fault kinds that may be injected.
    pub faults: FaultSet,
    /// Keep the event trace as text (the hash is computed unless
    /// `hash_trace` is off).
    pub record_trace: bool,
    /// Hash the event trace (on by default; measurements, which compare no
    /// traces, turn it off: formatting every event is a large share of a
    /// big cluster's run time).
    pub hash_trace: bool,
    /// How long to run after the final heal before the eventual invariants
    /// are checked. Long enough for a timeout, a failed dial, the largest
    /// reconnect backoff and a handshake timeout in a row.
    pub settle: Duration,
    /// Let processes monitor themselves. On by default; it was off while
    /// the core delivered the `Down` of a self-monitor to the process that
    /// had just exited (a finding of this simulator, fixed since: see
    /// `tests/regressions.rs`), which kept that part of the workload out
    /// of every campaign.
    pub self_monitors: bool,
    /// Run with a global-group configuration: the first half of the nodes
    /// in group `g1` (normal), the rest in `g2` (hidden), one node's
    /// definition differing as `mismatch` says. Off: no configuration, one
    /// implicit group.
    pub groups: bool,
    /// Draw `groups` per seed instead (odd seeds run with the global-group
    /// configuration, even seeds without): how the default campaign
    /// covers both workloads.
    pub groups_per_seed: bool,
    /// With `groups`: whose definitions deliberately differ.
    pub mismatch: Mismatch,
    /// With `groups`: split the nodes into this many global groups of
    /// equal size instead (even-numbered groups normal, odd ones hidden;
    /// every definition the same). 0: the two-group layout above.
    pub group_count: usize,
    /// Name operations in the workload (on by default; runs with names
    /// replay exactly since the name service's maps hash with a fixed
    /// hasher, see `tests/regressions.rs`).
    pub names: bool,
}

impl SimConfig {
    /// This configuration for `seed`, with what is drawn per seed applied.
    pub fn for_seed(&self, seed: u64) -> Self {
        let mut cfg = self.clone();
        cfg.seed = seed;
        if cfg.groups_per_seed {
            cfg.groups = seed % 2 == 1;
            cfg.groups_per_seed = false;
        }
        cfg
    }

    /// A configuration with the defaults used by the test suite.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: None,
            steps: 200,
            faults: FaultSet::all(),
            record_trace: false,
            hash_trace: true,
            settle: Duration::from_secs(40),
            self_monitors: true,
            groups: false,
            groups_per_seed: false,
            group_count: 0,
            mismatch: Mismatch::Seeded,
            names: true,
        }
    }
}
