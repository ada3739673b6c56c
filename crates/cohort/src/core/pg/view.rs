//! The read side of a scope: a concurrent map from group to an immutable
//! member list, published by the scope's single writer and read by anyone
//! without taking the node's lock.
//!
//! A group's members live in an `Arc<GroupView>`. The writer changes it with
//! `Arc::make_mut`: in place when no reader holds the old version (the usual
//! case), by copy when one does. A reader clones the `Arc` and keeps a
//! consistent snapshot for as long as it likes, so reading a large group
//! never copies it member by member.

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use rand::Rng;

use crate::core::pid::{NodeName, Pid};

/// A group name.
pub type Group = Arc<str>;

/// One membership: a pid, its optional metadata, and the order in which
/// this node applied the join (for oldest/newest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pid: Pid,
    meta: Option<Bytes>,
    stamp: u64,
}

impl Member {
    pub(crate) fn new(pid: Pid, meta: Option<Bytes>, stamp: u64) -> Self {
        Member { pid, meta, stamp }
    }

    /// The member process.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The metadata given at join time or by the latest update.
    pub fn meta(&self) -> Option<&Bytes> {
        self.meta.as_ref()
    }

    pub(crate) fn set_meta(&mut self, meta: Option<Bytes>) {
        self.meta = meta;
    }
}

/// The members of one group at one moment: local ones (on the reading
/// node) and remote ones, each in the order this node applied the joins.
/// A pid that joined twice is listed twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    pub(crate) local: Vec<Member>,
    pub(crate) remote: Vec<Member>,
}

impl GroupView {
    pub(crate) fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
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
        self.view().map(|v| &v.local[..]).unwrap_or(&[])
    }

    fn remote_slice(&self) -> &[Member] {
        self.view().map(|v| &v.remote[..]).unwrap_or(&[])
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
    pub fn pids(&self) -> impl Iterator<Item = &Pid> {
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
        self.pids().cloned().collect()
    }

    /// How many times `pid` joined.
    pub fn count(&self, pid: &Pid) -> usize {
        self.pids().filter(|p| *p == pid).count()
    }
}

/// How to pick one member (CloudI `cpg`'s selection helpers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// member qualifies.
    pub fn select(&self, how: Select, exclude: Option<&Pid>) -> Option<Pid> {
        let ok = |m: &&Member| Some(&m.pid) != exclude;
        let pick = |list: Vec<&Member>| -> Option<Pid> {
            if list.is_empty() {
                None
            } else {
                Some(list[rand::rng().random_range(0..list.len())].pid.clone())
            }
        };
        let local = || self.local().iter().filter(ok).collect::<Vec<_>>();
        let remote = || self.remote().iter().filter(ok).collect::<Vec<_>>();
        fn first<'a>(
            mut it: impl Iterator<Item = &'a Member>,
            exclude: Option<&Pid>,
        ) -> Option<Member> {
            it.find(|m| Some(&m.pid) != exclude).cloned()
        }
        match how {
            Select::Closest => pick(local()).or_else(|| pick(remote())),
            Select::Furthest => pick(remote()).or_else(|| pick(local())),
            Select::Random => pick(self.iter().filter(ok).collect()),
            Select::Local => pick(local()),
            Select::Remote => pick(remote()),
            Select::LocalOldest => first(self.local().iter(), exclude).map(|m| m.pid),
            Select::LocalNewest => first(self.local().iter().rev(), exclude).map(|m| m.pid),
            Select::RemoteOldest => first(self.remote().iter(), exclude).map(|m| m.pid),
            Select::RemoteNewest => first(self.remote().iter().rev(), exclude).map(|m| m.pid),
            Select::Oldest => {
                let l = first(self.local().iter(), exclude);
                let r = first(self.remote().iter(), exclude);
                [l, r]
                    .into_iter()
                    .flatten()
                    .min_by_key(|m| m.stamp)
                    .map(|m| m.pid)
            }
            Select::Newest => {
                let l = first(self.local().iter().rev(), exclude);
                let r = first(self.remote().iter().rev(), exclude);
                [l, r]
                    .into_iter()
                    .flatten()
                    .max_by_key(|m| m.stamp)
                    .map(|m| m.pid)
            }
        }
    }
}

type Hasher = foldhash::fast::RandomState;

/// The published state of one scope on one node.
#[derive(Debug)]
pub struct ScopeView {
    me: NodeName,
    groups: DashMap<Group, Arc<GroupView>, Hasher>,
}

impl ScopeView {
    pub(crate) fn new(me: NodeName) -> Self {
        ScopeView {
            me,
            groups: DashMap::with_hasher(Hasher::default()),
        }
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
            .filter(|e| !e.value().local.is_empty())
            .map(|e| e.key().clone())
            .collect()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Whether `pid` counts as local here.
    pub(crate) fn is_local(&self, pid: &Pid) -> bool {
        pid.node() == &self.me
    }

    // ---- writer side (the scope, under the node's lock) ----------------

    pub(crate) fn add(&self, group: &Group, m: Member) {
        let local = self.is_local(&m.pid);
        let mut e = self.groups.entry(group.clone()).or_default();
        let g = Arc::make_mut(e.value_mut());
        if local {
            g.local.push(m);
        } else {
            g.remote.push(m);
        }
    }

    /// Removes one membership of `pid`; false if it had none.
    pub(crate) fn remove_one(&self, group: &str, pid: &Pid) -> bool {
        let local = self.is_local(pid);
        let Some(mut e) = self.groups.get_mut(group) else {
            return false;
        };
        let list = if local { &e.local } else { &e.remote };
        // The newest membership goes first, like OTP's `lists:delete` on a
        // list kept newest-first.
        let Some(pos) = list.iter().rposition(|m| &m.pid == pid) else {
            return false;
        };
        let g = Arc::make_mut(e.value_mut());
        if local {
            g.local.remove(pos);
        } else {
            g.remote.remove(pos);
        }
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
            let list = if local { &mut g.local } else { &mut g.remote };
            for m in list.iter_mut().filter(|m| &m.pid == pid) {
                m.set_meta(meta.clone());
            }
        }
    }

    /// Removes every membership of processes on `node` from `group`;
    /// returns the removed pids (with repeats).
    pub(crate) fn remove_node(&self, group: &str, node: &NodeName) -> Vec<Pid> {
        let mut removed = Vec::new();
        if let Some(mut e) = self.groups.get_mut(group) {
            let g = Arc::make_mut(e.value_mut());
            g.remote.retain(|m| {
                if m.pid.node() == node {
                    removed.push(m.pid.clone());
                    false
                } else {
                    true
                }
            });
            let empty = g.is_empty();
            drop(e);
            if empty {
                self.groups.remove_if(group, |_, g| g.is_empty());
            }
        }
        removed
    }

    /// Removes every local membership (scope stopped).
    pub(crate) fn clear(&self) {
        self.groups.clear();
    }
}
