//! Global names and locks (OTP `global`), as a sans-IO state machine.
//!
//! # Model
//! A node keeps, per name table, every *claim* it knows of: `(name, pid,
//! metadata, stamp, loss policy)`. Only a claim's origin (the node of its
//! pid) creates or retracts it; peers learn of claims by a snapshot when a
//! session comes up and by deltas (`Add`/`Remove`) after that, and drop
//! every claim of a node whose session ends. Each origin numbers its deltas
//! (one stream per node, all tables); a receiver applies only the next one,
//! and on a gap, or when an origin's periodic `Head` shows it is behind,
//! asks for a snapshot (`Resync`) that replaces everything it holds of that
//! origin. So a lost or early-dropped frame is repaired within a head
//! interval, never half-applied.
//!
//! The visible entry of a name is the *winner* among its claims, computed by
//! every node from the claims alone ([`rank`]): claims replaced by a
//! `re_register` never win; if any clashing claim asks for
//! [`LossPolicy::DropBoth`] nobody wins; otherwise the lowest rank wins:
//! the table's [`RankFn`] if it has one, then `(stamp, pid)`. Stamps come
//! from a Lamport clock that every claim and lock request carries, so a
//! claim made after its maker saw another claim always ranks later
//! ("earliest claim wins"); concurrent claims are ordered by node name,
//! then pid. Only the origin of a losing claim acts on it (kill, notify or
//! drop), and retracts it; the other nodes just wait for the retraction.
//!
//! # Modes
//! - [`Mode::Eventual`]: a registration writes locally and replicates;
//!   concurrent claims are settled by the rank within one round. Claims
//!   made back to back are held and go out together as one `Add` (when
//!   the driver flushes, before anything else this node sends, or at 256),
//!   so a burst costs the peers one frame per batch, not per name.
//! - [`Mode::Locked`]: a registration locks the *name* on every member
//!   node and stages its claim there in one round trip (`Prepare`): a node
//!   grants when the name is free and not locked, makes an older request
//!   wait and tells a younger one to retry (wait-die on `(stamp, node)`: no
//!   deadlock, no starvation). A staged claim is not visible (no `whereis`,
//!   no events). When all granted, the origin installs the claim, queues a
//!   `Commit` to every member (which installs the staged claim and
//!   releases the lock) and answers at once. So when `register` returns
//!   `Ok`, every connected member holds the name locked for this claim (no
//!   one else can take it), and shows it once the commit arrives, before
//!   any later frame of the registering node. Locks are per name:
//!   unrelated names never wait for each other, and many registrations are
//!   in flight at once. A lock phase missing answers after 2 s gives back
//!   what it got and retries; a name lock whose commit or release was lost
//!   expires after 6 s (the stream repair brings a lost commit's claim).
//!   A locked `unregister` answers once every member acknowledged the
//!   retraction, or after 3 s (the stream repair brings it to the others).
//!
//! # Locks
//! `set_lock` takes a lock on a resource on a set of nodes; holders with
//! the same requester id share it. A node that finds the lock held by
//! another requester refuses; the caller releases what it got and retries
//! with a jittered backoff, as OTP does. A lock goes when its holders
//! release it, die, or their node goes down.
//!
//! The set of nodes a table spans is computed in one place
//! ([`Names::members`]) so that global groups can restrict it later.

mod api;
mod locked;
mod locks;
pub mod rank;
mod store;
mod table;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// A hash map whose iteration order depends only on what was inserted: the
/// core must replay exactly from a seed, so no per-process random hasher.
type DetMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ecow::EcoString;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::ctx::Ctx;
use super::pid::{ExitReason, NodeName, Pid};
use super::proto::Frame;
use super::time::Time;

pub use self::api::{Outcome, RegisterArgs};
pub use self::store::StoredClaim;
use self::store::{Claims, LocalIndex, Slot, Stored};

/// How often a node tells its members its stream position.
const HEAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lock phase (name or resource lock) waits for answers before
/// it gives back what it got and retries (an answer may have been lost).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a locked unregister waits for acks before answering anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a name lock may be held before this node frees it (its
/// release was lost); longer than any lock phase.
const SLOT_LEASE: Duration = Duration::from_secs(6);
/// At most this many eventual claims wait to go out in one frame.
const MAX_BATCH: usize = 256;
/// The attempt number that marks an ack time-out.
const ACK_TIMER: u32 = u32::MAX;

