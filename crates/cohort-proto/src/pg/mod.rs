//! Process groups (OTP `pg`, CloudI `cpg`): scopes of named groups whose
//! members are pids, replicated to every node that runs the same scope.
//!
//! Each node is authoritative for its own processes: only the origin writes
//! its entries (a remote pid cannot join from here), applies the write at
//! once, and streams it to the scope's peers. No lock, no leader, nothing
//! global to reconcile after a netsplit.
//!
//! Replication, per scope:
//! - Every node numbers the changes of its own entries in a *stream*
//!   (identified by creation and scope start) with a strictly increasing
//!   sequence, and keeps the most recent ones in a bounded log.
//! - When a session comes up, each side sends `Discover` with the cursor it
//!   holds for the other's stream. The other answers with the missing
//!   deltas when its log still has them and the stream is the same, or with
//!   an exact snapshot of its own entries otherwise (installed atomically:
//!   the differences are applied and reported as joins and leaves).
//! - Afterwards changes go out as `Delta`s: the changes made since the last
//!   one, held until the driver flushes ([`Effect::Flush`]), a batch fills
//!   up, or the node sends anything else (which must not overtake them), so
//!   a burst of joins costs a frame per batch, not per join. A receiver applies only
//!   the next sequence number; a gap or an unknown stream makes it ask again
//!   with `Discover`. Origins advertise their heads every second, so a lost
//!   tail is repaired even when no later write comes.
//! - When a node goes down, its entries vanish from every observer in one
//!   step. Frames from nodes that are not peers of the scope are ignored.

mod view;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use tracing::debug;

pub use self::view::{Group, GroupView, Member, Members, ScopeView, Select};
use super::ctx::Ctx;
use super::pid::{ExitReason, NodeName, Pid};
use super::proto::Frame;
use super::time::Time;
use super::{Effect, NodeCore};

/// A scope name.
pub type ScopeName = Arc<str>;

/// Held local changes are sent at once when this many have gathered.
const BATCH_MAX: usize = 1024;

/// The scope every node runs unless told otherwise (OTP's default `pg` scope).
pub const DEFAULT_SCOPE: &str = "pg";

/// How many membership changes the recent deltas each scope keeps for
/// catch-up may hold together (a delta batches several).
const LOG_CAP: usize = 4096;

/// Largest number of memberships in one snapshot frame.
const SYNC_CHUNK: usize = 50_000;

/// How often stream heads are advertised.
const HEADS_INTERVAL: Duration = Duration::from_secs(1);

/// A change to the origin's own entries; pids are the origin's serials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Processes joined `group` (once each), with optional metadata.
    Join {
        /// The group.
        group: Group,
        /// Serials of the joining processes.
        serials: SmallVec<[u64; 1]>,
        /// Metadata of these memberships.
        meta: Option<Bytes>,
    },
    /// Processes left `group`: `count` memberships of each serial.
    Leave {
        /// The group.
        group: Group,
        /// (serial, number of memberships removed).
        serials: SmallVec<[(u64, u32); 1]>,
    },
    /// The metadata of every membership of `serial` in `group` changed.
    Meta {
        /// The group.
        group: Group,
        /// The process.
        serial: u64,
        /// The new metadata.
        meta: Option<Bytes>,
    },
}

/// The changes of one delta, shared between the frame and the log.
pub type Ops = Arc<Vec<Op>>;

/// One group in a snapshot: serial, membership count, metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroup {
    /// The group.
    pub group: Group,
    /// (serial, count, metadata) of each member process.
    pub members: Vec<(u64, u32, Option<Bytes>)>,
}

/// Wire messages of the process-group layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PgFrame {
    /// "I run `scope`; send me your entries after `have` (stream, seq)."
    Discover {
        /// The scope.
        scope: ScopeName,
        /// The sender's cursor in the receiver's stream, if any.
        have: Option<(u64, u64)>,
    },
    /// A snapshot of the sender's own entries at `seq`, possibly in parts.
    Sync {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// The stream head the snapshot reflects.
        seq: u64,
        /// Groups of this part.
        groups: Vec<SyncGroup>,
        /// More parts follow; install only after the last.
        more: bool,
    },
    /// One change of the sender's own entries.
    Delta {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// Sequence number of this change.
        seq: u64,
        /// The changes, applied together.
        ops: Ops,
    },
    /// The changes a peer missed, answering its `Discover`: applied in
    /// order like deltas, but never shed on a congested session.
    Catchup {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// (sequence number, changes) in order.
        deltas: Vec<(u64, Ops)>,
    },
    /// The head of the sender's stream, advertised periodically.
    Heads {
        /// The scope.
        scope: ScopeName,
        /// The sender's stream.
        stream: u64,
        /// Its latest sequence number.
        seq: u64,
    },
    /// The sender stopped `scope`: drop its entries.
    Stopped {
        /// The scope.
        scope: ScopeName,
    },
}

/// What happened to a group, as monitors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgEventKind {
    /// These pids joined (a pid listed twice joined twice).
    Join,
    /// These pids left (or their process or node went away).
    Leave,
    /// The metadata of these pids' memberships changed.
    Meta,
}

