//! Global names and locks (OTP `global`), as a sans-IO state machine.
//!
//! # Model
//! A node keeps, per name table, every *claim* it knows of: `(name, pid,
//! metadata, stamp, loss policy)`. Only a claim's origin (the node of its
//! pid) creates or retracts it; peers learn of claims by a snapshot when a
//! session comes up and by deltas (`Add`/`Remove`) after that, and drop
//! every claim of a node whose session ends. Each origin numbers its deltas
//! (one stream per node, all tables); a receiver applies only the next one,
//! and on a gap, or when an origin's `Head` (sent each head interval after
//! its position moved) shows it is behind, asks for a snapshot (`Resync`)
//! that replaces everything it holds of that origin; frames dropped from a
//! node that was not a member yet make the receiver ask for its snapshot
//! once it is. So a shed or early-dropped frame is repaired within a head
//! interval, never half-applied, and an idle node sends no heads.
//!
//! The visible entry of a name is the *winner* among its claims, computed by
//! every node from the claims alone ([`rank`]): claims replaced by a
//! `re_register` never win; if any clashing claim asks for
//! [`LossPolicy::DropBoth`] nobody wins; otherwise the lowest rank wins:
//! the table's [`RankFn`] if it has one, then the claim's place `(stamp,
//! pid)`. Stamps come from a Lamport clock that every claim and lock
//! request carries, so a claim made after its maker saw another claim
//! always ranks later ("earliest claim wins"); concurrent claims are
//! ordered by node name, then pid. A `re_register`'s claim continues the
//! line of the claim it replaced ([`Succession`]) and takes its place: it
//! wins exactly the clashes the replaced claim would have won, so a node
//! that settled a clash before it heard of the replacement settled it the
//! same way as one that heard of it first. Only the origin of a losing
//! claim acts on it (kill, notify or drop), and retracts it; the other
//! nodes just wait for the retraction, which carries the winner and the
//! action: every node that held the losing claim reports the clash
//! ([`NameEvent::ConflictResolved`]) when it applies it.
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
//!   A locked `unregister` takes the name's lock the same way (so it
//!   serialises with registrations of the name), retracts the claim, and
//!   releases the lock behind the retraction on every member; called on
//!   the holder's node, it answers once every member acknowledged the
//!   retraction, or after 3 s (the stream repair brings it to the others).
//!
//! # Unregister
//! Only a claim's own node retracts it. An `unregister` called elsewhere
//! is forwarded to the holder's node and names the claim the caller saw
//! (pid and stamp): the holder's node retracts that claim if it is still
//! current, and never a newer claim of the name (a late request is
//! harmless). The caller gets `Ok` only when the holder's node answered
//! that it retracted the claim, [`NamesError::NotRegistered`] when the
//! claim was gone, and [`NamesError::OutcomeUnknown`] when no answer came
//! within 3 s or the holder's node went away: the request may or may not
//! have been applied.
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
//!
//! # Layout
//! - this file: [`Names`], the tables of one node: routing frames, peers
//!   coming and going, process exits, timers;
//! - `table.rs`: claims, the visible entry of a name, clash settlement;
//! - `store.rs`: how claims are stored ([`StoredClaim`], the per-name and
//!   per-process indexes);
//! - `rank.rs`: which claim wins;
//! - `streams.rs`: how far each member's stream was applied;
//! - `mesh.rs`: whether this node has a session with every member its
//!   members have (a partial mesh is reported, [`Names::unreached`]);
//! - `locked.rs`: locked registrations (name locks, prepare and commit),
//!   on the state in `locked_state.rs`;
//! - `locks.rs`: resource locks (`set_lock`, `del_lock`), on the state in
//!   `locks_state.rs`;
//! - `api.rs`: the operations and their [`NodeCore`](crate::NodeCore) entry
//!   points;
//! - `config.rs`, `wire.rs`, `event.rs`, `error.rs`: the tables' settings,
//!   the frames and claims, what the driver is told, why a call fails.

mod api;
mod config;
mod error;
mod event;
mod locked;
mod locked_state;
mod locks;
mod locks_state;
mod mesh;
pub mod rank;
mod store;
mod streams;
mod table;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