/// How a table keeps names consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// A registration locks the name on every member node, staging the
    /// claim there, in one round trip. When it returns `Ok`, every
    /// connected member holds the name locked for this claim, so no other
    /// registration can take it; each shows the entry once the commit
    /// (queued before the return) arrives, which is before any later frame
    /// from the registering node. Two concurrent registrations in one
    /// connected partition never both succeed (OTP's contract).
    Locked,
    /// A registration returns after the local write; clashes are settled
    /// by the rank within one round of replication.
    Eventual,
}

/// What happens to the losing claim of a clash. Only the loser's own node acts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub enum LossPolicy {
    /// The loser is killed (OTP's `random_exit_name`).
    #[default]
    Kill,
    /// The loser keeps running, unregistered, and finds
    /// [`Message::NameConflict`](super::process::Message::NameConflict) in
    /// its mailbox (OTP's `random_notify_name`).
    Notify,
    /// Both claimants are notified and the name is dropped (OTP's
    /// `notify_all_names`). Wins over the other policies in a clash.
    DropBoth,
}

/// A user rank: `Less` means the first claim wins. Must be deterministic
/// and identical on every node of the table; `Equal` falls back to the
/// default rank (stamp, then pid).
#[derive(Clone)]
pub struct RankFn(pub Arc<RankFnInner>);

/// The function inside a [`RankFn`].
pub type RankFnInner = dyn Fn(&Claim, &Claim) -> Ordering + Send + Sync;

impl RankFn {
    /// Wraps a rank function.
    pub fn new(f: impl Fn(&Claim, &Claim) -> Ordering + Send + Sync + 'static) -> Self {
        RankFn(Arc::new(f))
    }
}

impl fmt::Debug for RankFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RankFn(..)")
    }
}

/// Settings of one name table.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// The table's name, the same on every node.
    pub name: String,
    /// Locked or eventual.
    pub mode: Mode,
    /// Default policy for losers (a registration may pick another).
    pub policy: LossPolicy,
    /// A user rank replacing "earliest claim wins".
    pub rank: Option<RankFn>,
    /// Whether one pid may hold several names in this table.
    pub multiple_names: bool,
}

impl TableConfig {
    /// A locked table with the kill policy, one name per pid.
    pub fn new(name: impl Into<String>) -> Self {
        TableConfig {
            name: name.into(),
            mode: Mode::Locked,
            policy: LossPolicy::Kill,
            rank: None,
            multiple_names: false,
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the default loss policy.
    pub fn policy(mut self, policy: LossPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets a user rank function.
    pub fn rank(
        mut self,
        rank: impl Fn(&Claim, &Claim) -> Ordering + Send + Sync + 'static,
    ) -> Self {
        self.rank = Some(RankFn::new(rank));
        self
    }

    /// Allows one pid to hold several names.
    pub fn multiple_names(mut self, on: bool) -> Self {
        self.multiple_names = on;
        self
    }
}

/// The name tables of a node. The first table is the default one.
#[derive(Debug, Clone)]
pub struct NamesConfig {
    /// The tables, the default first.
    pub tables: Vec<TableConfig>,
}

impl Default for NamesConfig {
    /// One locked table named `global` with the kill policy.
    fn default() -> Self {
        NamesConfig {
            tables: vec![TableConfig::new("global")],
        }
    }
}

impl NamesConfig {
    /// No tables at all.
    pub fn empty() -> Self {
        NamesConfig { tables: Vec::new() }
    }

    /// Adds a table, replacing one of the same name.
    pub fn table(mut self, t: TableConfig) -> Self {
        match self.tables.iter_mut().find(|x| x.name == t.name) {
            Some(x) => *x = t,
            None => self.tables.push(t),
        }
        self
    }
}

/// One claim of a name by a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The name.
    pub name: String,
    /// The claiming process; its node is the claim's origin.
    pub pid: Pid,
    /// Application metadata.
    pub meta: Bytes,
    /// Lamport stamp of the claim (unique per origin).
    pub stamp: u64,
    /// What happens to this claim if it loses a clash.
    pub policy: LossPolicy,
    /// The claim this one replaces (`re_register` of a name held elsewhere).
    pub supersedes: Option<(Pid, u64)>,
}

/// A claim of one of the sender's own processes as an `Add` carries it:
/// the pid's node and creation are the sender's (its session's), so they
/// are neither sent nor decoded per claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnClaim {
    /// The name.
    pub name: EcoString,
    /// The claiming process's serial on the sender.
    pub serial: u64,
    /// Application metadata.
    pub meta: Bytes,
    /// Lamport stamp of the claim.
    pub stamp: u64,
    /// What happens to this claim if it loses a clash.
    pub policy: LossPolicy,
    /// The claim this one replaces.
    pub supersedes: Option<(Pid, u64)>,
}

impl OwnClaim {
    /// `c` without its pid's node and creation.
    pub fn of(c: &Claim) -> Self {
        OwnClaim {
            name: c.name.as_str().into(),
            serial: c.pid.serial(),
            meta: c.meta.clone(),
            stamp: c.stamp,
            policy: c.policy,
            supersedes: c.supersedes.clone(),
        }
    }

