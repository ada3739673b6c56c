//! The clash rule: which of several claims on one name wins, computed by
//! every node from the claims alone.
//!
//! A `re_register`'s claim continues the *line* of the claim it replaced
//! ([`Succession`]): it stands in the rank where the claim that began the
//! line stood (its *place*), and it replaces the claims of its line made
//! by fewer `re_register`s in a row.
//!
//! 1. A claim of a line with a claim further down the line in the set is
//!    replaced: it never wins and is not a clash.
//! 2. If two or more claims remain and any of them asks for
//!    [`LossPolicy::DropBoth`], nobody wins.
//! 3. Otherwise the lowest rank wins: the table's [`RankFn`] when it says
//!    `Less` or `Greater`, else the place (the Lamport stamp of the claim
//!    that began the line: earliest claim, then its pid: node name,
//!    creation, serial), then the claim's own stamp and pid (claims of one
//!    line, as far down it, made concurrently), which are unique.
//!
//! Why places: a node settles a clash with the claims it has heard of, and
//! only the loser's node acts, at once. Suppose b holds a name, c claims it
//! in another partition (later than b), and a re-registers it (replacing
//! b's claim). A node that meets b's and c's claims first makes c lose to
//! b. Had a's claim ranked by its own stamp (later than c's), a node that
//! meets a's and c's claims would make a's lose to c: each claimant may be
//! told it lost, to different winners, and who keeps the name depends on
//! who heard what first. Ranked at b's place, a's claim beats c's exactly
//! when b's did: adding a claim to a set never turns a loser into a winner.
//! A [`RankFn`] that ranks a `re_register`'s claim differently from the
//! claim it replaced gives up that guarantee.
//!
//! [`Succession`]: super::Succession

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use super::wire::{Claim, LossPolicy};
use crate::pid::{NodeName, Pid};

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

/// The default order: earlier place first (the stamp of the claim that
/// began the line, then its node name and pid), then the claim's own
/// stamp, node name and pid.
pub fn default_cmp(a: &Claim, b: &Claim) -> Ordering {
    fn place(c: &Claim) -> (u64, &NodeName, &Pid) {
        let (stamp, pid) = c.place();
        (stamp, pid.node(), pid)
    }
    place(a)
        .cmp(&place(b))
        .then_with(|| (a.stamp, a.pid.node(), &a.pid).cmp(&(b.stamp, b.pid.node(), &b.pid)))
}

/// The order of two claims under an optional user rank.
pub fn compare(a: &Claim, b: &Claim, rank: Option<&RankFn>) -> Ordering {
    match rank.map(|r| (r.0)(a, b)) {
        Some(o @ (Ordering::Less | Ordering::Greater)) => o,
        _ => default_cmp(a, b),
    }
}

/// Whether `c` is replaced by another claim of the set: one of its line
/// made by more `re_register`s in a row.
pub fn superseded<'a>(c: &Claim, all: impl IntoIterator<Item = &'a Claim>) -> bool {
    let (place, depth) = (c.place(), c.depth());
    all.into_iter()
        .any(|o| o.depth() > depth && o.place() == place)
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
    use crate::names::Succession;
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
        new.supersedes = Some(Succession {
            pid: old.pid.clone(),
            stamp: 5,
            depth: 1,
        });
        let mut drop = old.clone();
        drop.policy = LossPolicy::DropBoth;
        assert_eq!(
            win(&[old.clone(), new.clone()], None),
            Some(new.pid.clone())
        );
        assert_eq!(win(&[drop, new.clone()], None), Some(new.pid));
        assert_eq!(win(&[], None), None);
    }

    /// b's claim (5) was replaced by a's `re_register` (9); c claimed the
    /// name elsewhere at 7. c loses to b, so it must lose to a too, in
    /// every set of these claims a node may hold.
    #[test]
    fn a_re_register_takes_the_place_of_the_claim_it_replaced() {
        let b = claim("b@h", 1, 5);
        let c = claim("c@h", 1, 7);
        let mut a = claim("a@h", 1, 9);
        a.supersedes = Some(Succession {
            pid: b.pid.clone(),
            stamp: 5,
            depth: 1,
        });
        for set in [
            vec![b.clone(), c.clone()],
            vec![a.clone(), c.clone()],
            vec![c.clone(), b.clone(), a.clone()],
        ] {
            assert_ne!(win(&set, None), Some(c.pid.clone()), "{set:?}");
        }
        assert_eq!(win(&[a.clone(), c.clone()], None), Some(a.pid.clone()));
        // a's claim replaced again (by d, 11): d stands in b's place and
        // replaces b's claim even where a's is not known yet.
        let mut d = claim("d@h", 1, 11);
        d.supersedes = Some(Succession {
            pid: b.pid.clone(),
            stamp: 5,
            depth: 2,
        });
        assert_eq!(win(&[b.clone(), d.clone()], None), Some(d.pid.clone()));
        assert_eq!(win(&[c.clone(), a, d.clone(), b], None), Some(d.pid));
        // Two re_registers of b's claim made apart clash by their own stamps.
        let mut e = claim("e@h", 1, 8);
        e.supersedes = Some(Succession {
            pid: Pid::new(NodeName::new("b@h").unwrap(), 1, 1),
            stamp: 5,
            depth: 1,
        });
        let mut f = claim("a@h", 2, 9);
        f.supersedes = e.supersedes.clone();
        assert_eq!(win(&[f, e.clone(), c], None), Some(e.pid));
    }
}