/// One change of a group, delivered to monitors in the order this node
/// applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgEvent {
    /// The scope.
    pub scope: ScopeName,
    /// The group.
    pub group: Group,
    /// What happened.
    pub kind: PgEventKind,
    /// The pids concerned, once per membership.
    pub pids: Vec<Pid>,
    /// The metadata, for joins and updates.
    pub meta: Option<Bytes>,
}

/// Effects of the process-group layer for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum PgEffect {
    /// Deliver an event to monitor subscription `sub`.
    Event {
        /// The subscription.
        sub: u64,
        /// The event.
        event: PgEvent,
    },
}

/// Why a process-group call failed; nothing changed when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// The pid belongs to another node: only the origin writes its entries.
    #[error("{0} is not a local process: only its own node can add it to a group")]
    NotLocal(Pid),
    /// The local process does not exist (any more).
    #[error("{0} is not alive")]
    NoProc(Pid),
    /// None of the pids had joined the group.
    #[error("not joined")]
    NotJoined,
    /// The scope does not run on this node.
    #[error("scope {0:?} is not running")]
    NoScope(ScopeName),
}

/// The hasher of the scope's own maps: fast, and fixed so that nothing
/// depends on a random state.
type Fixed = foldhash::fast::FixedState;

/// The groups one local process joined, with how many times each. Most
/// processes join one group: that case needs no allocation of its own.
#[derive(Debug)]
enum Joined {
    One(Group, u32),
    // Boxed: keeps the common one-group case (and so every entry of the
    // scope's process map) at 24 bytes.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Group, u32, Fixed>>),
}

impl Joined {
    fn add(&mut self, group: &Group) {
        match self {
            Joined::One(g, n) if g == group => *n += 1,
            Joined::One(g, n) => {
                let mut m = HashMap::with_capacity_and_hasher(2, Fixed::default());
                m.insert(g.clone(), *n);
                m.insert(group.clone(), 1);
                *self = Joined::Many(Box::new(m));
            }
            Joined::Many(m) => *m.entry(group.clone()).or_default() += 1,
        }
    }

    fn count(&self, group: &str) -> u32 {
        match self {
            Joined::One(g, n) => {
                if &**g == group {
                    *n
                } else {
                    0
                }
            }
            Joined::Many(m) => m.get(group).copied().unwrap_or(0),
        }
    }

    /// Removes one membership of `group`; false if there was none. The
    /// caller drops a `Joined` left empty.
    fn remove_one(&mut self, group: &str) -> bool {
        match self {
            Joined::One(g, n) if &**g == group && *n > 0 => {
                *n -= 1;
                true
            }
            Joined::One(..) => false,
            Joined::Many(m) => {
                let Some(n) = m.get_mut(group) else {
                    return false;
                };
                *n -= 1;
                if *n == 0 {
                    m.remove(group);
                }
                true
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Joined::One(_, n) => *n == 0,
            Joined::Many(m) => m.is_empty(),
        }
    }

    fn groups(&self) -> Box<dyn Iterator<Item = &Group> + '_> {
        match self {
            Joined::One(g, _) => Box::new(std::iter::once(g)),
            Joined::Many(m) => Box::new(m.keys()),
        }
    }

    /// The groups and counts, in group order.
    fn into_sorted(self) -> Vec<(Group, u32)> {
        match self {
            Joined::One(g, n) => vec![(g, n)],
            Joined::Many(m) => {
                let mut v: Vec<(Group, u32)> = m.into_iter().collect();
                v.sort();
                v
            }
        }
    }
}

/// What this node holds of one peer's stream in one scope.
#[derive(Debug, Default)]
struct PeerScope {
    /// The peer sent `Discover`: it runs the scope and wants our changes.
    subscribed: bool,
    /// We sent `Discover`: we accept its snapshot and deltas.
    asked: bool,
    /// (stream, seq) of its entries as applied here.
    cursor: Option<(u64, u64)>,
    /// Snapshot parts received so far.
    partial: Vec<SyncGroup>,
    /// We asked again after a gap and wait for the answer.
    resyncing: bool,
    /// The latest head it advertised (stream, seq).
    advertised: Option<(u64, u64)>,
    /// We pushed our snapshot at this head when the session came up; the
    /// peer's first `Discover` then needs only what changed since.
    pushed: Option<u64>,
}

/// Which nodes a scope replicates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Span {
    /// The own global group's synced nodes (every node without global
    /// groups): the default, like names.
    #[default]
    OwnGroup,
    /// Every node with a visible session, across global groups (hidden
    /// sessions never replicate).
    Cluster,
}

/// One scope on one node.
#[derive(Debug)]
struct Scope {
    name: ScopeName,
    span: Span,
    stream: u64,
    seq: u64,
    log: VecDeque<(u64, Ops)>,
    /// Memberships changed by the logged deltas (what [`LOG_CAP`] bounds).
    logged: usize,
    /// Local changes not sent yet (see [`Scope::publish`]).
    pending: Vec<Op>,
    view: Arc<ScopeView>,
    /// Memberships of local processes: serial → group → count.
    local: HashMap<u64, Joined, Fixed>,
    peers: BTreeMap<NodeName, PeerScope>,
    /// Monitor subscriptions: id → group (None: the whole scope).
    monitors: BTreeMap<u64, Option<Group>>,
    stamp: u32,
}

