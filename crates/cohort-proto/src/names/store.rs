//! How a node stores claims: compact, immutable claims shared with the
//! runtime's read view, and the per-name index over them.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use ecow::EcoString;
use hashbrown::hash_table::{self, HashTable};

use super::wire::{Claim, LossPolicy, OwnClaim, Succession};
use crate::hash::FixedHasher;
use crate::pid::{NodeName, Pid};

/// A shared pointer to a stored claim: the core's table, its local index
/// and the runtime's read view hold the same claim. Without a weak count
/// (8 bytes less than `std::sync::Arc`), which puts a claim with a short
/// name in a 64-byte heap block instead of an 80-byte one.
pub type SharedClaim = triomphe::Arc<StoredClaim>;

/// A claim as a node stores it, compact and immutable: shared by the
/// core's table and the runtime's read view (the visible entry of a name
/// is its winning claim), so a name is kept once per node. 48 bytes: what
/// every claim of one node incarnation shares is in its [`Origin`], what
/// few claims have in [`Extra`].
#[derive(Debug, PartialEq, Eq)]
pub struct StoredClaim {
    /// Inline up to 15 bytes: most names need no allocation of their own.
    name: EcoString,
    origin: Arc<Origin>,
    serial: u64,
    stamp: u64,
    /// Metadata, superseded claim and a loss policy other than `Kill`,
    /// when there are any (rare).
    extra: Option<Box<Extra>>,
}

/// The node incarnation claims come from, interned by the name service:
/// one per (node, creation) it stores claims of, shared by all of them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Origin {
    node: NodeName,
    creation: u32,
    /// Whether this is the storing node itself (its current creation).
    local: bool,
}

impl Origin {
    /// The origin `node` of creation `creation`, as node `me` of creation
    /// `my_creation` sees it.
    pub(super) fn new(node: NodeName, creation: u32, me: &NodeName, my_creation: u32) -> Self {
        let local = &node == me && creation == my_creation;
        Origin {
            node,
            creation,
            local,
        }
    }

    /// The node.
    pub(super) fn node(&self) -> &NodeName {
        &self.node
    }

    /// The node's creation.
    pub(super) fn creation(&self) -> u32 {
        self.creation
    }
}

/// The rarely used parts of a claim.
#[derive(Debug, PartialEq, Eq)]
struct Extra {
    meta: Bytes,
    supersedes: Option<Succession>,
    policy: LossPolicy,
}

/// The rare parts of a claim, boxed, when any differs from the default.
fn extra(meta: &Bytes, supersedes: &Option<Succession>, policy: LossPolicy) -> Option<Box<Extra>> {
    (!meta.is_empty() || supersedes.is_some() || policy != LossPolicy::Kill).then(|| {
        Box::new(Extra {
            meta: meta.clone(),
            supersedes: supersedes.clone(),
            policy,
        })
    })
}

impl StoredClaim {
    /// Stores `c`, a claim of a process of `origin` as its node sent it.
    pub(super) fn own(c: OwnClaim, origin: Arc<Origin>) -> Self {
        StoredClaim {
            extra: extra(&c.meta, &c.supersedes, c.policy),
            name: c.name,
            origin,
            serial: c.serial,
            stamp: c.stamp,
        }
    }