    /// The claim, made by a process of `node` (of creation `creation`).
    pub fn claim(&self, node: &NodeName, creation: u32) -> Claim {
        Claim {
            name: self.name.to_string(),
            pid: Pid::new(node.clone(), creation, self.serial),
            meta: self.meta.clone(),
            stamp: self.stamp,
            policy: self.policy,
            supersedes: self.supersedes.clone(),
        }
    }
}

/// Why a name left the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnregisterReason {
    /// `unregister` was called.
    Unregistered,
    /// The process ended.
    Exited(ExitReason),
    /// The process's node went down or out of reach.
    NodeDown,
    /// The claim lost a clash (or both were dropped).
    Conflict,
    /// `re_register` gave the name to another process.
    Replaced,
}

/// A change in a table, in the order this node applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameEvent {
    /// `name` now resolves to `pid`.
    Registered {
        /// The name.
        name: String,
        /// Its process.
        pid: Pid,
        /// Its metadata.
        meta: Bytes,
    },
    /// `name` no longer resolves to `pid`.
    Unregistered {
        /// The name.
        name: String,
        /// The process that held it.
        pid: Pid,
        /// Why.
        reason: UnregisterReason,
    },
    /// A clash on `name` was settled: `loser`'s claim is dropped. Reported
    /// by the claimants' nodes and by every node that held both claims at
    /// once (a loser may retract before a third node ever sees its claim).
    ConflictResolved {
        /// The name.
        name: String,
        /// The surviving holder (none under [`LossPolicy::DropBoth`]).
        winner: Option<Pid>,
        /// The losing process.
        loser: Pid,
        /// What its node does to it.
        action: LossPolicy,
    },
}

/// Why a name or lock operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamesError {
    /// Another process holds the name; nothing changed.
    #[error("name is taken")]
    Taken,
    /// The process already holds this other name and the table allows one per pid; nothing changed.
    #[error("process already registered as {0:?}")]
    AlreadyNamed(String),
    /// The pid belongs to another node; only its own node registers it; nothing changed.
    #[error("pid is not a local process")]
    NotLocal,
    /// The process is not alive (or ended during the operation); nothing is registered.
    #[error("no such process")]
    NoProc,
    /// No process holds the name; nothing changed.
    #[error("name is not registered")]
    NotRegistered,
    /// No table of this name is configured on this node.
    #[error("unknown name table {0:?}")]
    UnknownTable(String),
    /// The node stopped before the operation finished; its outcome is unknown.
    #[error("node stopped")]
    Stopped,
}

/// Identifies a lock: a resource and the requester id that may share it
/// (OTP's `{ResourceId, LockRequesterId}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockId {
    /// The locked resource.
    pub resource: String,
    /// Holders with the same requester id share the lock.
    pub requester: String,
}

impl LockId {
    /// A lock id.
    pub fn new(resource: impl Into<String>, requester: impl Into<String>) -> Self {
        LockId {
            resource: resource.into(),
            requester: requester.into(),
        }
    }
}

/// A node's answer to a `Prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareAnswer {
    /// The name is locked for the requester.
    Granted,
    /// The name is held by a process.
    Taken,
    /// An older request holds the name lock: retry later.
    Busy,
}