/// The process-group scopes of one node.
#[derive(Debug, Default)]
pub struct Pg {
    scopes: BTreeMap<ScopeName, Scope>,
    starts: u32,
    next_heads: Option<Time>,
}

/// How many memberships `ops` change, for the log's bound.
fn weight(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Join { serials, .. } => serials.len(),
            Op::Leave { serials, .. } => serials.len(),
            Op::Meta { .. } => 1,
        })
        .sum()
}

impl Scope {
    fn next_stamp(&mut self) -> u32 {
        if self.stamp == u32::MAX {
            // Once in four billion joins: number the memberships afresh,
            // in the same order.
            self.stamp = self.view.renumber();
        }
        self.stamp += 1;
        self.stamp
    }

    /// Whether a monitor watches `group` (or the whole scope).
    fn watched(&self, group: &Group) -> bool {
        self.monitors
            .values()
            .any(|filter| filter.as_ref().is_none_or(|g| g == group))
    }

    fn emit(
        &self,
        ctx: &mut Ctx<'_>,
        group: &Group,
        kind: PgEventKind,
        pids: Vec<Pid>,
        meta: Option<Bytes>,
    ) {
        if self.monitors.is_empty() || pids.is_empty() {
            return;
        }
        let event = PgEvent {
            scope: self.name.clone(),
            group: group.clone(),
            kind,
            pids,
            meta,
        };
        for (&sub, filter) in &self.monitors {
            if filter.as_ref().is_none_or(|g| g == group) {
                ctx.push(Effect::Pg(PgEffect::Event {
                    sub,
                    event: event.clone(),
                }));
            }
        }
    }

    /// Records local changes for the stream. They are held and go out
    /// together, as one delta, when the driver calls [`NodeCore::flush`]
    /// (asked for by [`Effect::Flush`]) or before anything else this node
    /// sends: a burst of joins costs one frame per batch, not per join.
    fn publish(&mut self, ctx: &mut Ctx<'_>, ops: impl IntoIterator<Item = Op>) {
        if self.pending.is_empty() {
            ctx.push(Effect::Flush);
        }
        self.pending.extend(ops);
        if self.pending.len() >= BATCH_MAX {
            self.flush(ctx);
        }
    }

