//! The clash rule: which of several claims on one name wins, computed by
//! every node from the claims alone.
//!
//! 1. A claim that another claim in the set supersedes (`re_register`)
//!    never wins and is not a clash.
//! 2. If two or more claims remain and any of them asks for
//!    [`LossPolicy::DropBoth`], nobody wins.
//! 3. Otherwise the lowest rank wins: the table's [`RankFn`] when it says
//!    `Less` or `Greater`, else the Lamport stamp (earliest claim), then the
//!    pid (node name, creation, serial), which is unique.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use super::wire::{Claim, LossPolicy};

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

/// The default order: earlier stamp first, then node name, then pid.
pub fn default_cmp(a: &Claim, b: &Claim) -> Ordering {
    (a.stamp, a.pid.node(), &a.pid).cmp(&(b.stamp, b.pid.node(), &b.pid))
}

/// The order of two claims under an optional user rank.
pub fn compare(a: &Claim, b: &Claim, rank: Option<&RankFn>) -> Ordering {
    match rank.map(|r| (r.0)(a, b)) {
        Some(o @ (Ordering::Less | Ordering::Greater)) => o,
        _ => default_cmp(a, b),
    }
}

/// Whether `c` is replaced by another claim of the set.
pub fn superseded<'a>(c: &Claim, all: impl IntoIterator<Item = &'a Claim>) -> bool {
    all.into_iter()
        .any(|o| o.supersedes.as_ref() == Some(&(c.pid.clone(), c.stamp)))
}

/// The index of the winning claim, or `None` when there is none (empty set,
/// or a clash under [`LossPolicy::DropBoth`]).
pub fn winner(claims: &[&Claim], rank: Option<&RankFn>) -> Option<usize> {
    let live: Vec<usize> = (0..claims.len())
        .filter(|&i| !superseded(claims[i], claims.iter().copied()))
        .collect();
    if live.len() > 1
        && live
            .iter()
            .any(|&i| claims[i].policy == LossPolicy::DropBoth)
    {
        return None;
    }
    live.into_iter()
        .min_by(|&x, &y| compare(claims[x], claims[y], rank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::{NodeName, Pid};
    use bytes::Bytes;

    fn claim(node: &str, serial: u64, stamp: u64) -> Claim {
        Claim {
            name: "x".into(),
            pid: Pid::new(NodeName::new(node).unwrap(), 1, serial),
            meta: Bytes::new(),
            stamp,
            policy: LossPolicy::Kill,
            supersedes: None,
        }
    }

    fn win(cs: &[Claim], rank: Option<&RankFn>) -> Option<Pid> {
        let refs: Vec<&Claim> = cs.iter().collect();
        winner(&refs, rank).map(|i| cs[i].pid.clone())
    }

    #[test]
    fn earliest_stamp_wins_regardless_of_order() {
        let a = claim("b@h", 1, 5);
        let b = claim("a@h", 1, 7);
        assert_eq!(win(&[a.clone(), b.clone()], None), Some(a.pid.clone()));
        assert_eq!(win(&[b, a.clone()], None), Some(a.pid));
    }

    #[test]
    fn ties_go_to_node_name_then_pid() {
        let a = claim("b@h", 1, 5);
        let b = claim("a@h", 9, 5);
        let c = claim("a@h", 2, 5);
        assert_eq!(
            win(&[a.clone(), b.clone(), c.clone()], None),
            Some(c.pid.clone())
        );
        assert_eq!(win(&[c.clone(), a, b], None), Some(c.pid));
    }

    #[test]
    fn a_user_rank_decides_first_and_equal_falls_back() {
        let a = claim("a@h", 1, 5);
        let b = claim("b@h", 1, 7);
        let latest = RankFn::new(|x, y| y.stamp.cmp(&x.stamp));
        assert_eq!(
            win(&[a.clone(), b.clone()], Some(&latest)),
            Some(b.pid.clone())
        );
        let indifferent = RankFn::new(|_, _| Ordering::Equal);
        assert_eq!(win(&[b, a.clone()], Some(&indifferent)), Some(a.pid));
    }

    #[test]
    fn drop_both_leaves_no_winner_only_in_a_clash() {
        let mut a = claim("a@h", 1, 5);
        a.policy = LossPolicy::DropBoth;
        let b = claim("b@h", 1, 7);
        assert_eq!(win(&[a.clone(), b], None), None);
        assert_eq!(win(&[a.clone()], None), Some(a.pid));
    }

    #[test]
    fn a_superseded_claim_never_wins_and_is_no_clash() {
        let old = claim("a@h", 1, 5);
        let mut new = claim("b@h", 1, 9);
        new.supersedes = Some((old.pid.clone(), 5));
        let mut drop = old.clone();
        drop.policy = LossPolicy::DropBoth;
        assert_eq!(
            win(&[old.clone(), new.clone()], None),
            Some(new.pid.clone())
        );
        assert_eq!(win(&[drop, new.clone()], None), Some(new.pid));
        assert_eq!(win(&[], None), None);
    }
}
