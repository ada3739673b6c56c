//! No own-group node is left in limbo: on every node with a global-group
//! configuration, every other node of its own group is in exactly one of
//! `synced_nodes`, `sync_error` and `no_contact`.
//!
//! At every step, on every running configured node `o`, for every node `x`
//! that `o`'s configuration lists in `o`'s own group (`x` ≠ `o`):
//! - `x` is in exactly one of the three lists of `o`'s `info()`. This is
//!   the invariant ("once the node has had a session with it"),
//!   checked for every own node: one without a session is under
//!   `no_contact`, so it holds trivially for them;
//! - `x` is under `no_contact` exactly when `o`'s session layer has no
//!   session with it (what `info` says is what the core believes).
//!
//! After quiescence, for such an `x` with a session: it is synced when
//! both hold the same definition of their group, and under `sync_error`
//! when they do not (every definition check was answered, including one
//! sent to a node that does not count `o` in its group, or has no
//! configuration at all).

use cohort_proto::global_group::GlobalGroupsInfo;
use cohort_proto::pid::NodeName;

use super::invariant::Invariant;
use crate::sim::Sim;

/// Own-group nodes are synced, in sync error or out of contact: one of the three.
pub const GROUP_SYNC_STATES: Invariant = Invariant {
    name: "group_sync_states",
    always: Some(always),
    eventually: Some(eventually),
};

/// Checks one node's `info()`: `me`'s own-group nodes other than itself,
/// each in exactly one list; `session(x)` tells whether the node has a
/// session with `x`.
pub fn check_info(
    me: &NodeName,
    info: &GlobalGroupsInfo,
    session: impl Fn(&NodeName) -> bool,
) -> Result<(), String> {
    for x in info.own_group_nodes.iter().filter(|x| *x != me) {
        let lists: Vec<&str> = [
            ("synced_nodes", &info.synced_nodes),
            ("sync_error", &info.sync_error),
            ("no_contact", &info.no_contact),
        ]
        .into_iter()
        .filter(|(_, l)| l.contains(x))
        .map(|(name, _)| name)
        .collect();
        if lists.len() != 1 {
            let shown = if lists.is_empty() {
                "none of synced_nodes, sync_error, no_contact".to_string()
            } else {
                lists.join(" and ")
            };
            return Err(format!(
                "{me} (group {:?}) lists own-group node {x} in {shown}: {info:?}",
                info.own_group_name
            ));
        }
        let up = session(x);
        if up == info.no_contact.contains(x) {
            return Err(format!(
                "{me} lists {x} {} no_contact, but {} a session with it: {info:?}",
                if up { "under" } else { "outside" },
                if up { "has" } else { "has no" }
            ));
        }
    }
    Ok(())
}

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    if !sim.config().groups {
        return Ok(());
    }
    for (o, node) in sim.nodes().iter().enumerate() {
        let Some(core) = node.core() else { continue };
        if !core.groups().configured() {
            continue;
        }
        let info = core.groups().info(&[]);
        check_info(&node.name, &info, |x| {
            core.cluster().peer_creation(x).is_some()
        })
        .map_err(|e| format!("n{o}: {e}"))?;
    }
    Ok(())
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    if !sim.config().groups {
        return Ok(());
    }
    for (o, node) in sim.nodes().iter().enumerate() {
        let Some(core) = node.core() else { continue };
        if !core.groups().configured() {
            continue;
        }
        let info = core.groups().info(&[]);
        for (x, other) in sim.nodes().iter().enumerate() {
            if x == o || !sim.counts(o, x) {
                continue;
            }
            if core.cluster().peer_creation(&other.name).is_none() {
                continue;
            }
            let synced = info.synced_nodes.contains(&other.name);
            let error = info.sync_error.contains(&other.name);
            let agree = sim.same_group(o, x);
            if agree && !synced {
                return Err(format!(
                    "after settling, n{o} has a session with n{x}, which holds the same definition, but has not synced it: {info:?}"
                ));
            }
            if !agree && !error {
                return Err(format!(
                    "after settling, n{o} has a session with n{x}, whose definition differs (or which does not count n{o}), but does not list it under sync_error: {info:?}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).expect("valid")
    }

    fn info(synced: &[&str], error: &[&str], none: &[&str]) -> GlobalGroupsInfo {
        let v = |l: &[&str]| l.iter().map(|s| n(s)).collect::<Vec<_>>();
        GlobalGroupsInfo {
            state: "synced".into(),
            own_group_name: Some("g1".into()),
            own_group_nodes: v(&["a@h", "b@h", "e@h"]),
            synced_nodes: v(synced),
            sync_error: v(error),
            no_contact: v(none),
            other_groups: Vec::new(),
        }
    }

    #[test]
    fn limbo_and_double_listing_are_caught() {
        let e = n("e@h");
        let up = |_: &NodeName| true;
        check_info(&e, &info(&[], &["a@h", "b@h"], &[]), up).expect("the fixed case");
        // The case before the fix: a and b in none of the lists.
        let err = check_info(&e, &info(&[], &[], &[]), up).unwrap_err();
        assert!(err.contains("none of"), "{err}");
        assert!(check_info(&e, &info(&["a@h"], &["a@h", "b@h"], &[]), up).is_err());
        // no_contact must mean no session, and the other way round.
        assert!(check_info(&e, &info(&[], &["b@h"], &["a@h"]), up).is_err());
        let down = |_: &NodeName| false;
        assert!(check_info(&e, &info(&[], &[], &["a@h", "b@h"]), down).is_ok());
        assert!(check_info(&e, &info(&["a@h"], &[], &["b@h"]), down).is_err());
    }
}