    /// Sends the held changes to the subscribers as one delta and logs it.
    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.is_empty() {
            return;
        }
        let ops: Ops = Arc::new(std::mem::take(&mut self.pending));
        self.seq += 1;
        let frame = Frame::Pg(PgFrame::Delta {
            scope: self.name.clone(),
            stream: self.stream,
            seq: self.seq,
            ops: ops.clone(),
        });
        let subscribed = self
            .peers
            .iter()
            .filter(|(_, p)| p.subscribed)
            .map(|(n, _)| n);
        ctx.broadcast(subscribed, frame);
        self.logged += weight(&ops);
        self.log.push_back((self.seq, ops));
        while self.logged > LOG_CAP {
            let Some((_, old)) = self.log.pop_front() else {
                break;
            };
            self.logged -= weight(&old);
        }
    }

    /// Applies a change of a peer's entries to the view.
    fn apply(&mut self, ctx: &mut Ctx<'_>, origin: &NodeName, creation: u32, op: Op) {
        let pid = |s: u64| Pid::new(origin.clone(), creation, s);
        match op {
            Op::Join {
                group,
                serials,
                meta,
            } => {
                // Events only when someone watches: no list to build else.
                let watched = self.watched(&group);
                let mut pids = Vec::new();
                for s in serials {
                    let stamp = self.next_stamp();
                    let m = Member::of(origin, creation, s, stamp);
                    self.view.add(&group, m, meta.clone());
                    if watched {
                        pids.push(pid(s));
                    }
                }

                if watched {
                    self.emit(ctx, &group, PgEventKind::Join, pids, meta);
                }
            }
            Op::Leave { group, serials } => {
                let mut pids = Vec::new();
                for (s, n) in serials {
                    let p = pid(s);
                    for _ in 0..n {
                        if self.view.remove_one(&group, &p) {
                            pids.push(p.clone());
                        }
                    }
                }
                self.emit(ctx, &group, PgEventKind::Leave, pids, None);
            }
            Op::Meta {
                group,
                serial,
                meta,
            } => {
                let p = pid(serial);
                let n = self.view.members(&group).count(&p);
                if n > 0 {
                    self.view.set_meta(&group, &p, meta.clone());
                    self.emit(ctx, &group, PgEventKind::Meta, vec![p; n], meta);
                }
            }
        }
    }

    /// Removes everything of `origin` from the view, in one step per group.
    fn drop_origin(&mut self, ctx: &mut Ctx<'_>, origin: &NodeName) {
        if !self.peers.contains_key(origin) {
            return;
        }
        let mut groups = self.view.groups_of(origin);
        groups.sort();
        for g in groups {
            let removed = self.view.remove_node(&g, origin);
            self.emit(ctx, &g, PgEventKind::Leave, removed, None);
        }
    }

    /// Installs a complete snapshot of `origin`'s entries, reporting only
    /// the differences.
    fn install(
        &mut self,
        ctx: &mut Ctx<'_>,
        origin: &NodeName,
        creation: u32,
        groups: Vec<SyncGroup>,
    ) {
        let pid = |s: u64| Pid::new(origin.clone(), creation, s);
        let old = self.view.groups_of(origin);
        let mut new: BTreeMap<Group, Vec<(u64, u32, Option<Bytes>)>> = BTreeMap::new();
        for g in groups {
            new.entry(g.group).or_default().extend(g.members);
        }
        // Groups no longer listed: everything of origin leaves.
        let mut gone: Vec<Group> = old.into_iter().filter(|g| !new.contains_key(g)).collect();
        gone.sort();
        for g in gone {
            let removed = self.view.remove_node(&g, origin);
            self.emit(ctx, &g, PgEventKind::Leave, removed, None);
        }
        for (g, members) in new {
            let watched = self.watched(&g);
            let have = self.view.members(&g);
            let mut have_counts: BTreeMap<u64, (u32, Option<Bytes>)> = BTreeMap::new();
            for m in have.remote().iter().filter(|m| m.node() == origin) {
                let e = have_counts.entry(m.serial()).or_insert((0, None));
                e.0 += 1;
                if have.has_meta() {
                    e.1 = have.meta(&m.pid()).cloned();
                }
            }
            drop(have);
            let mut want: BTreeMap<u64, (u32, Option<Bytes>)> = BTreeMap::new();
            for (s, n, meta) in members {
                let e = want.entry(s).or_insert((0, None));
                e.0 += n;
                e.1 = meta;
            }
            for (s, (n, meta)) in &want {
                let (h, hmeta) = have_counts.remove(s).unwrap_or((0, None));
                if *n > h {
                    let p = pid(*s);
                    for _ in h..*n {
                        let stamp = self.next_stamp();
                        self.view
                            .add(&g, Member::new(p.clone(), stamp), meta.clone());
                    }
                    if watched {
                        let pids = vec![p; (*n - h) as usize];
                        self.emit(ctx, &g, PgEventKind::Join, pids, meta.clone());
                    }
                } else if *n < h {
                    let mut pids = Vec::new();
                    for _ in *n..h {
                        self.view.remove_one(&g, &pid(*s));
                        pids.push(pid(*s));
                    }
                    self.emit(ctx, &g, PgEventKind::Leave, pids, None);
                }
                if *n > 0 && h > 0 && hmeta != *meta {
                    self.view.set_meta(&g, &pid(*s), meta.clone());
                    self.emit(
                        ctx,
                        &g,
                        PgEventKind::Meta,
                        vec![pid(*s); *n as usize],
                        meta.clone(),
                    );
                }
            }
            for (s, (h, _)) in have_counts {
                let mut pids = Vec::new();
                for _ in 0..h {
                    self.view.remove_one(&g, &pid(s));
                    pids.push(pid(s));
                }
                self.emit(ctx, &g, PgEventKind::Leave, pids, None);
            }
        }
    }

    /// The snapshot frames of this node's own entries.
    fn snapshot(&self) -> Vec<PgFrame> {
        // One pass over each group's local members (never a lookup per
        // member: a 100,000-member group must not cost 100,000²).
        let mut names: BTreeMap<&Group, ()> = BTreeMap::new();
        for gs in self.local.values() {
            for g in gs.groups() {
                names.insert(g, ());
            }
        }
        let mut groups: BTreeMap<Group, BTreeMap<u64, (u32, Option<Bytes>)>> = BTreeMap::new();
        for g in names.into_keys() {
            let members = self.view.members(g);
            let entry = groups.entry(g.clone()).or_default();
            for m in members.local() {
                let e = entry.entry(m.pid().serial()).or_insert((0, None));
                e.0 += 1;
                if e.1.is_none() {
                    e.1 = members.meta(&m.pid()).cloned();
                }
            }
        }
        let mut frames = Vec::new();
        let mut part = Vec::new();
        let mut size = 0;
        for (group, members) in groups {
            size += members.len();
            part.push(SyncGroup {
                group,
                members: members.into_iter().map(|(s, (n, m))| (s, n, m)).collect(),
            });
            if size >= SYNC_CHUNK {
                frames.push(std::mem::take(&mut part));
                size = 0;
            }
        }
        frames.push(part);
        let last = frames.len() - 1;
        frames
            .into_iter()
            .enumerate()
            .map(|(i, groups)| PgFrame::Sync {
                scope: self.name.clone(),
                stream: self.stream,
                seq: self.seq,
                groups,
                more: i < last,
            })
            .collect()
    }

    /// Answers a `Discover`: the missing deltas, or a snapshot.
    fn catch_up(&self, ctx: &mut Ctx<'_>, node: &NodeName, have: Option<(u64, u64)>) {
        if let Some((stream, seq)) = have {
            let first_logged = self.log.front().map(|(s, _)| *s).unwrap_or(self.seq + 1);
            if stream == self.stream && seq <= self.seq && seq + 1 >= first_logged {
                let deltas: Vec<(u64, Ops)> =
                    self.log.iter().filter(|(s, _)| *s > seq).cloned().collect();
                if !deltas.is_empty() {
                    ctx.send(
                        node,
                        Frame::Pg(PgFrame::Catchup {
                            scope: self.name.clone(),
                            stream: self.stream,
                            deltas,
                        }),
                    );
                }
                return;
            }
        }
        for f in self.snapshot() {
            ctx.send(node, Frame::Pg(f));
        }
    }

    /// Applies one change of `node`'s stream if it is the next one; a gap
    /// or another stream asks again. `answer` marks changes that answer our
    /// own request (they clear the wait). Returns whether it applied.
    #[allow(clippy::too_many_arguments)]
    fn delta(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &NodeName,
        creation: u32,
        stream: u64,
        seq: u64,
        ops: Ops,
        answer: bool,
    ) -> bool {
        let Some(p) = self.peers.get(node).filter(|p| p.asked) else {
            debug!(peer = %node, scope = %self.name, "delta from a node that is not a peer of the scope; ignored");
            return false;
        };
        match p.cursor {
            Some((st, cur)) if st == stream && seq == cur + 1 => {
                let p = self.peers.get_mut(node).expect("present");
                p.cursor = Some((stream, seq));
                p.resyncing = false;
                // Unshared once decoded: no copy.
                for op in Arc::unwrap_or_clone(ops) {
                    self.apply(ctx, node, creation, op);
                }
                true
            }
            Some((st, cur)) if st == stream && seq <= cur => answer,
            // A snapshot or the missing changes are on their way.
            _ if !answer && (p.resyncing || !p.partial.is_empty()) => false,
            _ => {
                self.discover(ctx, node);
                false
            }
        }
    }

    fn discover(&mut self, ctx: &mut Ctx<'_>, node: &NodeName) {
        let p = self.peers.entry(node.clone()).or_default();
        p.asked = true;
        p.resyncing = true;
        let have = p.cursor;
        ctx.send(
            node,
            Frame::Pg(PgFrame::Discover {
                scope: self.name.clone(),
                have,
            }),
        );
    }
}

