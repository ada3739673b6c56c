//! The read side of a scope: a concurrent map from group to an immutable
//! member list, published by the scope's single writer and read by anyone
//! without taking the node's lock.
//!
//! A group's members live in an `Arc<GroupView>`. The writer changes it with
//! `Arc::make_mut`: in place when no reader holds the old version (the usual
//! case), by copy when one does. A reader clones the `Arc` and keeps a
//! consistent snapshot for as long as it likes, so reading a large group
//! never copies it member by member.
//!
//! Removal is O(1): members are an unordered bag (swap-remove), join order
//! is kept as a stamp per membership, and groups larger than
//! [`INDEX_FROM`] members carry a pid → positions index. A mass exit from a
//! group of 100,000 members therefore costs 100,000 small steps, not
//! 100,000 scans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use rand::Rng;

use crate::hash::FixedHasher;
use crate::pid::{NodeName, Pid};

/// A group name.
pub type Group = Arc<str>;

/// One membership: a pid and the order in which this node applied the join
/// (for oldest/newest). Its metadata, rare, lives beside the list
/// ([`Members::meta`]); a membership is 24 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    node: NodeName,
    serial: u64,
    creation: u32,
    /// Join order on this node; renumbered (order kept) before it wraps.
    stamp: u32,
}

impl Member {
    pub(crate) fn of(node: &NodeName, creation: u32, serial: u64, stamp: u32) -> Self {
        Member {
            node: node.clone(),
            serial,
            creation,
            stamp,
        }
    }

    pub(crate) fn new(pid: Pid, stamp: u32) -> Self {
        Member {
            node: pid.node().clone(),
            serial: pid.serial(),
            creation: pid.creation(),
            stamp,
        }
    }

    /// The member process.
    pub fn pid(&self) -> Pid {
        Pid::new(self.node.clone(), self.creation, self.serial)
    }

    /// The member's node.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The member's serial number on its node.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether this is a membership of `pid`.
    pub fn is(&self, pid: &Pid) -> bool {
        self.serial == pid.serial() && self.creation == pid.creation() && &self.node == pid.node()
    }
}

/// Groups with at least this many memberships on one side keep a
/// pid → positions index so that removals need no scan.
pub const INDEX_FROM: usize = 64;

/// Below this length a member list grows two slots at a time, so that the
/// many small groups of a typical scope carry little unused capacity; above
/// it by half its length.
const SMALL: usize = 16;

/// Positions of one pid's memberships in a member list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pos {
    One(u32),
    Many(Vec<u32>),
}

/// What only some member lists need: the index of a large list and the
/// metadata of the pids that have any.
#[derive(Debug, Clone, Default)]
struct BagExtra {
    index: Option<HashMap<Pid, Pos, FixedHasher>>,
    meta: HashMap<Pid, Bytes, FixedHasher>,
}

/// A member list: an unordered bag with O(1) removal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bag {
    items: Vec<Member>,
    extra: Option<Box<BagExtra>>,
}

impl PartialEq for Bag {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items && self.meta_map() == other.meta_map()
    }
}

impl Eq for Bag {}

impl Bag {
    fn index(&self) -> Option<&HashMap<Pid, Pos, FixedHasher>> {
        self.extra.as_ref()?.index.as_ref()
    }

    fn meta_map(&self) -> Option<&HashMap<Pid, Bytes, FixedHasher>> {
        self.extra
            .as_ref()
            .map(|e| &e.meta)
            .filter(|m| !m.is_empty())
    }

    fn extra_mut(&mut self) -> &mut BagExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Drops the side structures once they hold nothing.
    fn tidy(&mut self) {
        if self
            .extra
            .as_ref()
            .is_some_and(|e| e.index.is_none() && e.meta.is_empty())
        {
            self.extra = None;
        }
    }

    fn index_add(index: &mut HashMap<Pid, Pos, FixedHasher>, pid: &Pid, at: u32) {
        match index.get_mut(pid) {
            None => {
                index.insert(pid.clone(), Pos::One(at));
            }
            Some(Pos::One(p)) => {
                let first = *p;
                index.insert(pid.clone(), Pos::Many(vec![first, at]));
            }
            Some(Pos::Many(v)) => v.push(at),
        }
    }