    /// Stores `c`, whose pid is of `origin` (interned by the caller).
    pub(super) fn new(c: &Claim, origin: Arc<Origin>) -> Self {
        debug_assert!(origin.node == *c.pid.node() && origin.creation == c.pid.creation());
        StoredClaim {
            name: EcoString::from(c.name.as_str()),
            origin,
            serial: c.pid.serial(),
            stamp: c.stamp,
            extra: extra(&c.meta, &c.supersedes, c.policy),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name in its stored form (cloned without a copy of the text).
    pub fn key(&self) -> &EcoString {
        &self.name
    }

    /// The claiming process.
    pub fn pid(&self) -> Pid {
        Pid::new(self.origin.node.clone(), self.origin.creation, self.serial)
    }

    /// The claimant's node.
    pub fn node(&self) -> &NodeName {
        &self.origin.node
    }

    /// The claimant's serial on its node.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether the claimant is a process of the node storing this claim.
    pub fn is_local(&self) -> bool {
        self.origin.local
    }

    /// The metadata (empty when none).
    pub fn meta(&self) -> Bytes {
        self.extra
            .as_ref()
            .map(|e| e.meta.clone())
            .unwrap_or_default()
    }

    fn meta_ref(&self) -> &[u8] {
        self.extra.as_ref().map_or(&[][..], |e| &e.meta[..])
    }

    /// The Lamport stamp.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Whether `pid` made this claim.
    pub(super) fn is(&self, pid: &Pid) -> bool {
        self.serial == pid.serial()
            && self.origin.creation == pid.creation()
            && &self.origin.node == pid.node()
    }

    /// Whether both claims are by the same process.
    pub(super) fn same_claimant(&self, o: &StoredClaim) -> bool {
        self.serial == o.serial && self.same_origin(o)
    }

    /// Whether both claims come from one node incarnation (most often one
    /// interned origin: a pointer comparison).
    fn same_origin(&self, o: &StoredClaim) -> bool {
        Arc::ptr_eq(&self.origin, &o.origin) || self.origin == o.origin
    }

    /// The line of claims this one continues, if any.
    pub(super) fn supersedes(&self) -> Option<&Succession> {
        self.extra.as_ref().and_then(|e| e.supersedes.as_ref())
    }

    /// Whether both claims are of one line (one replaced the other, or
    /// both replaced claims of the same line).
    pub(super) fn same_line(&self, o: &StoredClaim) -> bool {
        let first = |c: &StoredClaim| match c.supersedes() {
            Some(s) => (
                s.stamp,
                s.pid.node().clone(),
                s.pid.creation(),
                s.pid.serial(),
            ),
            None => (c.stamp, c.origin.node.clone(), c.origin.creation, c.serial),
        };
        first(self) == first(o)
    }

    /// The succession of a claim that replaces this one.
    pub(super) fn successor(&self) -> Succession {
        match self.supersedes() {
            Some(s) => Succession {
                pid: s.pid.clone(),
                stamp: s.stamp,
                depth: s.depth.saturating_add(1),
            },
            None => Succession {
                pid: self.pid(),
                stamp: self.stamp,
                depth: 1,
            },
        }
    }

    /// Whether both claims show the same entry (holder and metadata).
    pub(super) fn same_entry(&self, o: &StoredClaim) -> bool {
        self.serial == o.serial && self.same_origin(o) && self.meta_ref() == o.meta_ref()
    }

    /// The claim in its public (wire) form.
    pub fn to_claim(&self) -> Claim {
        Claim {
            name: self.name.to_string(),
            pid: self.pid(),
            meta: self.meta(),
            stamp: self.stamp,
            policy: self.extra.as_ref().map_or(LossPolicy::Kill, |e| e.policy),
            supersedes: self.extra.as_ref().and_then(|e| e.supersedes.clone()),
        }
    }
}

/// The claims of local processes, by serial: one pointer per process that
/// holds a name (the claim knows its serial, so no key is stored beside
/// it), plus a list for the few that hold several.
#[derive(Default)]
pub(super) struct LocalIndex {
    /// The first claim of each local process that holds a name.
    first: HashTable<SharedClaim>,
    /// Hashes serials for `first`.
    hasher: FixedHasher,
    /// Its further claims (in tables that allow several names per pid).
    more: HashMap<u64, Vec<SharedClaim>, FixedHasher>,
}

impl std::fmt::Debug for LocalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIndex")
            .field("first", &self.first.len())
            .field("more", &self.more.len())
            .finish()
    }
}

impl LocalIndex {
    fn first_of(&self, serial: u64) -> Option<&SharedClaim> {
        self.first
            .find(self.hasher.hash_one(serial), |r| r.serial() == serial)
    }

    /// Records `rec` (replacing a claim of the same name) for `serial`.
    pub(super) fn insert(&mut self, serial: u64, rec: &SharedClaim) {
        debug_assert_eq!(rec.serial(), serial);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(serial);
        match self.first.entry(
            hash,
            |r| r.serial() == serial,
            |r| hasher.hash_one(r.serial()),
        ) {
            hash_table::Entry::Vacant(v) => {
                v.insert(rec.clone());
            }
            hash_table::Entry::Occupied(mut f) if f.get().name() == rec.name() => {
                *f.get_mut() = rec.clone();
            }
            hash_table::Entry::Occupied(_) => {
                let more = self.more.entry(serial).or_default();
                match more.iter_mut().find(|r| r.name() == rec.name()) {
                    Some(r) => *r = rec.clone(),
                    None => more.push(rec.clone()),
                }
            }
        }
    }