pub use self::api::{Outcome, RegisterArgs};
pub use self::config::{Mode, NamesConfig, TableConfig};
pub use self::error::NamesError;
pub use self::event::{NameEvent, NamesEffect, UnregisterReason};
pub use self::mesh::PARTIAL_MESH_GRACE;
pub use self::rank::{RankFn, RankFnInner};
use self::store::{Claims, LocalIndex, Origin};
pub use self::store::{SharedClaim, StoredClaim};
use self::streams::Cursors;
pub use self::wire::{
    Claim, LockId, LossPolicy, LostClaim, NamesFrame, OwnClaim, PrepareAnswer, Succession,
    WireReason,
};
use crate::ctx::Ctx;
use crate::effect::Effect;
use crate::hash::FixedHasher;
use crate::pid::{ExitReason, NodeName, Pid};
use crate::proto::Frame;
use crate::time::Time;

/// How often a node tells its members its stream position.
const HEAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lock phase (name or resource lock) waits for answers before
/// it gives back what it got and retries (an answer may have been lost).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a locked unregister waits for acks before answering anyway,
/// and a forwarded one for the holder's answer before it answers
/// [`NamesError::OutcomeUnknown`].
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a name lock may be held before this node frees it (its
/// release was lost); longer than any lock phase.
const NAME_LOCK_LEASE: Duration = Duration::from_secs(6);
/// At most this many eventual claims wait to go out in one frame.
const MAX_BATCH: usize = 256;
/// At most this many recent clash losses of local claims go with this
/// node's snapshots ([`NamesFrame::Lost`]): a member that missed the
/// retraction of one of them and is repaired by a snapshot still reports
/// the clash, if the loss is among the last this many.
const MAX_LOST: usize = 1024;
/// The attempt number that marks an ack time-out.
const ACK_TIMER: u32 = u32::MAX;

/// One name table.
#[derive(Debug)]
struct Table {
    cfg: TableConfig,
    /// Every known claim, by name.
    claims: Claims,
    /// Claims of local pids (of this node's creation), by serial.
    local: LocalIndex,
    /// Name locks of locked registrations.
    name_locks: HashMap<String, locked_state::NameLock, FixedHasher>,
    /// Whether anyone listens to this table's events.
    watched: bool,
}

/// What an operation waits for after its first phase.
#[derive(Debug)]
struct Wait {
    awaiting: BTreeSet<NodeName>,
    /// The answer once every awaited node acknowledged.
    result: Result<bool, NamesError>,
    /// The answer when time runs out, or the last awaited node goes away.
    lapsed: Result<bool, NamesError>,
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
    regs: HashMap<u64, locked_state::RegOp, FixedHasher>,
    /// Operations waiting for acks.
    waits: HashMap<u64, Wait, FixedHasher>,
    /// Lock requests in flight.
    lock_ops: HashMap<u64, locks_state::LockOp, FixedHasher>,
    /// Locks held on this node.
    locks: BTreeMap<String, locks_state::LockEntry>,
    /// Largest metadata of a name, in bytes.
    max_meta: usize,
    /// Nodes where each local holder may hold locks.
    held_at: HashMap<Pid, BTreeSet<NodeName>, FixedHasher>,
    /// Timers due: (time, op, attempt) for retries and time-outs.
    timers: BTreeSet<(Time, u64, u32)>,
    /// This node's stream position: one per claim made or retracted.
    seq: u64,
    /// How far each member's stream was applied.
    cursors: Cursors,
    /// When heads go out next (and stale name locks are looked for).
    next_head: Option<Time>,
    /// The stream position last sent to each member in a `Head`: a head
    /// goes out only after the position moved, so an idle node sends none.
    heads_told: HashMap<NodeName, u64, FixedHasher>,
    /// Nodes whose frames were dropped because they were not members yet
    /// (their global group's definition had not matched): their snapshot
    /// is asked for once they are.
    dropped: BTreeSet<NodeName>,
    /// Operation ids the core makes up itself (internal waits), counted down.
    internal_op: u64,
    /// Origins of claims (node incarnations), shared by their stored
    /// claims (a decoded pid brings a copy of its node name each time).
    origins: BTreeMap<NodeName, Vec<Arc<Origin>>>,
    /// Eventual claims made but not sent yet: (table, claims, stream
    /// position of the first). They go out as one `Add` when the driver
    /// calls [`Names::flush`] (when the node's timer comes due), before
    /// anything else this node sends, or when [`MAX_BATCH`] are waiting.
    outbox: Option<(usize, Vec<OwnClaim>, u64)>,
    /// The latest clash losses of local claims (table index, claim), at
    /// most [`MAX_LOST`]: they go before each snapshot this node sends.
    lost: VecDeque<(usize, LostClaim)>,
    /// The losses a member sent before its snapshot, until it is installed.
    lost_from: HashMap<NodeName, Vec<(String, Vec<LostClaim>)>, FixedHasher>,
    /// What the members say of their members (a partial mesh is reported).
    mesh: mesh::MeshWatch,
    /// Snapshot parts received so far, per peer (installed at the last).
    partial: BTreeMap<NodeName, Vec<(String, Vec<Claim>)>>,
    /// Bytes of claims per snapshot part or `Add` batch (see
    /// [`Names::set_max_frame`]).
    chunk: usize,
    /// Bytes of the claims in `outbox`.
    outbox_bytes: usize,
}

impl Default for Names {
    fn default() -> Self {
        Names::new(NamesConfig::empty())
    }
}

impl Names {
    /// Sets the largest metadata of a name (default
    /// [`DEFAULT_MAX_META`](crate::limits::DEFAULT_MAX_META)).
    pub fn set_max_meta(&mut self, bytes: usize) {
        self.max_meta = bytes;
    }

    /// Sets the max frame size the snapshot parts must fit in.
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.chunk = (bytes / 2).max(1);
    }

    /// The name service of a node with these tables (retry jitter draws
    /// from the node's seeded generator, through [`Ctx::random_below`]).
    pub fn new(cfg: NamesConfig) -> Self {
        Names {
            tables: cfg
                .tables
                .into_iter()
                .map(|cfg| Table {
                    cfg,
                    claims: Default::default(),
                    local: LocalIndex::default(),
                    name_locks: HashMap::default(),
                    watched: false,
                })
                .collect(),
            clock: 0,
            loopback: VecDeque::new(),
            regs: HashMap::default(),
            waits: HashMap::default(),
            lock_ops: HashMap::default(),
            locks: BTreeMap::new(),
            max_meta: crate::limits::DEFAULT_MAX_META,
            held_at: HashMap::default(),
            timers: BTreeSet::new(),
            seq: 0,
            cursors: Cursors::default(),
            next_head: None,
            heads_told: HashMap::default(),
            dropped: BTreeSet::new(),
            internal_op: u64::MAX,
            origins: BTreeMap::new(),
            outbox: None,
            lost: VecDeque::new(),
            lost_from: HashMap::default(),
            mesh: Default::default(),
            partial: BTreeMap::new(),
            chunk: crate::proto::DEFAULT_MAX_FRAME / 2,
            outbox_bytes: 0,
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
        members_of(ctx)
    }

    /// Members of this node's tables that its members have a session with
    /// and it has not, for longer than [`PARTIAL_MESH_GRACE`]: empty in a
    /// full mesh.
    pub fn unreached(&self) -> Vec<NodeName> {
        self.mesh.unreached()
    }

    /// Whether `node` is one of [`Names::members`].
    fn is_member(&self, node: &NodeName, ctx: &Ctx<'_>) -> bool {
        ctx.eligible.contains(node) && ctx.peer_creation(node).is_some()
    }

    fn table_index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.cfg.name == name)
    }

    /// The shared origin of claims of `node` at `creation`. An earlier
    /// incarnation of the node that no stored claim refers to any longer
    /// is dropped when a new one comes.
    fn origin(&mut self, node: &NodeName, creation: u32, ctx: &Ctx<'_>) -> Arc<Origin> {
        let mut known = self.origins.get(node).into_iter().flatten();
        if let Some(o) = known.find(|o| o.creation() == creation) {
            return o.clone();
        }
        let list = self.origins.entry(node.clone()).or_default();
        list.retain(|o| Arc::strong_count(o) > 1);
        let node = list
            .first()
            .map_or_else(|| node.clone(), |o| o.node().clone());
        let o = Arc::new(Origin::new(node, creation, ctx.me(), ctx.creation()));
        list.push(o.clone());
        o
    }

    fn tick(&mut self, seen: u64) -> u64 {
        self.clock = self.clock.max(seen) + 1;
        self.clock
    }

    fn observe(&mut self, seen: u64) {
        self.clock = self.clock.max(seen);
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
            ctx.push(Effect::Names(NamesEffect::Reply { op, result }));
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
            let lapsed = result.clone();
            self.wait(op, awaiting, result, lapsed, ctx);
        }
    }

    /// Waits for `awaiting` (at most [`ACK_TIMEOUT`]): `result` when all
    /// acknowledged, `lapsed` when time ran out or they went away.
    fn wait(
        &mut self,
        op: u64,
        awaiting: BTreeSet<NodeName>,
        result: Result<bool, NamesError>,
        lapsed: Result<bool, NamesError>,
        ctx: &mut Ctx<'_>,
    ) {
        let until = ctx.now + ACK_TIMEOUT;
        self.waits.insert(
            op,
            Wait {
                awaiting,
                result,
                lapsed,
                until,
            },
        );
        self.timers.insert((until, op, ACK_TIMER));
    }

    /// The holder's node `from` answered the forwarded unregister `op`.
    fn unregistered(&mut self, from: &NodeName, op: u64, applied: bool, ctx: &mut Ctx<'_>) {
        if !self
            .waits
            .get(&op)
            .is_some_and(|w| w.awaiting.contains(from))
        {
            return;
        }
        let w = self.waits.remove(&op).expect("present");
        self.timers.remove(&(w.until, op, ACK_TIMER));
        let result = if applied {
            Ok(true)
        } else {
            Err(NamesError::NotRegistered)
        };
        self.reply(op, result, ctx);
    }

    /// An operation id of the core's own (its replies are not the driver's).
    fn internal_op(&mut self) -> u64 {
        let op = self.internal_op;
        self.internal_op -= 1;
        op
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
    pub fn peer_up(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        if !self.is_member(node, ctx) {
            return;
        }
        self.cursors.up(node);
        self.heads_told.remove(node);
        self.send_snapshot(node, ctx);
        self.mesh.up(node, ctx.now);
        if self.dropped.remove(node) {
            // Its snapshot may have been among what was dropped.
            self.cursors.resync(node, ctx);
        }
    }

    /// A frame from `node` was dropped before it reached the name service
    /// (the node is not a member yet).
    pub fn dropped_from(&mut self, node: &NodeName) {
        self.dropped.insert(node.clone());
    }

    pub(super) fn send_snapshot(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        if !self.lost.is_empty() {
            let mut lost: Vec<(String, Vec<LostClaim>)> = Vec::new();
            for (i, l) in &self.lost {
                let table = &self.tables[*i].cfg.name;
                match lost.iter_mut().find(|(t, _)| t == table) {
                    Some((_, ls)) => ls.push(l.clone()),
                    None => lost.push((table.clone(), vec![l.clone()])),
                }
            }
            ctx.send(node, Frame::Names(NamesFrame::Lost { tables: lost }));
        }
        // Parts of at most `chunk` bytes of claims (a claim is at most a
        // 255-byte name and the metadata limit, which leaves room in a
        // frame), each part a frame.
        let mut parts: Vec<Vec<(String, Vec<Claim>)>> = vec![Vec::new()];
        let mut size = 0;
        for t in &self.tables {
            parts
                .last_mut()
                .expect("one part")
                .push((t.cfg.name.clone(), Vec::new()));
            for c in t.local.claims() {
                let c = c.to_claim();
                let n = claim_size(&c);
                if size > 0 && size + n > self.chunk {
                    parts.push(vec![(t.cfg.name.clone(), Vec::new())]);
                    size = 0;
                }
                size += n;
                let part = parts.last_mut().expect("one part");
                part.last_mut().expect("one table").1.push(c);
            }
        }
        let seq = self.seq;
        let last = parts.len() - 1;
        for (i, tables) in parts.into_iter().enumerate() {
            let more = i < last;
            ctx.send(
                node,
                Frame::Names(NamesFrame::Snapshot { seq, tables, more }),
            );
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
        let lost = self.lost_from.remove(node).unwrap_or_default();
        for (table, claims) in tables {
            let Some(i) = self.table_index(&table) else {
                debug!(peer = %node, %table, "snapshot of an unknown table");
                continue;
            };
            let lost: &[LostClaim] = lost
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(&[], |(_, ls)| &ls[..]);
            let keep: BTreeSet<(String, Pid, u64)> = claims
                .iter()
                .map(|c| (c.name.clone(), c.pid.clone(), c.stamp))
                .collect();
            let stale: Vec<(String, Pid, u64)> = self.tables[i]
                .claims
                .iter()
                .flat_map(|claims| claims.recs())
                .filter(|r| r.node() == node)
                .map(|r| (r.name().to_string(), r.pid(), r.stamp()))
                .filter(|k| !keep.contains(k))
                .collect();
            for (name, pid, stamp) in stale {
                // A claim that lost a clash while this node missed its
                // retraction: reported as if the retraction had come.
                let clash = lost
                    .iter()
                    .find(|l| l.name == name && l.pid == pid && l.stamp == stamp);
                let reason = match clash {
                    Some(_) => UnregisterReason::Conflict,
                    None => UnregisterReason::Unregistered,
                };
                if self.remove_claim(i, &name, &pid, Some(stamp), reason, ctx) {
                    if let Some(l) = clash {
                        self.resolved(i, &name, l.winner.clone(), pid, l.action, ctx);
                    }
                }
            }
            for c in claims {
                self.observe(c.stamp);
                let (name, stamp) = (c.name.clone(), c.stamp);
                if self.tables[i].claim_of(&name, &c.pid).map(|o| o.stamp()) != Some(stamp) {
                    self.add_claim(i, c, ctx);
                }
                self.release_name_lock(i, &name, node, stamp, ctx);
            }
        }
        self.cursors.installed(node, seq);
    }

    /// The session with `node` ended: its claims, name locks, locks and
    /// pending answers go.
    pub fn peer_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.partial.remove(node);
        self.flush(ctx);
        self.cursors.down(node);
        self.heads_told.remove(node);
        self.dropped.remove(node);
        self.lost_from.remove(node);
        self.mesh.down(node);
        for i in 0..self.tables.len() {
            self.drop_origin(i, node, ctx);
            self.release_name_locks_of(i, node, ctx);
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
            self.reply(op, w.lapsed, ctx);
        }
        self.locks_peer_down(node, ctx);
        self.pump(ctx);
    }

    /// A name-service frame from `node`. Malformed or hostile frames
    /// (claims for another node's pids, unknown tables) are logged and ignored.
    pub fn frame(&mut self, node: &NodeName, creation: u32, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        if !self.is_member(node, ctx) {
            self.dropped_from(node);
            return;
        }
        self.handle(node, creation, frame, ctx);
        self.pump(ctx);
    }

    fn handle(&mut self, node: &NodeName, creation: u32, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        let own = |pid: &Pid| pid.node() == node && pid.creation() == creation;
        let me = node == ctx.me();
        match frame {
            NamesFrame::Snapshot { seq, tables, more } => {
                if me || tables.iter().any(|(_, cs)| cs.iter().any(|c| !own(&c.pid))) {
                    self.partial.remove(node);
                    return debug!(peer = %node, "snapshot with foreign claims; ignored");
                }
                let parts = self.partial.entry(node.clone()).or_default();
                parts.extend(tables);
                if more {
                    return;
                }
                let parts = self.partial.remove(node).unwrap_or_default();
                // The same table may come in several parts: merge them.
                let mut tables: Vec<(String, Vec<Claim>)> = Vec::new();
                for (t, cs) in parts {
                    match tables.iter_mut().find(|(n, _)| *n == t) {
                        Some((_, all)) => all.extend(cs),
                        None => tables.push((t, cs)),
                    }
                }
                self.install(node, seq, tables, ctx);
            }
            NamesFrame::Head { seq } => {
                if !me {
                    self.cursors.head(node, seq, ctx);
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
                let origin = self.origin(node, creation, ctx);
                for (k, claim) in (0..).zip(claims) {
                    if self.cursors.next(node, seq.saturating_add(k), ctx) {
                        self.observe(claim.stamp);
                        let rec = SharedClaim::new(StoredClaim::own(claim, origin.clone()));
                        self.add_stored(i, rec.clone(), ctx);
                        self.release_name_lock(i, rec.name(), node, rec.stamp(), ctx);
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
                if !me && own(&pid) && self.cursors.next(node, seq, ctx) {
                    let (reason, clash) = match reason {
                        WireReason::Unregistered => (UnregisterReason::Unregistered, None),
                        WireReason::Exited(r) => (UnregisterReason::Exited(r), None),
                        WireReason::Conflict { winner, action } => {
                            (UnregisterReason::Conflict, Some((winner, action)))
                        }
                        WireReason::Replaced => (UnregisterReason::Replaced, None),
                    };
                    let removed = self.remove_claim(i, &name, &pid, Some(stamp), reason, ctx);
                    // Every node that held the losing claim reports the
                    // clash here, in the loser's node's order.
                    if let (true, Some((winner, action))) = (removed, clash) {
                        self.resolved(i, &name, winner, pid, action, ctx);
                    }
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
                let origin = self.origin(node, creation, ctx);
                let rec = SharedClaim::new(StoredClaim::own(claim, origin));
                let req = locked_state::Req {
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
                if !me && self.cursors.next(node, seq, ctx) {
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
                    self.release_name_lock(i, &name, node, stamp, ctx);
                }
            }
            NamesFrame::Ack { op } => self.acked(node, op, ctx),
            NamesFrame::Unregister {
                table,
                name,
                pid,
                stamp,
                op,
            } => {
                let current = self.table_index(&table).filter(|&i| {
                    pid.node() == ctx.me()
                        && pid.creation() == ctx.creation()
                        && self.tables[i].claim_of(&name, &pid).map(|c| c.stamp()) == Some(stamp)
                });
                match current {
                    Some(i) if self.tables[i].cfg.mode == Mode::Locked => {
                        let mine = self.internal_op();
                        let to = Some((node.clone(), op));
                        self.start_unregister(mine, i, &name, &pid, stamp, to, ctx);
                    }
                    Some(i) => {
                        self.retract(
                            i,
                            &name,
                            &pid,
                            UnregisterReason::Unregistered,
                            WireReason::Unregistered,
                            None,
                            ctx,
                        );
                        let frame = NamesFrame::Unregistered { op, applied: true };
                        self.send(node, frame, ctx);
                    }
                    None => {
                        let frame = NamesFrame::Unregistered { op, applied: false };
                        self.send(node, frame, ctx);
                    }
                }
            }
            NamesFrame::Unregistered { op, applied } => self.unregistered(node, op, applied, ctx),
            NamesFrame::Lost { tables } => {
                if me || tables.iter().any(|(_, ls)| ls.iter().any(|l| !own(&l.pid))) {
                    return debug!(peer = %node, "losses of foreign claims; ignored");
                }
                // Kept until the snapshot that follows (one list per member).
                self.lost_from.insert(node.clone(), tables);
            }
            NamesFrame::Members { all, up, down } => {
                if !me {
                    self.mesh.heard(node, all, up, down);
                }
            }
            NamesFrame::MembersView { count, hash } => {
                if !me {
                    self.mesh.view(node, count, hash, members_of, ctx);
                }
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
                    self.reply(op, w.lapsed, ctx);
                }
            }
        }
        match self.next_head {
            Some(t) if t > ctx.now => {}
            _ => {
                self.next_head = Some(ctx.now + HEAD_INTERVAL);
                let seq = self.seq;
                // One list for both: sending and expiring locks do not
                // change the peers (a list costs a walk of them all, every
                // head interval on every node).
                let members = self.members(ctx);
                for m in &members {
                    if self.heads_told.get(m) != Some(&seq) {
                        self.heads_told.insert(m.clone(), seq);
                        ctx.send(m, Frame::Names(NamesFrame::Head { seq }));
                    }
                }
                self.expire_name_locks(ctx);
                self.mesh.check(members, ctx);
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

/// See [`Names::members`].
fn members_of(ctx: &Ctx<'_>) -> Vec<NodeName> {
    ctx.peers().into_iter().map(|(n, _)| n).collect()
}

/// About how many bytes a claim takes in a frame (an upper bound of its
/// encoding: the name, the metadata, the pid's node name and fixed fields).
pub(super) fn claim_size(c: &Claim) -> usize {
    let line = c
        .supersedes
        .as_ref()
        .map_or(0, |s| s.pid.node().as_str().len());
    c.name.len() + c.meta.len() + c.pid.node().as_str().len() + line + 64
}