    fn build_index(&mut self) {
        let mut index = HashMap::with_capacity_and_hasher(self.items.len(), FixedHasher::default());
        for (i, m) in self.items.iter().enumerate() {
            Self::index_add(&mut index, &m.pid(), i as u32);
        }
        self.extra_mut().index = Some(index);
    }

    fn drop_index(&mut self) {
        if let Some(e) = &mut self.extra {
            e.index = None;
        }
        self.tidy();
    }

    /// Adds a membership; `meta`, when given, becomes the metadata of the
    /// pid in this list.
    fn push(&mut self, m: Member, meta: Option<Bytes>) {
        let at = self.items.len() as u32;
        if let Some(index) = self.extra.as_mut().and_then(|e| e.index.as_mut()) {
            Self::index_add(index, &m.pid(), at);
        }
        if let Some(meta) = meta {
            self.extra_mut().meta.insert(m.pid(), meta);
        }
        let len = self.items.len();
        if len == self.items.capacity() {
            self.items
                .reserve_exact(if len < SMALL { 2 } else { len / 2 });
        }
        self.items.push(m);
        if self.index().is_none() && self.items.len() >= INDEX_FROM {
            self.build_index();
        }
    }

    /// A position of one membership of `pid`, without removing it.
    fn find(&self, pid: &Pid) -> Option<usize> {
        match self.index() {
            Some(index) => match index.get(pid)? {
                Pos::One(p) => Some(*p as usize),
                Pos::Many(v) => v.last().map(|p| *p as usize),
            },
            None => self.items.iter().rposition(|m| m.is(pid)),
        }
    }

    /// Removes the membership at `at` (found by [`Bag::find`]).
    fn remove_at(&mut self, at: usize) {
        let last = self.items.len() - 1;
        if let Some(index) = self.extra.as_mut().and_then(|e| e.index.as_mut()) {
            let pid = self.items[at].pid();
            let drop_entry = match index.get_mut(&pid).expect("indexed") {
                Pos::One(_) => true,
                Pos::Many(v) => {
                    let k = v
                        .iter()
                        .position(|p| *p as usize == at)
                        .expect("indexed position");
                    v.swap_remove(k);
                    if v.len() == 1 {
                        let only = v[0];
                        *index.get_mut(&pid).expect("indexed") = Pos::One(only);
                    }
                    false
                }
            };
            if drop_entry {
                index.remove(&pid);
            }
            if at != last {
                let moved = self.items[last].pid();
                match index.get_mut(&moved).expect("indexed") {
                    Pos::One(p) => *p = at as u32,
                    Pos::Many(v) => {
                        let k = v
                            .iter()
                            .position(|p| *p as usize == last)
                            .expect("indexed position");
                        v[k] = at as u32;
                    }
                }
            }
        }
        let gone = self.items.swap_remove(at);
        if self.meta_map().is_some() && self.count(&gone.pid()) == 0 {
            self.extra_mut().meta.remove(&gone.pid());
        }
        if self.items.len() < INDEX_FROM / 2 {
            self.drop_index();
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Member) -> bool) {
        self.items.retain(|m| keep(m));
        if let Some(e) = &mut self.extra {
            if !e.meta.is_empty() {
                let left: std::collections::HashSet<Pid> =
                    self.items.iter().map(Member::pid).collect();
                e.meta.retain(|p, _| left.contains(p));
            }
        }
        if self.index().is_some() {
            if self.items.len() < INDEX_FROM / 2 {
                self.drop_index();
            } else {
                self.build_index();
            }
        }
        self.tidy();
    }

    /// Sets (or clears) the metadata of `pid`, if it is in the list.
    fn set_meta(&mut self, pid: &Pid, meta: Option<Bytes>) {
        if self.count(pid) == 0 {
            return;
        }
        match meta {
            Some(meta) => {
                self.extra_mut().meta.insert(pid.clone(), meta);
            }
            None => {
                if let Some(e) = &mut self.extra {
                    e.meta.remove(pid);
                }
                self.tidy();
            }
        }
    }

    fn meta(&self, pid: &Pid) -> Option<&Bytes> {
        self.extra.as_ref()?.meta.get(pid)
    }

    fn count(&self, pid: &Pid) -> usize {
        match self.index() {
            Some(index) => match index.get(pid) {
                None => 0,
                Some(Pos::One(_)) => 1,
                Some(Pos::Many(v)) => v.len(),
            },
            None => self.items.iter().filter(|m| m.is(pid)).count(),
        }
    }
}

