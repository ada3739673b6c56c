//! After quiescence each name has exactly one owner, the same on every
//! node of the global group, and it is the one the documented rank
//! chooses.
//!
//! After every step the simulator looks at the claims each node holds for
//! its own processes, per global group and table; when two or more claims
//! on one name are held at once (they may sit in different partitions),
//! it records the winner that [`rank::winner`] picks from them. After
//! quiescence, for every table and every pair of synced nodes of a group:
//! the same names resolve to the same pids; every node holds exactly one
//! claim per visible name and none for invisible ones (clashes settled,
//! losers retracted); owners are alive and of the group; and where a clash
//! was recorded after the workload last touched the name and its winner
//! still lives, the winner owns the name.
//!
//! An `unregister` called on another node than the holder's touches the
//! name again when its request reaches the holder's node: it retracts the
//! holder's claim then, even when that claim has meanwhile become the
//! winner of a clash with a claim made in another partition, and the
//! remaining claim rightly stands alone (seed 61052: the request was held
//! by a partition, its caller answered after the 3 s ack time-out, and it
//! arrived after the heal). A locked unregister is applied only once the
//! holder has the name lock on every node, so it may wait past the heal
//! even when its request arrived before: the name is touched again when
//! the holder applies it (seed 290 with `--groups on --mismatch extra`).
//!
//! [`rank::winner`]: cohort_proto::names::rank::winner

use std::collections::BTreeMap;

use super::invariant::Invariant;
use crate::registry::TABLES;
use crate::sim::Sim;

/// Names settle to the rank's winner everywhere.
pub const NAMES_UNIQUE: Invariant = Invariant {
    name: "names_unique",
    always: None,
    eventually: Some(eventually),
};

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let ledger = sim.ledger();
    let reg = &ledger.reg;
    let n = sim.nodes().len();
    // Nodes that see the same set of peers (a disconnect on purpose
    // may leave the mesh non-transitive) must agree.
    let circle = |x: usize| -> Vec<usize> {
        (0..n)
            .filter(|&y| y == x || reg.synced.contains_key(&(x, y)))
            .collect()
    };
    // Where the peers of a node do not all see each other, a clash
    // between two of them may never reach both claimants: only nodes
    // whose peers form a clique must have settled every clash.
    let clique = |x: usize| -> bool {
        let c = circle(x);
        c.iter().all(|&a| circle(a) == c)
    };
    for table in TABLES {
        for o in 0..n {
            let Some(core) = sim.nodes()[o].core() else {
                continue;
            };
            if !clique(o) {
                continue;
            }
            let names = core.names();
            let visible = names.registered_names(table);
            let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
            for c in names.claims(table) {
                *per_name.entry(c.name.clone()).or_default() += 1;
            }
            for (name, k) in &per_name {
                if *k != 1 || !visible.contains(name) {
                    return Err(format!(
                        "after settling, n{o} holds {k} claims on {table}/{name} (visible: {})",
                        visible.contains(name)
                    ));
                }
            }
            for name in &visible {
                let owner = names.whereis(table, name).expect("visible");
                if !ledger.is_alive(&owner) {
                    return Err(format!(
                        "after settling, n{o} resolves {table}/{name} to {owner}, which ended"
                    ));
                }
                let g = sim.group_of(o);
                if let Some(((at, expected), touched)) = reg
                    .clashes
                    .get(&(g, table.to_string(), name.clone()))
                    .map(|c| (c, reg.name_touched.get(&(table.to_string(), name.clone()))))
                {
                    let reachable = sim.index_of(expected.node()).is_some_and(|e| {
                        e == o
                            || (reg.synced.contains_key(&(o, e))
                                && reg.synced.contains_key(&(e, o)))
                    });
                    if touched.is_none_or(|t| t < at)
                        && reachable
                        && ledger.is_alive(expected)
                        && *expected != owner
                    {
                        return Err(format!(
                            "after settling, {table}/{name} is owned by {owner} on n{o}, but the rank chose {expected} in the clash seen at {}us",
                            at.0
                        ));
                    }
                }
            }
            for b in 0..n {
                if b == o || !reg.synced.contains_key(&(o, b)) || circle(o) != circle(b) {
                    continue;
                }
                let Some(other) = sim.nodes()[b].core() else {
                    continue;
                };
                let theirs = other.names().registered_names(table);
                if theirs != visible {
                    return Err(format!(
                        "after settling, n{o} and n{b} disagree on the names of {table}: {visible:?} vs {theirs:?}"
                    ));
                }
                for name in &visible {
                    let (x, y) = (
                        names.whereis(table, name),
                        other.names().whereis(table, name),
                    );
                    if x != y {
                        return Err(format!(
                            "after settling, {table}/{name} is {x:?} on n{o} but {y:?} on n{b}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
