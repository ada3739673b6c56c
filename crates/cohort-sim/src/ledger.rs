//! What the simulator saw happen: processes, monitors, sessions and the
//! driver-contract slips of the cores. The ledger only records facts;
//! the files under `invariants/` judge them.

use std::collections::{BTreeMap, BTreeSet};

use cohort::core::pid::{ExitReason, Pid};
use cohort::core::process::MonitorRef;
use cohort::core::time::Time;

use crate::net::NodeIdx;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited (or was killed) with a reason its monitors may see.
    Exited(ExitReason),
    /// Its node crashed or stopped; remote monitors see `NoConnection`.
    NodeGone,
}

/// One process of one node incarnation.
#[derive(Debug, Clone)]
pub struct ProcRecord {
    /// When it ended, and how.
    pub ended: Option<(Time, Ending)>,
}

/// One monitor, keyed by watcher and reference.
#[derive(Debug, Clone)]
pub struct MonRecord {
    /// The watched process.
    pub target: Pid,
    /// Set when the watcher demonitored.
    pub demonitored: bool,
    /// Every `Down` delivered for it, with whether it came after the demonitor.
    pub downs: Vec<(Time, ExitReason, bool)>,
}

/// A message that reached a mailbox it should not have.
#[derive(Debug, Clone)]
pub struct Stray {
    /// When.
    pub at: Time,
    /// What, in words.
    pub what: String,
}

/// Everything the simulator recorded about a run.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every process ever spawned.
    pub procs: BTreeMap<Pid, ProcRecord>,
    /// Every monitor ever set, by `(watcher, mref)`.
    pub monitors: BTreeMap<(Pid, MonitorRef), MonRecord>,
    /// Deliveries (data, `Down`, `Exit`) to processes that had ended.
    pub late_deliveries: Vec<Stray>,
    /// `Down`s for monitors the watcher never set (or that belong to
    /// another watcher).
    pub stray_downs: Vec<Stray>,
    /// Up sessions as the cores announced them: `(a, b)` → creation of `b`
    /// in `a`'s `NodeUp`.
    pub sessions: BTreeMap<(NodeIdx, NodeIdx), u32>,
    /// `(a, b)`: the current incarnation of `a` had a session with `b` and
    /// was not told to forget it since (a disconnect either way, or `b`
    /// leaving gracefully), so `a` keeps redialing `b` until it is back.
    pub remembers: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Pairs one of which disconnected the other on purpose; the mesh may
    /// leave them apart.
    pub parted: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Effects a core asked for that break the driver contract (a send on
    /// a connection it closed, a frame that does not survive the codec).
    pub contract: Vec<Stray>,
}

/// The unordered pair `{a, b}`.
pub fn pair(a: NodeIdx, b: NodeIdx) -> (NodeIdx, NodeIdx) {
    (a.min(b), a.max(b))
}

impl Ledger {
    /// Whether `pid` lives (spawned and not ended).
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.procs.get(pid).is_some_and(|p| p.ended.is_none())
    }

    /// Records a process end (no-op if it had ended already).
    pub fn end(&mut self, pid: &Pid, at: Time, how: Ending) {
        if let Some(p) = self.procs.get_mut(pid) {
            if p.ended.is_none() {
                p.ended = Some((at, how));
            }
        }
    }

    /// A session between `a` and `b` came up on `a` (b has `creation`).
    pub fn session_up(&mut self, a: NodeIdx, b: NodeIdx, creation: u32) {
        self.sessions.insert((a, b), creation);
        self.remembers.insert((a, b));
        self.parted.remove(&pair(a, b));
    }

    /// `a` announced the session with `b` down; `forget` when the reason
    /// means `a` will not reconnect on its own.
    pub fn session_down(&mut self, a: NodeIdx, b: NodeIdx, forget: bool) {
        self.sessions.remove(&(a, b));
        if forget {
            self.remembers.remove(&(a, b));
        }
    }

    /// The incarnation of `a` is gone (crash or stop): so is everything it
    /// knew.
    pub fn node_gone(&mut self, a: NodeIdx) {
        self.sessions.retain(|&(x, _), _| x != a);
        self.remembers.retain(|&(x, _)| x != a);
    }

    /// `a` disconnected `b` on purpose.
    pub fn disconnected(&mut self, a: NodeIdx, b: NodeIdx) {
        self.remembers.remove(&(a, b));
        self.parted.insert(pair(a, b));
    }
}