/// The members of one group at one moment: local ones (on the reading
/// node) and remote ones, in no particular order (each membership carries
/// the order in which this node applied its join). A pid that joined twice
/// is listed twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    pub(crate) local: Bag,
    pub(crate) remote: Bag,
}

impl GroupView {
    pub(crate) fn is_empty(&self) -> bool {
        self.local.items.is_empty() && self.remote.items.is_empty()
    }
}

/// A snapshot of a group's members; cheap to take and to keep (shared,
/// never copied per member).
#[derive(Debug, Clone, Default)]
pub struct Members(Option<Arc<GroupView>>);

impl Members {
    fn view(&self) -> Option<&GroupView> {
        self.0.as_deref()
    }

    fn local_slice(&self) -> &[Member] {
        self.view().map(|v| &v.local.items[..]).unwrap_or(&[])
    }

    fn remote_slice(&self) -> &[Member] {
        self.view().map(|v| &v.remote.items[..]).unwrap_or(&[])
    }

    /// Number of memberships (a pid that joined twice counts twice).
    pub fn len(&self) -> usize {
        self.local_slice().len() + self.remote_slice().len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All memberships: local ones first, then remote ones.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.local_slice().iter().chain(self.remote_slice())
    }

    /// All member pids, local first (duplicates kept, as OTP's `get_members`).
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.iter().map(Member::pid)
    }

    /// The memberships of processes on the reading node.
    pub fn local(&self) -> &[Member] {
        self.local_slice()
    }

    /// The memberships of processes on other nodes.
    pub fn remote(&self) -> &[Member] {
        self.remote_slice()
    }

    /// The member pids as a vector.
    pub fn to_vec(&self) -> Vec<Pid> {
        self.pids().collect()
    }

    /// Whether any member of the group has metadata.
    pub fn has_meta(&self) -> bool {
        self.view()
            .is_some_and(|v| v.local.meta_map().is_some() || v.remote.meta_map().is_some())
    }

    /// The metadata of `pid` in this group (shared by all its memberships
    /// of the group: set at join time or by the latest update).
    pub fn meta(&self, pid: &Pid) -> Option<&Bytes> {
        let v = self.view()?;
        v.local.meta(pid).or_else(|| v.remote.meta(pid))
    }

    /// How many times `pid` joined.
    pub fn count(&self, pid: &Pid) -> usize {
        self.view()
            .map_or(0, |v| v.local.count(pid) + v.remote.count(pid))
    }
}

/// How to pick one member (CloudI `cpg`'s selection helpers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Select {
    /// A random local member, else a random remote one.
    Closest,
    /// A random remote member, else a random local one.
    Furthest,
    /// A random member.
    Random,
    /// A random local member.
    Local,
    /// A random remote member.
    Remote,
    /// The member whose join this node applied first.
    Oldest,
    /// The member whose join this node applied last.
    Newest,
    /// The oldest local member.
    LocalOldest,
    /// The newest local member.
    LocalNewest,
    /// The oldest remote member.
    RemoteOldest,
    /// The newest remote member.
    RemoteNewest,
}

impl Members {
    /// Picks one member pid by `how`, never `exclude`. `None` when no
    /// member qualifies. The random choices draw from `rng` (the core has
    /// no randomness of its own: a seeded generator replays them).
    pub fn select<R: Rng + ?Sized>(
        &self,
        how: Select,
        exclude: Option<&Pid>,
        rng: &mut R,
    ) -> Option<Pid> {
        let ok = |m: &&Member| !exclude.is_some_and(|x| m.is(x));
        let mut pick = |list: Vec<&Member>| -> Option<Pid> {
            if list.is_empty() {
                None
            } else {
                Some(list[rng.random_range(0..list.len())].pid())
            }
        };
        let local = || self.local().iter().filter(ok).collect::<Vec<_>>();
        let remote = || self.remote().iter().filter(ok).collect::<Vec<_>>();
        let oldest = |list: &[Member]| list.iter().filter(ok).min_by_key(|m| m.stamp).cloned();
        let newest = |list: &[Member]| list.iter().filter(ok).max_by_key(|m| m.stamp).cloned();
        match how {
            Select::Closest => pick(local()).or_else(|| pick(remote())),
            Select::Furthest => pick(remote()).or_else(|| pick(local())),
            Select::Random => pick(self.iter().filter(ok).collect()),
            Select::Local => pick(local()),
            Select::Remote => pick(remote()),
            Select::LocalOldest => oldest(self.local()).map(|m| m.pid()),
            Select::LocalNewest => newest(self.local()).map(|m| m.pid()),
            Select::RemoteOldest => oldest(self.remote()).map(|m| m.pid()),
            Select::RemoteNewest => newest(self.remote()).map(|m| m.pid()),
            Select::Oldest => [oldest(self.local()), oldest(self.remote())]
                .into_iter()
                .flatten()
                .min_by_key(|m| m.stamp)
                .map(|m| m.pid()),
            Select::Newest => [newest(self.local()), newest(self.remote())]
                .into_iter()
                .flatten()
                .max_by_key(|m| m.stamp)
                .map(|m| m.pid()),
        }
    }
}

