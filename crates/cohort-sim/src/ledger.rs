//! What the simulator saw happen: processes, monitors, sessions and the
//! driver-contract slips of the cores. The ledger only records facts;
//! the files under `invariants/` judge them.

use std::collections::{BTreeMap, BTreeSet};

use cohort_proto::names::LossPolicy;
use cohort_proto::pid::{ExitReason, Pid};
use cohort_proto::process::MonitorRef;
use cohort_proto::time::Time;

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
    /// Process groups, names and global groups.
    pub reg: RegistryLedger,
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
        // Parted no more once both sides have the session up: one side's
        // late `NodeUp` for the very session the other just ended on
        // purpose (its handshake finished as the goodbye was on its way)
        // does not undo the disconnect.
        if self.sessions.contains_key(&(b, a)) {
            self.parted.remove(&pair(a, b));
        }
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

/// Multiset of pids: pid → number of memberships.
pub type PidCounts = BTreeMap<Pid, u32>;

/// A process-group monitor subscription of one node incarnation.
#[derive(Debug, Clone)]
pub struct PgMonRecord {
    /// The watching node.
    pub node: NodeIdx,
    /// Its incarnation.
    pub creation: u32,
    /// The scope.
    pub scope: String,
    /// The group, or the whole scope.
    pub group: Option<String>,
    /// Snapshot plus every event applied: what the subscriber believes.
    pub state: BTreeMap<String, PidCounts>,
    /// Per (group, pid): index into the origin's history of counts the
    /// subscriber has reached.
    pub pos: BTreeMap<(String, Pid), usize>,
    /// Events seen.
    pub events: u64,
}

/// A name operation issued by the workload.
#[derive(Debug, Clone)]
pub struct NameOp {
    /// The table.
    pub table: String,
    /// The name.
    pub name: String,
    /// The registering pid (register / re_register).
    pub pid: Option<Pid>,
    /// `re_register`.
    pub replace: bool,
    /// When it was issued.
    pub started: Time,
    /// For an unregister: the claim the caller saw as the holder's (pid,
    /// stamp), the one an `Ok` says was retracted.
    pub target: Option<(Pid, u64)>,
}

/// An acknowledged locked-mode registration, with what the other nodes of
/// its global group showed at the moment of the acknowledgement.
#[derive(Debug, Clone)]
pub struct LockedAck {
    /// The table.
    pub table: String,
    /// The name.
    pub name: String,
    /// The registered pid.
    pub pid: Pid,
    /// The node that registered it.
    pub node: NodeIdx,
    /// Whether it was a `re_register` (it takes held names on purpose).
    pub replace: bool,
    /// When the registration started.
    pub started: Time,
    /// When it was acknowledged.
    pub acked: Time,
    /// Every other node of the registering node's global group synced
    /// with it both ways at the acknowledgement, in node order.
    pub witnesses: Vec<Witness>,
    /// Earlier acknowledged registrations of the same name by other pids
    /// whose holders still held it at the acknowledgement (alive, not
    /// retracted at their origin since they started).
    pub rivals: Vec<Rival>,
}

impl LockedAck {
    /// What node `j` showed at the acknowledgement, if it was a witness.
    pub fn witness(&self, j: NodeIdx) -> Option<&Witness> {
        self.witnesses.iter().find(|w| w.node == j)
    }
}

/// What one node synced with a registering node showed when a locked
/// registration was acknowledged.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The node.
    pub node: NodeIdx,
    /// Since when the registering node counted it as synced, and since
    /// when it counted the registering node.
    pub synced_since: (Time, Time),
    /// Whether the registering node's session with this node's current
    /// incarnation was still up (effects of one input are recorded in
    /// order, so the core may already have ended it).
    pub session_up: bool,
    /// Whether it held the claim or had it staged under the name lock
    /// (`None`: it was not running).
    pub holds: Option<bool>,
}

/// An earlier acknowledged registration of the same name that still held
/// it when another one was acknowledged.
#[derive(Debug, Clone)]
pub struct Rival {
    /// Its pid.
    pub pid: Pid,
    /// The node that registered it.
    pub node: NodeIdx,
    /// When it was acknowledged.
    pub acked: Time,
}

/// One `ConflictResolved` a node reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClashReport {
    /// The reporting node and its creation.
    pub node: NodeIdx,
    /// Its creation then.
    pub creation: u32,
    /// When.
    pub at: Time,
    /// The table.
    pub table: String,
    /// The name.
    pub name: String,
    /// The surviving holder.
    pub winner: Option<Pid>,
    /// The losing process.
    pub loser: Pid,
    /// What its node did to it.
    pub action: LossPolicy,
}

