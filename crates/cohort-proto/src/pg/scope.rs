//! One replicated scope on one node: its own stream of changes (numbered,
//! batched, logged for catch-up), what it holds of each peer's stream, and
//! how snapshots, catch-ups and deltas are applied to its view.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::error::PgError;
use super::event::{PgEffect, PgEvent, PgEventKind};
use super::joined::Joined;
use super::log::{op_size, DeltaLog};
use super::view::{Group, Member, ScopeView};
use super::wire::{Op, Ops, PgFrame, ScopeName, SyncGroup};
use crate::ctx::Ctx;
use crate::effect::Effect;
use crate::hash::FixedHasher;
use crate::pid::{NodeName, Pid};
use crate::proto::Frame;

/// Held local changes are sent at once when this many have gathered.
const BATCH_MAX: usize = 1024;

/// Largest number of memberships in one snapshot frame.
const SYNC_CHUNK: usize = 50_000;

/// Which nodes a scope replicates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Span {
    /// The own global group's synced nodes (every node without global
    /// groups): the default, like names.
    #[default]
    OwnGroup,
    /// Every node with a visible session, across global groups (hidden
    /// sessions never replicate).
    Cluster,
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
    /// The head we last advertised to it: a head goes out only after it
    /// moved, so an idle scope sends nothing.
    head_told: Option<(u64, u64)>,
    /// We pushed our snapshot at this head when the session came up; the
    /// peer's first `Discover` then needs only what changed since.
    pushed: Option<u64>,
}

/// One scope on one node.
#[derive(Debug)]
pub(super) struct Scope {
    name: ScopeName,
    span: Span,
    stream: u64,
    seq: u64,
    /// Recent deltas of this node's stream, for catch-up.
    log: DeltaLog,
    /// Local changes not sent yet (see [`Scope::publish`]).
    held: Vec<Op>,
    /// Bytes of `held` (see [`op_size`]).
    held_bytes: usize,
    /// Bytes of entries per frame: deltas, catch-ups and snapshot parts
    /// stay under it (half the max frame size).
    pub(super) chunk: usize,
    view: Arc<ScopeView>,
    /// Memberships of local processes: serial → group → count.
    local: HashMap<u64, Joined, FixedHasher>,
    peers: BTreeMap<NodeName, PeerScope>,
    /// Monitor subscriptions: id → group (None: the whole scope).
    monitors: BTreeMap<u64, Option<Group>>,
    stamp: u32,
}

impl Scope {
    /// A scope just started on this node, numbering its changes in
    /// `stream`; `me` is this node.
    pub(super) fn new(name: ScopeName, span: Span, stream: u64, me: NodeName) -> Self {
        Scope {
            name,
            span,
            stream,
            seq: 0,
            log: DeltaLog::default(),
            held: Vec::new(),
            held_bytes: 0,
            chunk: crate::proto::DEFAULT_MAX_FRAME / 2,
            view: Arc::new(ScopeView::new(me)),
            local: HashMap::default(),
            peers: BTreeMap::new(),
            monitors: BTreeMap::new(),
            stamp: 0,
        }
    }

    /// Which nodes the scope replicates with.
    pub(super) fn span(&self) -> Span {
        self.span
    }

    /// The published view.
    pub(super) fn view(&self) -> &Arc<ScopeView> {
        &self.view
    }

    /// The own stream and its head.
    pub(super) fn head(&self) -> (u64, u64) {
        (self.stream, self.seq)
    }

    /// Whether local changes are held, waiting for [`Scope::flush`].
    pub(super) fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether every peer asked has answered (see `Pg::synced`).
    pub(super) fn synced(&self) -> bool {
        self.peers
            .values()
            .all(|p| !p.asked || (p.cursor.is_some() && p.partial.is_empty()))
    }

    /// The cursor held for `node`'s stream, if any.
    pub(super) fn cursor(&self, node: &NodeName) -> Option<(u64, u64)> {
        self.peers.get(node)?.cursor
    }

    /// How many changes this scope is behind the heads its peers last
    /// advertised.
    pub(super) fn lag(&self) -> u64 {
        let mut lag = 0;
        for p in self.peers.values() {
            if let Some((stream, seq)) = p.advertised {
                lag += match p.cursor {
                    Some((st, cur)) if st == stream => seq.saturating_sub(cur),
                    _ => seq,
                };
            }
        }
        lag
    }