/// The published state of one scope on one node.
#[derive(Debug)]
pub struct ScopeView {
    me: NodeName,
    groups: DashMap<Group, Arc<GroupView>, FixedHasher>,
    /// Memberships in all groups.
    total: AtomicUsize,
}

impl ScopeView {
    pub(crate) fn new(me: NodeName) -> Self {
        ScopeView {
            me,
            groups: DashMap::with_hasher(FixedHasher::default()),
            total: AtomicUsize::new(0),
        }
    }

    /// Memberships in all groups of the scope (a pid that joined twice
    /// counts twice), without visiting them.
    pub fn membership_count(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// A snapshot of `group`'s members (empty if the group does not exist).
    pub fn members(&self, group: &str) -> Members {
        Members(self.groups.get(group).map(|g| g.value().clone()))
    }

    /// Every group with at least one member, in no particular order.
    pub fn which_groups(&self) -> Vec<Group> {
        self.groups.iter().map(|e| e.key().clone()).collect()
    }

    /// Every group with at least one local member.
    pub fn which_local_groups(&self) -> Vec<Group> {
        self.groups
            .iter()
            .filter(|e| !e.value().local.items.is_empty())
            .map(|e| e.key().clone())
            .collect()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The groups holding memberships of processes on `node` (one pass
    /// over the groups; node downs and snapshots need it, joins do not).
    pub(crate) fn groups_of(&self, node: &NodeName) -> Vec<Group> {
        self.groups
            .iter()
            .filter(|e| e.value().remote.items.iter().any(|m| &m.node == node))
            .map(|e| e.key().clone())
            .collect()
    }

    /// Whether `pid` counts as local here.
    pub(crate) fn is_local(&self, pid: &Pid) -> bool {
        pid.node() == &self.me
    }

    // ---- writer side (the scope, under the node's lock) ----------------

    pub(crate) fn add(&self, group: &Group, m: Member, meta: Option<Bytes>) {
        self.add_to(group, || group.clone(), [m], meta, |_| ());
    }

    /// Adds memberships to the group named `group` and returns its key
    /// (shared, not copied, when the group exists).
    pub(crate) fn add_by_name(
        &self,
        group: &str,
        members: impl IntoIterator<Item = Member>,
        meta: Option<Bytes>,
    ) -> Group {
        let mut key = None;
        self.add_to(
            group,
            || Group::from(group),
            members,
            meta,
            |k| key = Some(k.clone()),
        );
        key.expect("the group's key is seen")
    }

    /// Adds `members` to `group` in one visit of its entry: an existing
    /// group is found by reference (no key made), a new one is keyed by
    /// `new_key`; `seen` gets the key in place.
    fn add_to(
        &self,
        group: &str,
        new_key: impl FnOnce() -> Group,
        members: impl IntoIterator<Item = Member>,
        meta: Option<Bytes>,
        seen: impl FnOnce(&Group),
    ) {
        let mut e = match self.groups.get_mut(group) {
            Some(e) => e,
            None => self.groups.entry(new_key()).or_default(),
        };
        seen(e.key());
        let g = Arc::make_mut(e.value_mut());
        let mut added = 0;
        for m in members {
            let bag = if m.node == self.me {
                &mut g.local
            } else {
                &mut g.remote
            };
            bag.push(m, meta.clone());
            added += 1;
        }
        drop(e);
        self.total.fetch_add(added, Ordering::Relaxed);
    }

    /// Removes one membership of `pid`; false if it had none.
    pub(crate) fn remove_one(&self, group: &str, pid: &Pid) -> bool {
        let local = self.is_local(pid);
        let Some(mut e) = self.groups.get_mut(group) else {
            return false;
        };
        let bag = if local { &e.local } else { &e.remote };
        let Some(at) = bag.find(pid) else {
            return false;
        };
        let g = Arc::make_mut(e.value_mut());
        if local {
            g.local.remove_at(at);
        } else {
            g.remote.remove_at(at);
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
        let empty = g.is_empty();
        drop(e);
        if empty {
            self.groups.remove_if(group, |_, g| g.is_empty());
        }
        true
    }

    /// Sets the metadata of every membership of `pid` in `group`.
    pub(crate) fn set_meta(&self, group: &str, pid: &Pid, meta: Option<Bytes>) {
        let local = self.is_local(pid);
        if let Some(mut e) = self.groups.get_mut(group) {
            let g = Arc::make_mut(e.value_mut());
            if local {
                g.local.set_meta(pid, meta);
            } else {
                g.remote.set_meta(pid, meta);
            }
        }
    }

    /// Removes every membership of processes on `node` from `group`;
    /// returns how many went and, when `pids` is set, the removed pids
    /// (with repeats; nobody watching needs no list).
    ///
    /// A group that only `node`'s processes belong to is unlinked whole:
    /// no copy even when a reader holds it, no per-member step under the
    /// map's lock; its memory is freed after the lock is released.
    pub(crate) fn remove_node(
        &self,
        group: &str,
        node: &NodeName,
        pids: bool,
    ) -> (usize, Vec<Pid>) {
        let only_node = |g: &GroupView| {
            g.local.items.is_empty() && g.remote.items.iter().all(|m| &m.node == node)
        };
        if let Some((_, whole)) = self.groups.remove_if(group, |_, g| only_node(g)) {
            let n = whole.remote.items.len();
            self.total.fetch_sub(n, Ordering::Relaxed);
            let removed = if pids {
                whole.remote.items.iter().map(Member::pid).collect()
            } else {
                Vec::new()
            };
            drop(whole);
            return (n, removed);
        }
        let mut removed = Vec::new();
        let mut n = 0;
        let Some(mut e) = self.groups.get_mut(group) else {
            return (0, removed);
        };
        let g = Arc::make_mut(e.value_mut());
        if g.remote.items.iter().all(|m| &m.node == node) {
            // The local members stay: take the remote side whole.
            let bag = std::mem::take(&mut g.remote);
            drop(e);
            n = bag.items.len();
            if pids {
                removed.extend(bag.items.iter().map(Member::pid));
            }
            self.total.fetch_sub(n, Ordering::Relaxed);
            return (n, removed);
        }
        g.remote.retain(|m| {
            if &m.node == node {
                n += 1;
                if pids {
                    removed.push(m.pid());
                }
                false
            } else {
                true
            }
        });
        self.total.fetch_sub(n, Ordering::Relaxed);
        let empty = g.is_empty();
        drop(e);
        if empty {
            self.groups.remove_if(group, |_, g| g.is_empty());
        }
        (n, removed)
    }

    /// Numbers every membership's join stamp afresh from 1, keeping their
    /// order (before the stamp counter wraps); returns the last stamp given.
    pub(crate) fn renumber(&self) -> u32 {
        let mut all: Vec<(u32, Group, bool, usize)> = Vec::new();
        for e in self.groups.iter() {
            for (local, bag) in [(true, &e.value().local), (false, &e.value().remote)] {
                for (i, m) in bag.items.iter().enumerate() {
                    all.push((m.stamp, e.key().clone(), local, i));
                }
            }
        }
        all.sort_unstable_by_key(|a| a.0);
        for (n, (_, group, local, i)) in all.iter().enumerate() {
            if let Some(mut e) = self.groups.get_mut(group) {
                let g = Arc::make_mut(e.value_mut());
                let bag = if *local { &mut g.local } else { &mut g.remote };
                bag.items[*i].stamp = n as u32 + 1;
            }
        }
        all.len() as u32
    }

    /// Removes every local membership (scope stopped).
    pub(crate) fn clear(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_membership_stays_small() {
        assert_eq!(std::mem::size_of::<Member>(), 24);
        assert_eq!(std::mem::size_of::<GroupView>(), 64);
    }
    use proptest::prelude::*;

    fn pid(node: &str, s: u64) -> Pid {
        Pid::new(NodeName::new(node).unwrap(), 1, s)
    }

    proptest! {
        /// The bag (with its index past INDEX_FROM) always holds the same
        /// multiset as a plain model, through joins, removals, node drops.
        #[test]
        fn bag_matches_a_model(ops in proptest::collection::vec((0u8..4, 0u64..40), 1..600)) {
            let view = ScopeView::new(NodeName::new("me@h").unwrap());
            let g: Group = "g".into();
            let mut model: Vec<Pid> = Vec::new();
            let mut metas: HashMap<Pid, Bytes> = HashMap::new();
            let mut stamp = 0;
            for (op, s) in ops {
                let p = if s % 3 == 0 { pid("me@h", s) } else { pid(if s % 2 == 0 { "x@h" } else { "y@h" }, s) };
                match op {
                    0 | 1 => {
                        stamp += 1;
                        let meta = (s % 5 == 0).then(|| Bytes::from(vec![s as u8, stamp as u8]));
                        if let Some(m) = &meta { metas.insert(p.clone(), m.clone()); }
                        view.add(&g, Member::new(p.clone(), stamp), meta);
                        model.push(p.clone());
                    }
                    2 => {
                        let had = model.iter().position(|q| *q == p);
                        prop_assert_eq!(view.remove_one(&g, &p), had.is_some());
                        if let Some(i) = had { model.swap_remove(i); }
                    }
                    _ => {
                        let node = NodeName::new("x@h").unwrap();
                        let want = model.iter().filter(|q| q.node() == &node).count();
                        let (n, removed) = view.remove_node(&g, &node, s % 2 == 0);
                        prop_assert_eq!(n, want);
                        prop_assert_eq!(removed.len(), if s % 2 == 0 { want } else { 0 });
                        model.retain(|q| q.node() != &node);
                    }
                }
                let m = view.members(&g);
                let mut got = m.to_vec();
                got.sort();
                let mut want = model.clone();
                want.sort();
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(m.count(&p), model.iter().filter(|q| **q == p).count());
                prop_assert_eq!(view.membership_count(), model.len());
                metas.retain(|q, _| model.contains(q));
                for q in &model {
                    prop_assert_eq!(m.meta(q), metas.get(q));
                }
                prop_assert_eq!(m.meta(&p), metas.get(&p));
            }
        }
    }

    #[test]
    fn renumbering_keeps_the_join_order() {
        let view = ScopeView::new(NodeName::new("me@h").unwrap());
        let (g, h): (Group, Group) = ("g".into(), "h".into());
        let stamps = [u32::MAX - 1, 7, u32::MAX, 3_000_000_000];
        for (s, stamp) in stamps.into_iter().enumerate() {
            let node = if s % 2 == 0 { "me@h" } else { "x@h" };
            let group = if s < 2 { &g } else { &h };
            view.add(group, Member::new(pid(node, s as u64), stamp), None);
        }
        assert_eq!(view.renumber(), 4);
        let mut got: Vec<(u32, Pid)> = [&g, &h]
            .iter()
            .flat_map(|grp| {
                view.members(grp)
                    .iter()
                    .map(|m| (m.stamp, m.pid()))
                    .collect::<Vec<_>>()
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (1, pid("x@h", 1)),
                (2, pid("x@h", 3)),
                (3, pid("me@h", 0)),
                (4, pid("me@h", 2)),
            ]
        );
    }

    #[test]
    fn oldest_and_newest_follow_join_order_not_position() {
        let view = ScopeView::new(NodeName::new("me@h").unwrap());
        let g: Group = "g".into();
        for s in 1..=5 {
            view.add(&g, Member::new(pid("me@h", s), s as u32), None);
        }
        // Removing the first swaps the last into its place.
        view.remove_one(&g, &pid("me@h", 1));
        let m = view.members(&g);
        let rng = &mut rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            m.select(Select::LocalOldest, None, rng),
            Some(pid("me@h", 2))
        );
        assert_eq!(
            m.select(Select::LocalNewest, None, rng),
            Some(pid("me@h", 5))
        );
        assert_eq!(
            m.select(Select::Oldest, Some(&pid("me@h", 2)), rng),
            Some(pid("me@h", 3))
        );
    }
}