impl ClashReport {
    /// Whether both tell of the same clash the same way.
    pub fn same(&self, o: &ClashReport) -> bool {
        (
            &self.table,
            &self.name,
            &self.loser,
            &self.winner,
            self.action,
        ) == (&o.table, &o.name, &o.loser, &o.winner, o.action)
    }
}

/// What the simulator recorded about process groups, names and global groups.
#[derive(Debug, Default)]
pub struct RegistryLedger {
    /// Local memberships of each node's current incarnation, as the
    /// workload made them: (node, scope) → group → serial → count.
    pub pg_local: BTreeMap<(NodeIdx, String), BTreeMap<String, BTreeMap<u64, u32>>>,
    /// Every origin's sequence of membership counts per (scope, group, pid),
    /// starting at 0.
    pub pg_hist: BTreeMap<(String, String, Pid), Vec<u32>>,
    /// Monitor subscriptions of running incarnations, by (node, creation, sub).
    pub pg_mons: BTreeMap<(NodeIdx, u32, u64), PgMonRecord>,
    /// Monitor events that contradict the origin's history.
    pub pg_anomalies: Vec<Stray>,
    /// Sessions taking part in names and groups ("synced"), as announced:
    /// (a, b) → since when `a` counts `b` as a peer.
    pub synced: BTreeMap<(NodeIdx, NodeIdx), Time>,
    /// Name operations in flight, by (node, creation, op).
    pub name_ops: BTreeMap<(NodeIdx, u32, u64), NameOp>,
    /// Acknowledged locked registrations, in order, with what the other
    /// nodes showed then (judged by `locked_once` and `locked_held`).
    pub locked_acks: Vec<LockedAck>,
    /// Legitimate retractions at the origin (unregister, exit, replace):
    /// (table, name, pid) → when.
    pub retracted: BTreeMap<(String, String, Pid), Time>,
    /// Last time the workload touched a name (op issued or answered, or
    /// a forwarded unregister reaching the holder's node): (table, name)
    /// → when.
    pub name_touched: BTreeMap<(String, String), Time>,
    /// The rank winner of the latest clash seen per (global group, table,
    /// name): when, and the winner's pid.
    pub clashes: BTreeMap<(usize, String, String), (Time, Pid)>,
    /// Cross-group queries in flight: (node, creation, req) → asked node.
    pub asks: BTreeMap<(NodeIdx, u32, u64), NodeIdx>,
    /// Answers that reported a name owned outside the answering group.
    pub crossings: Vec<Stray>,
    /// Name replies, by outcome, for coverage.
    pub name_results: BTreeMap<String, u64>,
    /// Every `ConflictResolved` reported, in order (judged by
    /// `conflict_told_everywhere`).
    pub clash_reports: Vec<ClashReport>,
    /// Unregisters answered `Ok` while the holder's node still held the
    /// claim the caller saw (judged by `unregister_applied`).
    pub unapplied: Vec<String>,
}

impl RegistryLedger {
    /// Appends `count` to the history of (scope, group, pid) if it changed.
    pub fn hist(&mut self, scope: &str, group: &str, pid: &Pid, count: u32) {
        let h = self
            .pg_hist
            .entry((scope.to_string(), group.to_string(), pid.clone()))
            .or_insert_with(|| vec![0]);
        if h.last() != Some(&count) {
            h.push(count);
        }
    }

    /// The incarnation of node `a` is gone: its memberships end, its
    /// monitors stop.
    pub fn node_gone(&mut self, a: NodeIdx, pid_of: impl Fn(u64) -> Pid) {
        let keys: Vec<(NodeIdx, String)> = self
            .pg_local
            .keys()
            .filter(|(n, _)| *n == a)
            .cloned()
            .collect();
        for k in keys {
            let groups = self.pg_local.remove(&k).unwrap_or_default();
            for (g, members) in groups {
                for s in members.keys() {
                    self.hist(&k.1, &g, &pid_of(*s), 0);
                }
            }
        }
        self.pg_mons.retain(|(n, _, _), _| *n != a);
        self.synced.retain(|(x, _), _| *x != a);
    }

    /// Local process `serial` of node `a` ended: its memberships vanish.
    pub fn proc_gone(&mut self, a: NodeIdx, pid: &Pid) {
        let mut hist = Vec::new();
        for ((n, scope), groups) in self.pg_local.iter_mut() {
            if *n != a {
                continue;
            }
            groups.retain(|g, members| {
                if members.remove(&pid.serial()).is_some() {
                    hist.push((scope.clone(), g.clone()));
                }
                !members.is_empty()
            });
        }
        for (scope, g) in hist {
            self.hist(&scope, &g, pid, 0);
        }
    }
}
