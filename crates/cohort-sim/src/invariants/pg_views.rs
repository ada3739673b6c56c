//! Every node's view of a process group is the union of the live owners'
//! local memberships.
//!
//! At every step: a node's own members in its view are exactly the
//! memberships its processes made (an exited process is gone at once), and
//! every remote member belongs to a node of the same global group, running
//! the scope, whose session with the observer is up with that member's
//! incarnation. So no member of an exited process's *node* survives once
//! the observer processed `NodeDown` (the detection point).
//!
//! After quiescence: each node's view of each group equals the union of
//! the local memberships of itself and of every node it is synced with
//! that runs the scope (the mesh invariants make sure those are all the
//! live nodes of its global group).

use std::collections::BTreeMap;

use cohort_proto::pid::Pid;

use super::invariant::Invariant;
use crate::ledger::PidCounts;
use crate::net::NodeIdx;
use crate::registry::{runs_scope, SCOPES};
use crate::sim::Sim;

/// Views equal the union of live memberships.
pub const PG_VIEWS: Invariant = Invariant {
    name: "pg_views",
    always: Some(always),
    eventually: Some(eventually),
};

/// The view of `scope` on node `o`: group → pid → count.
pub fn view_of(sim: &Sim, o: NodeIdx, scope: &str) -> Option<BTreeMap<String, PidCounts>> {
    let v = sim.nodes()[o].core()?.pg().view(scope)?;
    let mut out: BTreeMap<String, PidCounts> = BTreeMap::new();
    for g in v.which_groups() {
        let m = v.members(&g);
        if m.is_empty() {
            continue;
        }
        let e = out.entry(g.to_string()).or_default();
        for p in m.pids() {
            *e.entry(p.clone()).or_default() += 1;
        }
    }
    Some(out)
}

/// The local memberships node `b` made in `scope`, as pids.
pub fn local_of(sim: &Sim, b: NodeIdx, scope: &str) -> BTreeMap<String, PidCounts> {
    let n = &sim.nodes()[b];
    let mut out: BTreeMap<String, PidCounts> = BTreeMap::new();
    if let Some(gs) = sim.ledger().reg.pg_local.get(&(b, scope.to_string())) {
        for (g, members) in gs {
            let e = out.entry(g.clone()).or_default();
            for (&s, &c) in members {
                if c > 0 {
                    e.insert(n.pid(s), c);
                }
            }
        }
    }
    out.retain(|_, m| !m.is_empty());
    out
}

fn diff(a: &BTreeMap<String, PidCounts>, b: &BTreeMap<String, PidCounts>) -> String {
    let mut out = Vec::new();
    let groups: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = PidCounts::new();
    for g in groups {
        let (x, y) = (a.get(g).unwrap_or(&empty), b.get(g).unwrap_or(&empty));
        for p in x
            .keys()
            .chain(y.keys())
            .collect::<std::collections::BTreeSet<&Pid>>()
        {
            let (cx, cy) = (
                x.get(p).copied().unwrap_or(0),
                y.get(p).copied().unwrap_or(0),
            );
            if cx != cy {
                out.push(format!("{g}: {p} shown {cx}x, expected {cy}x"));
            }
        }
    }
    out.truncate(6);
    out.join("; ")
}

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    let ledger = sim.ledger();
    for (o, node) in sim.nodes().iter().enumerate() {
        if !node.is_running() {
            continue;
        }
        for scope in SCOPES {
            let Some(view) = view_of(sim, o, scope) else {
                continue;
            };
            let mut own = view.clone();
            for m in own.values_mut() {
                m.retain(|p, _| p.node() == &node.name);
            }
            own.retain(|_, m| !m.is_empty());
            let want = local_of(sim, o, scope);
            if own != want {
                return Err(format!(
                    "n{o}.{} shows its own members of {scope} wrong: {}",
                    node.creation,
                    diff(&own, &want)
                ));
            }
            for (g, members) in &view {
                for p in members.keys() {
                    if p.node() == &node.name {
                        continue;
                    }
                    let Some(b) = sim.index_of(p.node()) else {
                        return Err(format!("n{o} shows unknown {p} in {scope}/{g}"));
                    };
                    let session = ledger.sessions.get(&(o, b)).copied();
                    if session != Some(p.creation()) || !runs_scope(b, scope) {
                        return Err(format!(
                            "n{o}.{} shows {p} in {scope}/{g}, but its session with n{b} is {} (detection passed)",
                            node.creation,
                            session.map_or_else(|| "down".to_string(), |c| format!("up with creation {c}"))
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let synced = &sim.ledger().reg.synced;
    for (o, node) in sim.nodes().iter().enumerate() {
        if !node.is_running() {
            continue;
        }
        for scope in SCOPES {
            let Some(view) = view_of(sim, o, scope) else {
                continue;
            };
            let mut want = local_of(sim, o, scope);
            for b in 0..sim.nodes().len() {
                if b == o
                    || !sim.nodes()[b].is_running()
                    || !runs_scope(b, scope)
                    || !synced.contains_key(&(o, b))
                {
                    continue;
                }
                for (g, m) in local_of(sim, b, scope) {
                    want.entry(g).or_default().extend(m);
                }
            }
            if view != want {
                return Err(format!(
                    "after settling, n{o}.{} shows {scope} wrong: {}",
                    node.creation,
                    diff(&view, &want)
                ));
            }
        }
    }
    Ok(())
}