/// Wire messages of the name service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NamesFrame {
    /// All of the sender's own claims, per table, as of its stream
    /// position `seq`: replaces everything the receiver holds of the sender.
    Snapshot {
        /// The sender's stream position.
        seq: u64,
        /// The sender's claims, per table.
        tables: Vec<(String, Vec<Claim>)>,
    },
    /// The sender's stream position, sent every second: a receiver that
    /// is behind asks for a snapshot (a lost tail is repaired).
    Head {
        /// The sender's stream position.
        seq: u64,
    },
    /// Asks for a `Snapshot` (the receiver missed part of the stream).
    Resync,
    /// The sender made these claims, one stream position each (an
    /// eventual node sends the claims made since its last frame together);
    /// answer `Ack { op }` when `ack` is set.
    Add {
        /// The table.
        table: String,
        /// The claims (of the sender's processes), in the order they were made.
        claims: Vec<OwnClaim>,
        /// The sender's stream position after the first claim; the k-th
        /// claim (from 0) moves it to `seq + k`.
        seq: u64,
        /// The sender's operation waiting for an ack.
        ack: Option<u64>,
    },
    /// The sender retracted a claim; answer `Ack { op }` when `ack` is set.
    Remove {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The claiming process.
        pid: Pid,
        /// The claim's stamp.
        stamp: u64,
        /// Why, for the events.
        reason: WireReason,
        /// The sender's stream position after this change.
        seq: u64,
        /// The sender's operation waiting for an ack.
        ack: Option<u64>,
    },
    /// Lock `claim.name` for a locked registration and stage `claim`
    /// under that lock (not visible until the `Commit`).
    Prepare {
        /// The table.
        table: String,
        /// The claim to stage (of a sender's process); its stamp is the
        /// request's priority.
        claim: OwnClaim,
        /// The sender's operation.
        op: u64,
        /// The attempt of that operation.
        attempt: u32,
        /// A `re_register`: grant even when the name is held.
        replace: bool,
    },
    /// Answer to a `Prepare`.
    Prepared {
        /// The operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// The answer.
        answer: PrepareAnswer,
    },
    /// Every member granted the sender's request `stamp` on `name`: install
    /// the claim staged by its `Prepare` and release the lock. A receiver
    /// that no longer holds the staged claim asks for a snapshot.
    Commit {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The request's (and claim's) stamp.
        stamp: u64,
        /// The sender's stream position after this change.
        seq: u64,
    },
    /// Drop the name lock (held or awaited) of the sender's request `stamp`.
    Release {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The request's stamp.
        stamp: u64,
    },
    /// Acknowledges an `Add`, `Remove`, `Unregister` or `Ping`.
    Ack {
        /// The operation.
        op: u64,
    },
    /// Asks the origin of `name`'s holder to unregister it.
    Unregister {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The sender's operation waiting for an ack.
        op: u64,
    },
    /// Answered by `Ack` once everything before it was applied.
    Ping {
        /// The sender's operation.
        op: u64,
    },
    /// Take a lock for `holder` (a process of the sender).
    LockSet {
        /// The sender's operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// The lock.
        lock: LockId,
        /// The holding process.
        holder: Pid,
    },
    /// Answer to `LockSet`.
    LockReply {
        /// The operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// Whether the lock is held now.
        granted: bool,
        /// Whether this holder was added by this request (not held before).
        fresh: bool,
    },
    /// `holder` releases `lock`.
    LockDel {
        /// The lock.
        lock: LockId,
        /// The holding process.
        holder: Pid,
    },
    /// `holder` ended: it releases every lock.
    LockGone {
        /// The process.
        holder: Pid,
    },
}

/// [`UnregisterReason`] as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireReason {
    /// `unregister`.
    Unregistered,
    /// The process ended.
    Exited(ExitReason),
    /// Lost a clash.
    Conflict,
    /// Replaced by `re_register`.
    Replaced,
}

/// Effects of the name service for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum NamesEffect {
    /// The visible entry of `name` in table `table` (an index) changed.
    View {
        /// Table index in the config.
        table: usize,
        /// The name.
        name: EcoString,
        /// The new winning claim (holder and metadata), or none.
        entry: Option<Arc<StoredClaim>>,
    },
    /// An event for the table's subscribers.
    Event {
        /// Table index.
        table: usize,
        /// The event.
        event: NameEvent,
    },
    /// Operation `op` finished.
    Reply {
        /// The operation.
        op: u64,
        /// `Ok(true)` on success, `Ok(false)` for a lock not taken.
        result: Result<bool, NamesError>,
    },
}

/// One name table.
#[derive(Debug)]
struct Table {
    cfg: TableConfig,
    /// Every known claim, by name.
    claims: Claims,
    /// Claims of local pids (of this node's creation), by serial.
    local: LocalIndex,
    /// Name locks of locked registrations.
    slots: DetMap<String, locked::Slot>,
    /// Whether anyone listens to this table's events.
    watched: bool,
}