    /// Forgets the claim of `serial` on `name`.
    pub(super) fn remove(&mut self, serial: u64, name: &str) {
        let hash = self.hasher.hash_one(serial);
        if let Ok(f) = self
            .first
            .find_entry(hash, |r| r.serial() == serial && r.name() == name)
        {
            f.remove();
            if let Some(n) = self.more.get_mut(&serial).and_then(|m| m.pop()) {
                let hasher = &self.hasher;
                self.first
                    .insert_unique(hash, n, |r| hasher.hash_one(r.serial()));
            }
        } else if let Some(m) = self.more.get_mut(&serial) {
            m.retain(|r| r.name() != name);
        }
        if self.more.get(&serial).is_some_and(|m| m.is_empty()) {
            self.more.remove(&serial);
        }
    }

    /// The names `serial` holds.
    pub(super) fn names(&self, serial: u64) -> impl Iterator<Item = &str> {
        let more = self.more.get(&serial).into_iter().flatten();
        self.first_of(serial)
            .into_iter()
            .chain(more)
            .map(|r| r.name())
    }

    /// Every local claim.
    pub(super) fn claims(&self) -> impl Iterator<Item = &SharedClaim> {
        self.first.iter().chain(self.more.values().flatten())
    }
}

/// A stored claim of a name with several.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) rec: SharedClaim,
}

/// The claims of one name, taken out of [`Claims`]: one (the common case,
/// no vector) or several (a clash).
#[derive(Debug)]
pub(super) enum NameClaims {
    One(SharedClaim),
    Many(Box<[Stored]>),
}

impl NameClaims {
    pub(super) fn into_list(self) -> Vec<Stored> {
        match self {
            NameClaims::One(rec) => vec![Stored { rec }],
            NameClaims::Many(l) => l.into_vec(),
        }
    }

    /// The claims of `list`, or none when it is empty.
    pub(super) fn from_list(mut list: Vec<Stored>) -> Option<NameClaims> {
        match list.len() {
            0 => None,
            1 => Some(NameClaims::One(list.pop().expect("one").rec)),
            _ => Some(NameClaims::Many(list.into_boxed_slice())),
        }
    }
}

/// The claims of one name, borrowed from [`Claims`].
#[derive(Debug, Clone, Copy)]
pub(super) enum NameClaimsRef<'a> {
    /// The only claim.
    One(&'a SharedClaim),
    /// Several claims, in stored order.
    Many(&'a [Stored]),
}

impl<'a> NameClaimsRef<'a> {
    pub(super) fn name(self) -> &'a str {
        match self {
            NameClaimsRef::One(r) => r.name(),
            NameClaimsRef::Many(l) => l[0].rec.name(),
        }
    }

    /// The claims, in the order they were stored.
    pub(super) fn recs(self) -> impl Iterator<Item = &'a SharedClaim> {
        let (one, many) = match self {
            NameClaimsRef::One(r) => (Some(r), &[][..]),
            NameClaimsRef::Many(l) => (None, l),
        };
        one.into_iter().chain(many.iter().map(|s| &s.rec))
    }
}

/// A stored claim looked up by its name.
#[derive(Debug)]
struct ByName(SharedClaim);

impl std::borrow::Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl std::hash::Hash for ByName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state)
    }
}

impl PartialEq for ByName {
    fn eq(&self, o: &ByName) -> bool {
        self.0.name() == o.0.name()
    }
}

impl Eq for ByName {}

/// Every known claim of a table, by name. A name with one claim costs one
/// pointer in one set; the rare names with several claims (a clash) keep
/// the whole list in a second map, and their first claim in the set.
#[derive(Debug, Default)]
pub(super) struct Claims {
    first: HashSet<ByName, FixedHasher>,
    many: HashMap<Box<str>, Box<[Stored]>, FixedHasher>,
}

