//! The groups one local process joined: the scope's own record of its
//! processes' memberships, from which its snapshots and exit clean-up work.

use std::collections::HashMap;

use super::view::Group;
use crate::hash::FixedHasher;

/// The groups one local process joined, with how many times each. Most
/// processes join one group: that case needs no allocation of its own.
#[derive(Debug)]
pub(super) enum Joined {
    /// One group, joined this many times.
    One(Group, u32),
    /// Several groups, each with its count.
    // Boxed: keeps the common one-group case (and so every entry of the
    // scope's process map) at 24 bytes.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Group, u32, FixedHasher>>),
}

impl Joined {
    /// Records one more membership of `group`.
    pub(super) fn add(&mut self, group: &Group) {
        match self {
            Joined::One(g, n) if g == group => *n += 1,
            Joined::One(g, n) => {
                let mut m = HashMap::with_capacity_and_hasher(2, FixedHasher::default());
                m.insert(g.clone(), *n);
                m.insert(group.clone(), 1);
                *self = Joined::Many(Box::new(m));
            }
            Joined::Many(m) => *m.entry(group.clone()).or_default() += 1,
        }
    }

    /// How many memberships of `group` there are.
    pub(super) fn count(&self, group: &str) -> u32 {
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
    pub(super) fn remove_one(&mut self, group: &str) -> bool {
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

    /// Whether no membership is left.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Joined::One(_, n) => *n == 0,
            Joined::Many(m) => m.is_empty(),
        }
    }

    /// The groups joined, in no particular order.
    pub(super) fn groups(&self) -> Box<dyn Iterator<Item = &Group> + '_> {
        match self {
            Joined::One(g, _) => Box::new(std::iter::once(g)),
            Joined::Many(m) => Box::new(m.keys()),
        }
    }

    /// The groups and counts, in group order.
    pub(super) fn into_sorted(self) -> Vec<(Group, u32)> {
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