/// What an operation waits for after its first phase.
#[derive(Debug)]
struct Wait {
    awaiting: BTreeSet<NodeName>,
    result: Result<bool, NamesError>,
    /// When it stops waiting (its timer, dropped when all acks came).
    until: Time,
}

/// The name tables and locks of one node.
#[derive(Debug)]
pub struct Names {
    tables: Vec<Table>,
    clock: u64,
    /// Frames this node sends to itself, handled after the current input.
    loopback: VecDeque<NamesFrame>,
    /// Locked registrations in their lock phase, by operation.
    regs: DetMap<u64, locked::PendingReg>,
    /// Operations waiting for acks.
    waits: DetMap<u64, Wait>,
    /// Lock requests in flight.
    lock_ops: DetMap<u64, locks::LockOp>,
    /// Locks held on this node.
    locks: BTreeMap<String, locks::LockEntry>,
    /// Nodes where each local holder may hold locks.
    held_at: DetMap<Pid, BTreeSet<NodeName>>,
    /// Timers due: (time, op, attempt) for retries and time-outs.
    timers: BTreeSet<(Time, u64, u32)>,
    /// This node's stream position: one per claim made or retracted.
    seq: u64,
    /// How far each member's stream was applied (`None`: a snapshot is
    /// awaited) and whether a `Resync` is out.
    cursors: DetMap<NodeName, (Option<u64>, bool)>,
    /// When heads go out next (and stale name locks are looked for).
    next_head: Option<Time>,
    /// Operation ids the core makes up itself (internal waits), counted down.
    internal_op: u64,
    rng: u64,
    /// Node names of claimants, shared by their stored claims (a decoded
    /// pid brings a copy of its node name each time).
    node_names: BTreeSet<NodeName>,
    /// Eventual claims made but not sent yet: (table, claims, stream
    /// position of the first). They go out as one `Add` when the driver
    /// calls [`Names::flush`] (asked for by `Effect::Flush`), before
    /// anything else this node sends, or when [`MAX_BATCH`] are waiting.
    outbox: Option<(usize, Vec<OwnClaim>, u64)>,
}

impl Default for Names {
    fn default() -> Self {
        Names::new(NamesConfig::empty(), 0)
    }
}

impl Names {
    /// The name service of a node with these tables; `seed` feeds the retry jitter.
    pub fn new(cfg: NamesConfig, seed: u64) -> Self {
        Names {
            tables: cfg
                .tables
                .into_iter()
                .map(|cfg| Table {
                    cfg,
                    claims: Default::default(),
                    local: LocalIndex::default(),
                    slots: DetMap::default(),
                    watched: false,
                })
                .collect(),
            clock: 0,
            loopback: VecDeque::new(),
            regs: DetMap::default(),
            waits: DetMap::default(),
            lock_ops: DetMap::default(),
            locks: BTreeMap::new(),
            held_at: DetMap::default(),
            timers: BTreeSet::new(),
            seq: 0,
            cursors: DetMap::default(),
            next_head: None,
            internal_op: u64::MAX,
            rng: seed | 1,
            node_names: BTreeSet::new(),
            outbox: None,
        }
    }

    /// Turns on [`NamesEffect::Event`]s for table `table` (an index); they
    /// are not produced before anyone listens.
    pub fn watch(&mut self, table: usize) {
        if let Some(t) = self.tables.get_mut(table) {
            t.watched = true;
        }
    }