impl Pg {
    fn scope_mut(&mut self, name: &str) -> Result<&mut Scope, PgError> {
        self.scopes
            .get_mut(name)
            .ok_or_else(|| PgError::NoScope(name.into()))
    }

    /// Whether local changes are held, waiting for [`Pg::flush`].
    pub fn holds(&self) -> bool {
        self.scopes.values().any(|s| !s.pending.is_empty())
    }

    /// Sends every held change (one delta per scope).
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        for s in self.scopes.values_mut() {
            s.flush(ctx);
        }
    }

    /// Whether `scope` has heard from every peer it asked: each sent its
    /// snapshot (or the changes this node missed) or said that it does not
    /// run the scope. None when the scope is not running here.
    pub fn synced(&self, scope: &str) -> Option<bool> {
        let s = self.scopes.get(scope)?;
        Some(
            s.peers
                .values()
                .all(|p| !p.asked || (p.cursor.is_some() && p.partial.is_empty())),
        )
    }

    /// The published view of a running scope.
    pub fn view(&self, scope: &str) -> Option<Arc<ScopeView>> {
        self.scopes.get(scope).map(|s| s.view.clone())
    }

    /// The running scopes, in name order.
    pub fn scopes(&self) -> Vec<ScopeName> {
        self.scopes.keys().cloned().collect()
    }

    /// The stream cursor this node holds for `node` in `scope`, if any.
    pub fn cursor(&self, scope: &str, node: &NodeName) -> Option<(u64, u64)> {
        self.scopes.get(scope)?.peers.get(node)?.cursor
    }

    /// How many changes this node is behind the heads its peers last
    /// advertised, summed over scopes and peers (the sync lag).
    pub fn lag(&self) -> u64 {
        let mut lag = 0;
        for s in self.scopes.values() {
            for p in s.peers.values() {
                if let Some((stream, seq)) = p.advertised {
                    lag += match p.cursor {
                        Some((st, cur)) if st == stream => seq.saturating_sub(cur),
                        _ => seq,
                    };
                }
            }
        }
        lag
    }

    /// The scope's own stream and head.
    pub fn head(&self, scope: &str) -> Option<(u64, u64)> {
        self.scopes.get(scope).map(|s| (s.stream, s.seq))
    }

    /// Starts `scope` (if not running) and discovers it on every up peer.
    pub fn start_scope(&mut self, scope: &str, ctx: &mut Ctx<'_>) -> Arc<ScopeView> {
        self.start_scope_with(scope, Span::OwnGroup, ctx)
    }

    /// Whether `node` takes part in a scope of `span`.
    fn takes_part(span: Span, node: &NodeName, ctx: &Ctx<'_>) -> bool {
        match span {
            Span::OwnGroup => ctx.is_eligible(node),
            Span::Cluster => ctx.is_visible_peer(node),
        }
    }

    /// Starts `scope` replicating over `span` (if not running; a running
    /// scope keeps its span).
    pub fn start_scope_with(
        &mut self,
        scope: &str,
        span: Span,
        ctx: &mut Ctx<'_>,
    ) -> Arc<ScopeView> {
        if let Some(s) = self.scopes.get(scope) {
            return s.view.clone();
        }
        self.starts += 1;
        let name: ScopeName = scope.into();
        let mut s = Scope {
            name: name.clone(),
            span,
            stream: ((ctx.creation() as u64) << 32) | self.starts as u64,
            seq: 0,
            log: VecDeque::new(),
            logged: 0,
            pending: Vec::new(),
            view: Arc::new(ScopeView::new(ctx.me().clone())),
            local: HashMap::default(),
            peers: BTreeMap::new(),
            monitors: BTreeMap::new(),
            stamp: 0,
        };
        for (node, _) in ctx.all_peers() {
            if Self::takes_part(span, &node, ctx) {
                s.discover(ctx, &node);
            }
        }
        let view = s.view.clone();
        self.scopes.insert(name, s);
        if self.next_heads.is_none() {
            self.next_heads = Some(ctx.now + HEADS_INTERVAL);
        }
        view
    }

    /// Stops `scope`: its local memberships are lost, peers drop them, and
    /// this node forgets the remote ones. False when it was not running.
    pub fn stop_scope(&mut self, scope: &str, ctx: &mut Ctx<'_>) -> bool {
        let Some(s) = self.scopes.remove(scope) else {
            return false;
        };
        for node in s.peers.keys() {
            ctx.send(
                node,
                Frame::Pg(PgFrame::Stopped {
                    scope: s.name.clone(),
                }),
            );
        }
        s.view.clear();
        true
    }

    /// Adds local `pids` to `group` (each once more); all or nothing.
    pub fn join(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        meta: Option<Bytes>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        let s = self.scope_mut(scope)?;
        for p in pids {
            if p.node() != ctx.me() {
                return Err(PgError::NotLocal(p.clone()));
            }
            if !ctx.is_local_alive(p) {
                return Err(PgError::NoProc(p.clone()));
            }
        }
        if pids.is_empty() {
            return Ok(());
        }
        // Stamps first + 1 ..= first + n (renumbered first if they would wrap).
        if s.stamp.checked_add(pids.len() as u32).is_none() {
            s.stamp = s.view.renumber();
        }
        let first = s.stamp;
        let members = pids
            .iter()
            .enumerate()
            .map(|(i, p)| Member::new(p.clone(), first + 1 + i as u32));
        let group = s.view.add_by_name(group, members, meta.clone());
        s.stamp = first + pids.len() as u32;
        for p in pids {
            match s.local.entry(p.serial()) {
                Entry::Occupied(mut e) => e.get_mut().add(&group),
                Entry::Vacant(e) => {
                    e.insert(Joined::One(group.clone(), 1));
                }
            }
        }
        if s.watched(&group) {
            s.emit(ctx, &group, PgEventKind::Join, pids.to_vec(), meta.clone());
        }
        let serials = pids.iter().map(Pid::serial).collect();
        s.publish(
            ctx,
            [Op::Join {
                group,
                serials,
                meta,
            }],
        );
        Ok(())
    }

    /// Removes one membership of each joined pid; `NotJoined` when none had joined.
    pub fn leave(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        let s = self.scope_mut(scope)?;
        for p in pids {
            if p.node() != ctx.me() {
                return Err(PgError::NotLocal(p.clone()));
            }
        }
        let mut left = Vec::new();
        for p in pids {
            let Some(gs) = s.local.get_mut(&p.serial()) else {
                continue;
            };
            if !gs.remove_one(group) {
                continue;
            }
            if gs.is_empty() {
                s.local.remove(&p.serial());
            }
            s.view.remove_one(group, p);
            left.push(p.clone());
        }
        if left.is_empty() {
            return Err(PgError::NotJoined);
        }
        let group: Group = group.into();
        let serials = left.iter().map(|p| (p.serial(), 1)).collect();
        s.emit(ctx, &group, PgEventKind::Leave, left, None);
        s.publish(ctx, [Op::Leave { group, serials }]);
        Ok(())
    }

    /// Replaces the metadata of `pid`'s memberships in `group`.
    pub fn update_meta(
        &mut self,
        scope: &str,
        group: &str,
        pid: &Pid,
        meta: Option<Bytes>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        let s = self.scope_mut(scope)?;
        if pid.node() != ctx.me() {
            return Err(PgError::NotLocal(pid.clone()));
        }
        let n = s
            .local
            .get(&pid.serial())
            .map(|gs| gs.count(group))
            .unwrap_or(0);
        if n == 0 {
            return Err(PgError::NotJoined);
        }
        let group: Group = group.into();
        s.view.set_meta(&group, pid, meta.clone());
        s.emit(
            ctx,
            &group,
            PgEventKind::Meta,
            vec![pid.clone(); n as usize],
            meta.clone(),
        );
        s.publish(
            ctx,
            vec![Op::Meta {
                group,
                serial: pid.serial(),
                meta,
            }],
        );
        Ok(())
    }

    /// Subscribes `sub` to a scope's (or one group's) changes; returns the
    /// current members as the starting snapshot, in group order.
    pub fn monitor(
        &mut self,
        scope: &str,
        group: Option<&str>,
        sub: u64,
    ) -> Result<Vec<(Group, Vec<Pid>)>, PgError> {
        let s = self.scope_mut(scope)?;
        s.monitors.insert(sub, group.map(Group::from));
        let groups = match group {
            Some(g) => vec![Group::from(g)],
            None => {
                let mut all = s.view.which_groups();
                all.sort();
                all
            }
        };
        Ok(groups
            .into_iter()
            .map(|g| {
                let pids = s.view.members(&g).to_vec();
                (g, pids)
            })
            .filter(|(_, p)| !p.is_empty())
            .collect())
    }

    /// Ends a subscription.
    pub fn demonitor(&mut self, scope: &str, sub: u64) -> bool {
        self.scopes
            .get_mut(scope)
            .is_some_and(|s| s.monitors.remove(&sub).is_some())
    }

    /// `node` now takes part in own-group scopes: discover them on it.
    pub fn peer_up(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        self.span_up(Span::OwnGroup, node, creation, ctx);
    }

    /// `node` no longer takes part in own-group scopes: everything it owned
    /// there goes, at once.
    pub fn peer_down(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        self.span_down(Span::OwnGroup, node, creation, ctx);
    }

    /// A session with `node` is up: discover cluster-wide scopes on it.
    pub fn session_up(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        if ctx.is_visible_peer(node) {
            self.span_up(Span::Cluster, node, creation, ctx);
        }
    }

    /// The session with `node` ended: cluster-wide scopes drop its entries.
    pub fn session_down(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        self.span_down(Span::Cluster, node, creation, ctx);
    }

    fn span_up(&mut self, span: Span, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        let _ = creation;
        // Snapshots and cursors refer to sent changes only.
        self.flush(ctx);
        for s in self.scopes.values_mut().filter(|s| s.span == span) {
            s.discover(ctx, node);
            // Push our entries at once instead of waiting for the peer's
            // Discover: its answer would queue behind whatever else the
            // session carries first (a large name snapshot, say). The
            // session is ordered, so the peer has asked by the time it
            // reads this; its Discover is then answered with the changes
            // since this snapshot only.
            for f in s.snapshot() {
                ctx.send(node, Frame::Pg(f));
            }
            s.peers.entry(node.clone()).or_default().pushed = Some(s.seq);
        }
    }

    fn span_down(&mut self, span: Span, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        let _ = creation;
        self.flush(ctx);
        for s in self.scopes.values_mut().filter(|s| s.span == span) {
            s.drop_origin(ctx, node);
            s.peers.remove(node);
        }
    }

    /// A process-group frame from an up peer. Frames for a scope the sender
    /// does not take part in (another global group, a hidden session) are
    /// ignored.
    pub fn frame(&mut self, node: &NodeName, creation: u32, frame: PgFrame, ctx: &mut Ctx<'_>) {
        // Answers (snapshots, catch-ups) refer to sent changes only.
        self.flush(ctx);
        let scope = match &frame {
            PgFrame::Discover { scope, .. }
            | PgFrame::Sync { scope, .. }
            | PgFrame::Delta { scope, .. }
            | PgFrame::Catchup { scope, .. }
            | PgFrame::Heads { scope, .. }
            | PgFrame::Stopped { scope } => scope,
        };
        match self.scopes.get(scope) {
            Some(s) if Self::takes_part(s.span, node, ctx) => {}
            Some(_) => {
                debug!(peer = %node, %scope, "process-group frame from a node outside the scope's span; ignored");
                return;
            }
            None => {
                // Tell an asker that this node does not run the scope, so
                // it knows it has heard from everyone (see `Pg::synced`)
                // instead of waiting for a snapshot that never comes.
                if let PgFrame::Discover { scope, .. } = frame {
                    ctx.send(node, Frame::Pg(PgFrame::Stopped { scope }));
                }
                return;
            }
        }
        match frame {
            PgFrame::Discover { scope, have } => {
                let Some(s) = self.scopes.get_mut(&scope) else {
                    return;
                };
                let p = s.peers.entry(node.clone()).or_default();
                p.subscribed = true;
                let asked = p.asked;
                let pushed = p.pushed.take();
                let have = match (have, pushed) {
                    (None, Some(seq)) => Some((s.stream, seq)),
                    (have, _) => have,
                };
                s.catch_up(ctx, node, have);
                if !asked {
                    s.discover(ctx, node);
                }
            }
            PgFrame::Sync {
                scope,
                stream,
                seq,
                groups,
                more,
            } => {
                let Some(s) = self.scopes.get_mut(&scope) else {
                    return;
                };
                let Some(p) = s.peers.get_mut(node).filter(|p| p.asked) else {
                    debug!(peer = %node, %scope, "snapshot from a node that is not a peer of the scope; ignored");
                    return;
                };
                p.partial.extend(groups);
                if more {
                    return;
                }
                let groups = std::mem::take(&mut p.partial);
                p.cursor = Some((stream, seq));
                p.resyncing = false;
                s.install(ctx, node, creation, groups);
            }
            PgFrame::Delta {
                scope,
                stream,
                seq,
                ops,
            } => {
                if let Some(s) = self.scopes.get_mut(&scope) {
                    s.delta(ctx, node, creation, stream, seq, ops, false);
                }
            }
            PgFrame::Catchup {
                scope,
                stream,
                deltas,
            } => {
                if let Some(s) = self.scopes.get_mut(&scope) {
                    for (seq, ops) in deltas {
                        if !s.delta(ctx, node, creation, stream, seq, ops, true) {
                            break;
                        }
                    }
                }
            }
            PgFrame::Heads { scope, stream, seq } => {
                let Some(s) = self.scopes.get_mut(&scope) else {
                    return;
                };
                if let Some(p) = s.peers.get_mut(node) {
                    p.advertised = Some((stream, seq));
                }
                let Some(p) = s.peers.get(node).filter(|p| p.asked) else {
                    return;
                };
                let behind = match p.cursor {
                    Some((st, cur)) => st != stream || cur < seq,
                    None => true,
                };
                if behind && !p.resyncing && p.partial.is_empty() {
                    s.discover(ctx, node);
                }
            }
            PgFrame::Stopped { scope } => {
                let Some(s) = self.scopes.get_mut(&scope) else {
                    return;
                };
                s.drop_origin(ctx, node);
                s.peers.remove(node);
            }
        }
    }

    /// A local process ended: its memberships vanish here and everywhere.
    pub fn exited(&mut self, pid: &Pid, reason: &ExitReason, ctx: &mut Ctx<'_>) {
        let _ = reason;
        for s in self.scopes.values_mut() {
            let Some(gs) = s.local.remove(&pid.serial()) else {
                continue;
            };
            let gs = gs.into_sorted();
            let mut ops = Vec::with_capacity(gs.len());
            for (g, n) in gs {
                let mut pids = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    s.view.remove_one(&g, pid);
                    pids.push(pid.clone());
                }
                s.emit(ctx, &g, PgEventKind::Leave, pids, None);
                ops.push(Op::Leave {
                    group: g,
                    serials: smallvec::smallvec![(pid.serial(), n)],
                });
            }
            s.publish(ctx, ops);
        }
    }

    /// Advertises stream heads.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        let Some(t) = self.next_heads else { return };
        if ctx.now < t {
            return;
        }
        self.next_heads = (!self.scopes.is_empty()).then(|| ctx.now + HEADS_INTERVAL);
        for s in self.scopes.values() {
            let f = Frame::Pg(PgFrame::Heads {
                scope: s.name.clone(),
                stream: s.stream,
                seq: s.seq,
            });
            for (node, p) in &s.peers {
                if p.subscribed {
                    ctx.send(node, f.clone());
                }
            }
        }
    }

    /// When [`Pg::timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Time> {
        self.next_heads
    }
}