impl Claims {
    /// Whether `name` has a claim.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.first.contains(name)
    }

    /// The claims of `name`.
    pub(super) fn get(&self, name: &str) -> Option<NameClaimsRef<'_>> {
        let first = self.first.get(name)?;
        Some(self.claims_of(first))
    }

    fn claims_of<'a>(&'a self, first: &'a ByName) -> NameClaimsRef<'a> {
        if !self.many.is_empty() {
            if let Some(l) = self.many.get(first.0.name()) {
                return NameClaimsRef::Many(l);
            }
        }
        NameClaimsRef::One(&first.0)
    }

    /// Takes the claims of `name` out.
    pub(super) fn take(&mut self, name: &str) -> Option<NameClaims> {
        let first = self.first.take(name)?;
        if !self.many.is_empty() {
            if let Some(l) = self.many.remove(name) {
                return Some(NameClaims::Many(l));
            }
        }
        Some(NameClaims::One(first.0))
    }

    /// Stores `rec` as the only claim of its name, unless the name has
    /// claims already; whether it did.
    pub(super) fn insert_first(&mut self, rec: &SharedClaim) -> bool {
        // A name with claims has its first one in the set: it stays.
        self.first.insert(ByName(rec.clone()))
    }

    /// Puts the claims of a name (taken out, or new) in.
    pub(super) fn insert(&mut self, claims: NameClaims) {
        match claims {
            NameClaims::One(rec) => {
                self.first.replace(ByName(rec));
            }
            NameClaims::Many(list) => {
                self.first.replace(ByName(list[0].rec.clone()));
                self.many.insert(list[0].rec.name().into(), list);
            }
        }
    }

    /// The claims of every name.
    pub(super) fn iter(&self) -> impl Iterator<Item = NameClaimsRef<'_>> {
        self.first.iter().map(|f| self.claims_of(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, serial: u64) -> SharedClaim {
        let c = OwnClaim {
            name: name.into(),
            serial,
            meta: Bytes::new(),
            stamp: 1,
            policy: LossPolicy::Kill,
            supersedes: None,
        };
        let node = NodeName::new("a@h").expect("valid name");
        let origin = Arc::new(Origin::new(node.clone(), 1, &node, 1));
        SharedClaim::new(StoredClaim::own(c, origin))
    }

    fn names(ix: &LocalIndex, serial: u64) -> Vec<&str> {
        let mut v: Vec<&str> = ix.names(serial).collect();
        v.sort();
        v
    }

    /// A stored claim fits a 64-byte heap block with its count (glibc
    /// rounds 8 + 48 + 8 up to 64; one field more would make it 80), and
    /// the indexes hold one pointer per name.
    #[test]
    fn a_claim_is_small() {
        assert_eq!(std::mem::size_of::<StoredClaim>(), 48);
        assert_eq!(std::mem::size_of::<SharedClaim>(), 8);
        assert_eq!(std::mem::size_of::<Option<SharedClaim>>(), 8);
        assert_eq!(std::mem::size_of::<ByName>(), 8);
    }

    /// The rare parts of a claim are there when set, and cost nothing when
    /// not.
    #[test]
    fn rare_parts_round_trip() {
        let plain = claim("a", 1);
        assert!(plain.extra.is_none());
        let node = NodeName::new("a@h").expect("valid name");
        let origin = Arc::new(Origin::new(node.clone(), 1, &node, 1));
        let c = OwnClaim {
            name: "b".into(),
            serial: 2,
            meta: Bytes::new(),
            stamp: 1,
            policy: LossPolicy::Notify,
            supersedes: None,
        };
        let notify = StoredClaim::own(c, origin);
        assert!(notify.extra.is_some());
        assert_eq!(notify.to_claim().policy, LossPolicy::Notify);
        assert_eq!(plain.to_claim().policy, LossPolicy::Kill);
        assert!(notify.is_local());
        assert!(notify.same_claimant(&notify));
        assert!(!notify.same_claimant(&plain));
    }

    /// A holder of several names keeps the others when one goes, whichever
    /// was first; holders never see each other's names.
    #[test]
    fn local_index_keeps_each_holders_names() {
        let mut ix = LocalIndex::default();
        for s in 0..1000 {
            ix.insert(s, &claim(&format!("n{s}"), s));
        }
        ix.insert(7, &claim("b", 7));
        ix.insert(7, &claim("c", 7));
        // The same name again replaces, never duplicates.
        ix.insert(7, &claim("b", 7));
        assert_eq!(names(&ix, 7), ["b", "c", "n7"]);
        ix.remove(7, "n7");
        assert_eq!(names(&ix, 7), ["b", "c"]);
        ix.remove(7, "c");
        assert_eq!(names(&ix, 7), ["b"]);
        ix.remove(7, "b");
        assert!(names(&ix, 7).is_empty());
        // A name the holder does not hold changes nothing.
        ix.remove(8, "n9");
        assert_eq!(names(&ix, 8), ["n8"]);
        assert_eq!(ix.claims().count(), 999);
        for s in 0..1000 {
            ix.remove(s, &format!("n{s}"));
        }
        assert_eq!(ix.claims().count(), 0);
    }
}