    /// The configured table names, the default first.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.cfg.name.clone()).collect()
    }

    /// The nodes a table spans besides this one: every up peer. The one
    /// place to restrict names to the own global group.
    pub fn members(&self, ctx: &Ctx<'_>) -> Vec<NodeName> {
        ctx.peers().into_iter().map(|(n, _)| n).collect()
    }

    /// Whether `node` is one of [`Names::members`].
    fn is_member(&self, node: &NodeName, ctx: &Ctx<'_>) -> bool {
        ctx.eligible.contains(node) && ctx.peer_creation(node).is_some()
    }

    fn table_index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.cfg.name == name)
    }

    /// The shared copy of node name `n`.
    fn intern(&mut self, n: &NodeName) -> NodeName {
        if let Some(x) = self.node_names.get(n) {
            return x.clone();
        }
        self.node_names.insert(n.clone());
        n.clone()
    }

    fn tick(&mut self, seen: u64) -> u64 {
        self.clock = self.clock.max(seen) + 1;
        self.clock
    }

    fn observe(&mut self, seen: u64) {
        self.clock = self.clock.max(seen);
    }

    fn jitter(&mut self, below: u64) -> u64 {
        // xorshift64: reproducible from the seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below.max(1)
    }

    /// Sends a frame to `node`, or to this node itself through the loopback.
    fn send(&mut self, node: &NodeName, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        if node == ctx.me() {
            self.loopback.push_back(frame);
        } else {
            ctx.send(node, Frame::Names(frame));
        }
    }

    /// Handles the frames this node sent itself.
    fn pump(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(f) = self.loopback.pop_front() {
            let me = ctx.me().clone();
            let c = ctx.creation();
            self.handle(&me, c, f, ctx);
        }
    }

    fn reply(&mut self, op: u64, result: Result<bool, NamesError>, ctx: &mut Ctx<'_>) {
        if op < self.internal_op {
            ctx.push(super::Effect::Names(NamesEffect::Reply { op, result }));
        }
    }

    /// Waits for acks of `op` from `awaiting`, then replies `result`.
    fn wait_acks(
        &mut self,
        op: u64,
        awaiting: BTreeSet<NodeName>,
        result: Result<bool, NamesError>,
        ctx: &mut Ctx<'_>,
    ) {
        if awaiting.is_empty() {
            self.reply(op, result, ctx);
        } else {
            let until = ctx.now + ACK_TIMEOUT;
            self.waits.insert(
                op,
                Wait {
                    awaiting,
                    result,
                    until,
                },
            );
            self.timers.insert((until, op, ACK_TIMER));
        }
    }

    fn acked(&mut self, from: &NodeName, op: u64, ctx: &mut Ctx<'_>) {
        if let Some(w) = self.waits.get_mut(&op) {
            w.awaiting.remove(from);
            if w.awaiting.is_empty() {
                let w = self.waits.remove(&op).expect("present");
                self.timers.remove(&(w.until, op, ACK_TIMER));
                self.reply(op, w.result, ctx);
            }
        }
    }

    /// A session with `node` is up: it gets this node's own claims.
    pub fn peer_up(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        let _ = creation;
        if !self.is_member(node, ctx) {
            return;
        }
        self.cursors.insert(node.clone(), (None, false));
        self.send_snapshot(node, ctx);
    }

    pub(super) fn send_snapshot(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        let tables = self
            .tables
            .iter()
            .map(|t| {
                let claims: Vec<Claim> = t.local.claims().map(|c| c.to_claim()).collect();
                (t.cfg.name.clone(), claims)
            })
            .collect();
        let seq = self.seq;
        ctx.send(node, Frame::Names(NamesFrame::Snapshot { seq, tables }));
    }

    /// Whether a delta at `seq` from `node` is the next one; on a gap (or
    /// before the first snapshot) asks for a snapshot once.
    fn in_order(&mut self, node: &NodeName, seq: u64, ctx: &mut Ctx<'_>) -> bool {
        let c = self.cursors.entry(node.clone()).or_insert((None, false));
        match c.0 {
            Some(at) if seq == at + 1 => {
                c.0 = Some(seq);
                true
            }
            Some(at) if seq <= at => false,
            _ => {
                if !c.1 {
                    c.1 = true;
                    ctx.send(node, Frame::Names(NamesFrame::Resync));
                }
                false
            }
        }
    }

    /// Installs `node`'s snapshot: its claims become exactly these.
    fn install(
        &mut self,
        node: &NodeName,
        seq: u64,
        tables: Vec<(String, Vec<Claim>)>,
        ctx: &mut Ctx<'_>,
    ) {
        for (table, claims) in tables {
            let Some(i) = self.table_index(&table) else {
                debug!(peer = %node, %table, "snapshot of an unknown table");
                continue;
            };
            let keep: BTreeSet<(String, Pid, u64)> = claims
                .iter()
                .map(|c| (c.name.clone(), c.pid.clone(), c.stamp))
                .collect();
            let stale: Vec<(String, Pid)> = self.tables[i]
                .claims
                .iter()
                .flat_map(|slot| slot.recs())
                .filter(|r| r.node() == node)
                .map(|r| (r.name().to_string(), r.pid(), r.stamp()))
                .filter(|k| !keep.contains(k))
                .map(|(n, p, _)| (n, p))
                .collect();
            for (name, pid) in stale {
                self.remove_claim(i, &name, &pid, None, UnregisterReason::Unregistered, ctx);
            }
            for c in claims {
                self.observe(c.stamp);
                let (name, stamp) = (c.name.clone(), c.stamp);
                if self.tables[i].claim_of(&name, &c.pid).map(|o| o.stamp()) != Some(stamp) {
                    self.add_claim(i, c, ctx);
                }
                self.release_slot(i, &name, node, stamp, ctx);
            }
        }
        self.cursors.insert(node.clone(), (Some(seq), false));
    }

    /// The session with `node` ended: its claims, name locks, locks and
    /// pending answers go.
    pub fn peer_down(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        let _ = creation;
        self.cursors.remove(node);
        for i in 0..self.tables.len() {
            self.drop_origin(i, node, ctx);
            self.release_slots_of(i, node, ctx);
        }
        self.regs_peer_down(node, ctx);
        let done: Vec<u64> = self
            .waits
            .iter_mut()
            .filter_map(|(op, w)| (w.awaiting.remove(node) && w.awaiting.is_empty()).then_some(*op))
            .collect();
        for op in done {
            let w = self.waits.remove(&op).expect("present");
            self.timers.remove(&(w.until, op, ACK_TIMER));
            self.reply(op, w.result, ctx);
        }
        self.locks_peer_down(node, ctx);
        self.pump(ctx);
    }

    /// A name-service frame from `node`. Malformed or hostile frames
    /// (claims for another node's pids, unknown tables) are logged and ignored.
    pub fn frame(&mut self, node: &NodeName, creation: u32, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        if !self.is_member(node, ctx) {
            return;
        }
        self.handle(node, creation, frame, ctx);
        self.pump(ctx);
    }

    fn handle(&mut self, node: &NodeName, creation: u32, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        let own = |pid: &Pid| pid.node() == node && pid.creation() == creation;
        let me = node == ctx.me();
        match frame {
            NamesFrame::Snapshot { seq, tables } => {
                if me || tables.iter().any(|(_, cs)| cs.iter().any(|c| !own(&c.pid))) {
                    return debug!(peer = %node, "snapshot with foreign claims; ignored");
                }
                self.install(node, seq, tables, ctx);
            }
            NamesFrame::Head { seq } => {
                if !me && !matches!(self.cursors.get(node), Some((Some(at), _)) if *at >= seq) {
                    let c = self.cursors.entry(node.clone()).or_insert((None, false));
                    if !c.1 {
                        c.1 = true;
                        ctx.send(node, Frame::Names(NamesFrame::Resync));
                    }
                }
            }
            NamesFrame::Resync => {
                if !me {
                    self.send_snapshot(node, ctx);
                }
            }
            NamesFrame::Add {
                table,
                claims,
                seq,
                ack,
            } => {
                let Some(i) = self.table_index(&table) else {
                    return debug!(peer = %node, %table, "claim for an unknown table");
                };
                if me {
                    return debug!(peer = %node, "claims from this node itself; ignored");
                }
                let origin = self.intern(node);
                for (k, claim) in (0..).zip(claims) {
                    if self.in_order(node, seq.saturating_add(k), ctx) {
                        self.observe(claim.stamp);
                        let rec =
                            Arc::new(StoredClaim::own(claim, origin.clone(), creation, false));
                        self.add_stored(i, rec.clone(), ctx);
                        self.release_slot(i, rec.name(), node, rec.stamp(), ctx);
                    }
                }
                // Acked even when out of order: the snapshot asked for brings it.
                if let Some(op) = ack {
                    self.send(node, NamesFrame::Ack { op }, ctx);
                }
            }
            NamesFrame::Remove {
                table,
                name,
                pid,
                stamp,
                reason,
                seq,
                ack,
            } => {
                let Some(i) = self.table_index(&table) else {
                    return debug!(peer = %node, %table, "retraction for an unknown table");
                };
                if !me && own(&pid) && self.in_order(node, seq, ctx) {
                    let reason = match reason {
                        WireReason::Unregistered => UnregisterReason::Unregistered,
                        WireReason::Exited(r) => UnregisterReason::Exited(r),
                        WireReason::Conflict => UnregisterReason::Conflict,
                        WireReason::Replaced => UnregisterReason::Replaced,
                    };
                    self.remove_claim(i, &name, &pid, Some(stamp), reason, ctx);
                }
                if let Some(op) = ack {
                    self.send(node, NamesFrame::Ack { op }, ctx);
                }
            }
            NamesFrame::Prepare {
                table,
                claim,
                op,
                attempt,
                replace,
            } => {
                let Some(i) = self.table_index(&table) else {
                    return debug!(peer = %node, %table, "prepare for an unknown table");
                };
                if claim.supersedes.is_some() {
                    return debug!(peer = %node, "prepare of a superseding claim; ignored");
                }
                self.observe(claim.stamp);
                let origin = self.intern(node);
                let local = me && creation == ctx.creation();
                let rec = Arc::new(StoredClaim::own(claim, origin, creation, local));
                let req = locked::Req {
                    stamp: rec.stamp(),
                    node: rec.node().clone(),
                    op,
                    attempt,
                    replace,
                    since: ctx.now,
                    claim: rec,
                };
                self.prepare(i, req, ctx);
            }
            NamesFrame::Commit {
                table,
                name,
                stamp,
                seq,
            } => {
                let Some(i) = self.table_index(&table) else {
                    return debug!(peer = %node, %table, "commit for an unknown table");
                };
                if !me && self.in_order(node, seq, ctx) {
                    self.commit_staged(i, &name, node, stamp, ctx);
                }
            }
            NamesFrame::Prepared {
                op,
                attempt,
                answer,
            } => self.prepared(node, op, attempt, answer, ctx),
            NamesFrame::Release { table, name, stamp } => {
                if let Some(i) = self.table_index(&table) {
                    self.release_slot(i, &name, node, stamp, ctx);
                }
            }
            NamesFrame::Ack { op } => self.acked(node, op, ctx),
            NamesFrame::Unregister { table, name, op } => {
                if let Some(i) = self.table_index(&table) {
                    self.unregister_local(i, &name, None, ctx);
                }
                self.send(node, NamesFrame::Ack { op }, ctx);
            }
            NamesFrame::Ping { op } => self.send(node, NamesFrame::Ack { op }, ctx),
            NamesFrame::LockSet {
                op,
                attempt,
                lock,
                holder,
            } => {
                if !own(&holder) {
                    return debug!(peer = %node, "lock for a foreign holder; ignored");
                }
                self.lock_set(node, op, attempt, lock, holder, ctx);
            }
            NamesFrame::LockReply {
                op,
                attempt,
                granted,
                fresh,
            } => self.lock_reply(node, op, attempt, granted, fresh, ctx),
            NamesFrame::LockDel { lock, holder } => {
                if own(&holder) {
                    self.lock_del(&lock, &holder);
                }
            }
            NamesFrame::LockGone { holder } => {
                if own(&holder) {
                    self.lock_gone(&holder);
                }
            }
        }
    }

    /// A local process ended: its names, pending registrations and locks go.
    pub fn exited(&mut self, pid: &Pid, reason: &ExitReason, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        let local = pid.node() == ctx.me() && pid.creation() == ctx.creation();
        for i in 0..self.tables.len() {
            let names: Vec<String> = if local {
                let t = &self.tables[i].local;
                t.names(pid.serial()).map(str::to_string).collect()
            } else {
                Vec::new()
            };
            for name in names {
                self.retract(
                    i,
                    &name,
                    pid,
                    UnregisterReason::Exited(reason.clone()),
                    WireReason::Exited(reason.clone()),
                    None,
                    ctx,
                );
            }
        }
        self.regs_exited(pid, ctx);
        self.locks_exited(pid, ctx);
        self.pump(ctx);
    }

    /// Time passed: retries of busy registrations and refused locks.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        while let Some(&(at, op, attempt)) = self.timers.first() {
            if at > ctx.now {
                break;
            }
            self.timers.pop_first();
            if self.regs.contains_key(&op) {
                self.reg_timer(op, attempt, ctx);
            } else if self.lock_ops.contains_key(&op) {
                self.lock_timer(op, attempt, ctx);
            } else if attempt == ACK_TIMER {
                // Members that did not ack in time get the change by the
                // stream repair; the caller is not held up for them.
                if let Some(w) = self.waits.remove(&op) {
                    self.reply(op, w.result, ctx);
                }
            }
        }
        match self.next_head {
            Some(t) if t > ctx.now => {}
            _ => {
                self.next_head = Some(ctx.now + HEAD_INTERVAL);
                let seq = self.seq;
                for m in self.members(ctx) {
                    ctx.send(&m, Frame::Names(NamesFrame::Head { seq }));
                }
                self.expire_slots(ctx);
            }
        }
        self.pump(ctx);
    }

    /// When [`Names::timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Time> {
        let t = self.timers.first().map(|(t, _, _)| *t);
        match (t, self.next_head) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