    /// How many changes this scope is behind the head `node` last
    /// advertised.
    pub(super) fn lag_of(&self, node: &NodeName) -> u64 {
        match self.peers.get(node) {
            Some(p) => match (p.advertised, p.cursor) {
                (Some((stream, seq)), Some((st, cur))) if st == stream => seq.saturating_sub(cur),
                (Some((_, seq)), _) => seq,
                (None, _) => 0,
            },
            None => 0,
        }
    }

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
        // The last subscriber gets the event itself: one watcher (the
        // usual case) costs no copy of the pid list.
        let mut subs = self
            .monitors
            .iter()
            .filter(|(_, filter)| filter.as_ref().is_none_or(|g| g == group))
            .map(|(&sub, _)| sub)
            .peekable();
        while let Some(sub) = subs.next() {
            let event = if subs.peek().is_some() {
                event.clone()
            } else {
                return ctx.push(Effect::Pg(PgEffect::Event { sub, event }));
            };
            ctx.push(Effect::Pg(PgEffect::Event { sub, event }));
        }
    }

    /// Records local changes for the stream. They are held and go out
    /// together, as one delta, when the node's timer comes due (see
    /// [`FLUSH_REST`](crate::FLUSH_REST)) or before anything else this node
    /// sends: a burst of joins costs one frame per batch, not per join.
    fn publish(&mut self, ctx: &mut Ctx<'_>, ops: impl IntoIterator<Item = Op>) {
        for op in ops {
            let n = op_size(&op);
            // A delta stays under the frame budget: go before it would not.
            if self.held_bytes > 0 && self.held_bytes + n > self.chunk {
                self.flush(ctx);
            }
            self.held_bytes += n;
            self.held.push(op);
        }
        if self.held.len() >= BATCH_MAX {
            self.flush(ctx);
        }
    }

    /// Sends the held changes to the subscribers as one delta and logs it.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_>) {
        if self.held.is_empty() {
            return;
        }
        let ops: Ops = Arc::new(std::mem::take(&mut self.held));
        self.held_bytes = 0;
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
        self.log.push(self.seq, ops);
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
            let watched = self.watched(&g);
            let (_, removed) = self.view.remove_node(&g, origin, watched);
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
        // A count is a few bytes for any number of memberships: refuse a
        // snapshot whose counts pass the limit before expanding any.
        let mut counts: BTreeMap<(&str, u64), u32> = BTreeMap::new();
        for g in &groups {
            for (s, n, _) in &g.members {
                let c = counts.entry((&*g.group, *s)).or_insert(0);
                *c = c.saturating_add(*n);
                if *c > crate::limits::MAX_JOINS {
                    warn!(peer = %origin, scope = %self.name, group = %g.group,
                        "snapshot with more than {} memberships of one process in a group; ignored", crate::limits::MAX_JOINS);
                    return;
                }
            }
        }
        drop(counts);
        let old = self.view.groups_of(origin);
        let mut new: BTreeMap<Group, Vec<(u64, u32, Option<Bytes>)>> = BTreeMap::new();
        for g in groups {
            new.entry(g.group).or_default().extend(g.members);
        }
        // Groups no longer listed: everything of origin leaves.
        let mut gone: Vec<Group> = old.into_iter().filter(|g| !new.contains_key(g)).collect();
        gone.sort();
        for g in gone {
            let watched = self.watched(&g);
            let (_, removed) = self.view.remove_node(&g, origin, watched);
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
                e.0 = e.0.saturating_add(n);
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
        // Parts of at most SYNC_CHUNK memberships and `chunk` bytes; a
        // large group is split over several parts (the receiver merges).
        let mut frames = Vec::new();
        let mut part: Vec<SyncGroup> = Vec::new();
        let (mut count, mut size) = (0, 0);
        for (group, members) in groups {
            let mut open = false;
            for (s, (n, m)) in members {
                let bytes = 16 + m.as_ref().map_or(0, |m| m.len());
                let head = if open { 0 } else { group.len() + 8 };
                if count > 0 && (count >= SYNC_CHUNK || size + head + bytes > self.chunk) {
                    frames.push(std::mem::take(&mut part));
                    (count, size, open) = (0, 0, false);
                }
                if !open {
                    part.push(SyncGroup {
                        group: group.clone(),
                        members: Vec::new(),
                    });
                    size += group.len() + 8;
                    open = true;
                }
                count += 1;
                size += bytes;
                part.last_mut().expect("open group").members.push((s, n, m));
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
            let first_logged = self.log.first(self.seq + 1);
            if stream == self.stream && seq <= self.seq && seq + 1 >= first_logged {
                // In parts under the frame budget, in order.
                let mut parts: Vec<Vec<(u64, Ops)>> = vec![Vec::new()];
                let mut size = 0;
                for (s, ops, n) in self.log.after(seq) {
                    let n = n + 10;
                    if size > 0 && size + n > self.chunk {
                        parts.push(Vec::new());
                        size = 0;
                    }
                    size += n;
                    parts.last_mut().expect("one part").push((s, ops.clone()));
                }
                for deltas in parts.into_iter().filter(|d| !d.is_empty()) {
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

    /// Asks `node` for its entries after the cursor held for it.
    pub(super) fn discover(&mut self, ctx: &mut Ctx<'_>, node: &NodeName) {
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

    /// `node` takes part in the scope now: discover it and push our
    /// entries.
    pub(super) fn peer_up(&mut self, ctx: &mut Ctx<'_>, node: &NodeName) {
        self.discover(ctx, node);
        // Push our entries at once instead of waiting for the peer's
        // Discover: its answer would queue behind whatever else the
        // session carries first (a large name snapshot, say). The
        // session is ordered, so the peer has asked by the time it
        // reads this; its Discover is then answered with the changes
        // since this snapshot only.
        for f in self.snapshot() {
            ctx.send(node, Frame::Pg(f));
        }
        self.peers.entry(node.clone()).or_default().pushed = Some(self.seq);
    }

    /// `node` no longer takes part (down, out of the span, or it stopped
    /// the scope): its entries go at once, and so does what we held of it.
    pub(super) fn peer_down(&mut self, ctx: &mut Ctx<'_>, node: &NodeName) {
        self.drop_origin(ctx, node);
        self.peers.remove(node);
    }

    /// A frame of this scope from `node` (of creation `creation`), a node
    /// that takes part in it.
    pub(super) fn receive(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &NodeName,
        creation: u32,
        frame: PgFrame,
    ) {
        match frame {
            PgFrame::Discover { scope: _, have } => {
                let p = self.peers.entry(node.clone()).or_default();
                p.subscribed = true;
                let asked = p.asked;
                let pushed = p.pushed.take();
                let have = match (have, pushed) {
                    (None, Some(seq)) => Some((self.stream, seq)),
                    (have, _) => have,
                };
                self.catch_up(ctx, node, have);
                if !asked {
                    self.discover(ctx, node);
                }
            }
            PgFrame::Sync {
                scope,
                stream,
                seq,
                groups,
                more,
            } => {
                let Some(p) = self.peers.get_mut(node).filter(|p| p.asked) else {
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
                self.install(ctx, node, creation, groups);
            }
            PgFrame::Delta {
                scope: _,
                stream,
                seq,
                ops,
            } => {
                self.delta(ctx, node, creation, stream, seq, ops, false);
            }
            PgFrame::Catchup {
                scope: _,
                stream,
                deltas,
            } => {
                for (seq, ops) in deltas {
                    if !self.delta(ctx, node, creation, stream, seq, ops, true) {
                        break;
                    }
                }
            }
            PgFrame::Heads {
                scope: _,
                stream,
                seq,
            } => {
                if let Some(p) = self.peers.get_mut(node) {
                    p.advertised = Some((stream, seq));
                }
                let Some(p) = self.peers.get(node).filter(|p| p.asked) else {
                    return;
                };
                let behind = match p.cursor {
                    Some((st, cur)) => st != stream || cur < seq,
                    None => true,
                };
                if behind && !p.resyncing && p.partial.is_empty() {
                    self.discover(ctx, node);
                }
            }
            PgFrame::Stopped { scope: _ } => self.peer_down(ctx, node),
        }
    }

    /// Sends the stream head to every subscriber it moved for since the
    /// last head (a delta shed on a congested session is then noticed
    /// within a head interval; an idle scope sends nothing).
    pub(super) fn advertise_head(&mut self, ctx: &mut Ctx<'_>) {
        let head = (self.stream, self.seq);
        let f = Frame::Pg(PgFrame::Heads {
            scope: self.name.clone(),
            stream: head.0,
            seq: head.1,
        });
        for (node, p) in &mut self.peers {
            if p.subscribed && p.head_told != Some(head) {
                p.head_told = Some(head);
                ctx.send(node, f.clone());
            }
        }
    }

    /// Stops the scope: peers drop its entries, this node forgets the
    /// remote ones.
    pub(super) fn stop(self, ctx: &mut Ctx<'_>) {
        for node in self.peers.keys() {
            ctx.send(
                node,
                Frame::Pg(PgFrame::Stopped {
                    scope: self.name.clone(),
                }),
            );
        }
        self.view.clear();
    }

    /// Adds local `pids` to `group` (each once more); all or nothing.
    pub(super) fn join(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        pids: &[Pid],
        meta: Option<Bytes>,
    ) -> Result<(), PgError> {
        for p in pids {
            if p.node() != ctx.me() {
                return Err(PgError::NotLocal(p.clone()));
            }
            if !ctx.is_local_alive(p) {
                return Err(PgError::NoProc(p.clone()));
            }
        }
        for p in pids {
            let have = self.local.get(&p.serial()).map_or(0, |j| j.count(group));
            let more = pids.iter().filter(|q| *q == p).count() as u32;
            if have.saturating_add(more) > crate::limits::MAX_JOINS {
                return Err(PgError::TooManyJoins(p.clone()));
            }
        }
        if pids.is_empty() {
            return Ok(());
        }
        // Stamps first + 1 ..= first + n (renumbered first if they would wrap).
        if self.stamp.checked_add(pids.len() as u32).is_none() {
            self.stamp = self.view.renumber();
        }
        let first = self.stamp;
        let members = pids
            .iter()
            .enumerate()
            .map(|(i, p)| Member::new(p.clone(), first + 1 + i as u32));
        let group = self.view.add_by_name(group, members, meta.clone());
        self.stamp = first + pids.len() as u32;
        for p in pids {
            match self.local.entry(p.serial()) {
                Entry::Occupied(mut e) => e.get_mut().add(&group),
                Entry::Vacant(e) => {
                    e.insert(Joined::One(group.clone(), 1));
                }
            }
        }
        if self.watched(&group) {
            self.emit(ctx, &group, PgEventKind::Join, pids.to_vec(), meta.clone());
        }
        let serials = pids.iter().map(Pid::serial).collect();
        self.publish(
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
    pub(super) fn leave(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        pids: &[Pid],
    ) -> Result<(), PgError> {
        for p in pids {
            if p.node() != ctx.me() {
                return Err(PgError::NotLocal(p.clone()));
            }
        }
        let mut left = Vec::new();
        for p in pids {
            let Some(gs) = self.local.get_mut(&p.serial()) else {
                continue;
            };
            if !gs.remove_one(group) {
                continue;
            }
            if gs.is_empty() {
                self.local.remove(&p.serial());
            }
            self.view.remove_one(group, p);
            left.push(p.clone());
        }
        if left.is_empty() {
            return Err(PgError::NotJoined);
        }
        let group: Group = group.into();
        let serials = left.iter().map(|p| (p.serial(), 1)).collect();
        self.emit(ctx, &group, PgEventKind::Leave, left, None);
        self.publish(ctx, [Op::Leave { group, serials }]);
        Ok(())
    }

    /// Replaces the metadata of `pid`'s memberships in `group`.
    pub(super) fn update_meta(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        pid: &Pid,
        meta: Option<Bytes>,
    ) -> Result<(), PgError> {
        if pid.node() != ctx.me() {
            return Err(PgError::NotLocal(pid.clone()));
        }
        let n = self
            .local
            .get(&pid.serial())
            .map(|gs| gs.count(group))
            .unwrap_or(0);
        if n == 0 {
            return Err(PgError::NotJoined);
        }
        let group: Group = group.into();
        self.view.set_meta(&group, pid, meta.clone());
        self.emit(
            ctx,
            &group,
            PgEventKind::Meta,
            vec![pid.clone(); n as usize],
            meta.clone(),
        );
        self.publish(
            ctx,
            vec![Op::Meta {
                group,
                serial: pid.serial(),
                meta,
            }],
        );
        Ok(())
    }

    /// A local process ended: its memberships here vanish, here and on
    /// every peer.
    pub(super) fn exited(&mut self, ctx: &mut Ctx<'_>, pid: &Pid) {
        let Some(gs) = self.local.remove(&pid.serial()) else {
            return;
        };
        let gs = gs.into_sorted();
        let mut ops = Vec::with_capacity(gs.len());
        for (g, n) in gs {
            let mut pids = Vec::with_capacity(n as usize);
            for _ in 0..n {
                self.view.remove_one(&g, pid);
                pids.push(pid.clone());
            }
            self.emit(ctx, &g, PgEventKind::Leave, pids, None);
            ops.push(Op::Leave {
                group: g,
                serials: smallvec::smallvec![(pid.serial(), n)],
            });
        }
        self.publish(ctx, ops);
    }

    /// Subscribes `sub` to the scope's (or one group's) changes; returns
    /// the current members as the starting snapshot, in group order.
    pub(super) fn monitor(&mut self, group: Option<&str>, sub: u64) -> Vec<(Group, Vec<Pid>)> {
        self.monitors.insert(sub, group.map(Group::from));
        let groups = match group {
            Some(g) => vec![Group::from(g)],
            None => {
                let mut all = self.view.which_groups();
                all.sort();
                all
            }
        };
        groups
            .into_iter()
            .map(|g| {
                let pids = self.view.members(&g).to_vec();
                (g, pids)
            })
            .filter(|(_, p)| !p.is_empty())
            .collect()
    }

    /// Ends a subscription; false when there was none.
    pub(super) fn demonitor(&mut self, sub: u64) -> bool {
        self.monitors.remove(&sub).is_some()
    }
}
