//! Every node that held a claim which lost a clash reports the clash
//! (`ConflictResolved`) exactly once, as the loser's node settled it
//! (winner and action), in the loser's node's order.
//!
//! The loser's own node settles a clash and reports it when it retracts
//! the losing claim; that report is the clash. After settling, for each
//! reporting node's current incarnation:
//! - every report it made matches a clash its loser's node reported
//!   (same table, name, loser, winner and action) no later;
//! - for each loser's node and name, its reports come in the order the
//!   loser's node reported them, none twice (a subsequence of that node's
//!   reports of the name);
//! - every clash settled while both it and the loser's node (still the
//!   same incarnation) counted each other as synced, without a break
//!   since before the retraction, was reported: it held the losing claim
//!   (from the loser's node's snapshot or stream), and the retraction or,
//!   after a lost frame, the snapshot that repairs it reached it.

use std::collections::BTreeMap;

use super::invariant::Invariant;
use crate::ledger::ClashReport;
use crate::sim::Sim;

/// Clashes are told on every node that held the losing claim, once, alike.
pub const CONFLICT_TOLD_EVERYWHERE: Invariant = Invariant {
    name: "conflict_told_everywhere",
    always: None,
    eventually: Some(eventually),
};

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let reg = &sim.ledger().reg;
    let nodes = sim.nodes();
    let index = |r: &ClashReport| sim.index_of(r.loser.node());
    // The clashes: reports of the losers' own nodes, by loser incarnation
    // and (table, name), in order.
    let is_own = |r: &ClashReport| index(r) == Some(r.node) && r.loser.creation() == r.creation;
    type Key = (usize, u32, String, String);
    let key = |r: &ClashReport, b: usize| (b, r.loser.creation(), r.table.clone(), r.name.clone());
    let mut settled: BTreeMap<Key, Vec<&ClashReport>> = BTreeMap::new();
    for r in reg.clash_reports.iter().filter(|r| is_own(r)) {
        settled.entry(key(r, r.node)).or_default().push(r);
    }
    // Each incarnation's reports of other nodes' losers.
    let mut told: BTreeMap<(usize, u32), BTreeMap<Key, Vec<&ClashReport>>> = BTreeMap::new();
    for r in reg.clash_reports.iter().filter(|r| !is_own(r)) {
        let Some(b) = index(r) else {
            return Err(format!(
                "n{} reported a clash of an unknown node: {r:?}",
                r.node
            ));
        };
        told.entry((r.node, r.creation))
            .or_default()
            .entry(key(r, b))
            .or_default()
            .push(r);
    }
    for ((n, c), by_key) in &told {
        for (k, reports) in by_key {
            let own = settled.get(k).map(Vec::as_slice).unwrap_or(&[]);
            // A subsequence of the loser's node's reports, each no earlier.
            let mut at = 0;
            for r in reports {
                match own[at..].iter().position(|o| o.same(r) && o.at <= r.at) {
                    Some(p) => at += p + 1,
                    None => {
                        return Err(format!(
                            "n{n}.{c} reported {}/{} loser {} winner {:?} {:?} at {:?}, \
                             which its loser's node did not settle so (or not in this \
                             order, or it was told twice); the loser's node reported: {:?}",
                            r.table,
                            r.name,
                            r.loser,
                            r.winner,
                            r.action,
                            r.at,
                            own.iter()
                                .map(|o| (o.at, &o.loser, &o.winner, o.action))
                                .collect::<Vec<_>>()
                        ))
                    }
                }
            }
        }
    }
    // Completeness, for current incarnations synced both ways throughout.
    for (k, own) in &settled {
        let (b, cb, _, _) = k;
        if nodes[*b].creation != *cb || nodes[*b].core().is_none() {
            continue;
        }
        for (n, node) in nodes.iter().enumerate() {
            if n == *b || node.core().is_none() {
                continue;
            }
            let (Some(s1), Some(s2)) = (reg.synced.get(&(n, *b)), reg.synced.get(&(*b, n))) else {
                continue;
            };
            let since = (*s1).max(*s2);
            let due: Vec<&&ClashReport> = own.iter().filter(|o| o.at > since).collect();
            let got = told
                .get(&(n, node.creation))
                .and_then(|m| m.get(k))
                .map_or(0, Vec::len);
            if got < due.len() {
                let missed = due[got.min(due.len() - 1)];
                return Err(format!(
                    "n{n}.{} (synced with n{b} since {since:?}) reported {got} of the {} \
                     clashes n{b}.{cb} settled on {}/{} since; missed loser {} winner {:?} \
                     {:?} (settled at {:?})",
                    node.creation,
                    due.len(),
                    k.2,
                    k.3,
                    missed.loser,
                    missed.winner,
                    missed.action,
                    missed.at
                ));
            }
        }
    }
    Ok(())
}