/// The process-group API of the node core.
impl NodeCore {
    /// Starts a scope (idempotent); returns its published view.
    pub fn pg_start_scope(&mut self, scope: &str, now: Time) -> Arc<ScopeView> {
        self.with_pg(now, |pg, ctx| pg.start_scope(scope, ctx))
    }

    /// Starts a scope replicating over `span` (idempotent).
    pub fn pg_start_scope_with(&mut self, scope: &str, span: Span, now: Time) -> Arc<ScopeView> {
        self.with_pg(now, |pg, ctx| pg.start_scope_with(scope, span, ctx))
    }

    /// Stops a scope.
    pub fn pg_stop_scope(&mut self, scope: &str, now: Time) -> bool {
        self.with_pg(now, |pg, ctx| pg.stop_scope(scope, ctx))
    }

    /// Joins local `pids` to `group` in `scope`.
    pub fn pg_join(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        meta: Option<Bytes>,
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.join(scope, group, pids, meta, ctx))
    }

    /// Removes one membership of each of `pids` from `group`.
    pub fn pg_leave(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.leave(scope, group, pids, ctx))
    }

    /// Updates the metadata of a local pid's memberships.
    pub fn pg_update_meta(
        &mut self,
        scope: &str,
        group: &str,
        pid: &Pid,
        meta: Option<Bytes>,
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.update_meta(scope, group, pid, meta, ctx))
    }

    /// Subscribes to changes of a scope or group.
    pub fn pg_monitor(
        &mut self,
        scope: &str,
        group: Option<&str>,
        sub: u64,
    ) -> Result<Vec<(Group, Vec<Pid>)>, PgError> {
        self.pg.monitor(scope, group, sub)
    }

    /// Ends a subscription.
    pub fn pg_demonitor(&mut self, scope: &str, sub: u64) -> bool {
        self.pg.demonitor(scope, sub)
    }
}
