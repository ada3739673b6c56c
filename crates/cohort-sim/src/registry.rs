//! The registry layers every simulated node runs, and the names the
//! workload uses with them.
//!
//! - Scopes: `pg` runs on every node (the runtime starts it; the sim does
//!   it here), `s2` on nodes whose index is not 2 mod 3, so some nodes do
//!   not run it and must never see its members.
//! - Name tables: `locked` (the default table: [`Mode::Locked`], loser
//!   killed) and `eventual` ([`Mode::Eventual`], loser notified).
//! - Global groups (with [`SimConfig::groups`](crate::config::SimConfig)):
//!   `g1` (normal) holds the first half of the nodes, `g2` (hidden) the rest;
//!   with a [`Mismatch`], one node's definition deliberately differs.
//!
//! The operations on them and the bookkeeping of what the cores answer are
//! part of the simulation (`sim/pg.rs`, `sim/names.rs`,
//! `sim/global_group.rs`).

use cohort_proto::global_group::{GlobalGroupDef, GlobalGroupsConfig, Publish};
use cohort_proto::names::{LossPolicy, Mode, NamesConfig, TableConfig};
use cohort_proto::pid::NodeName;

use crate::config::Mismatch;
use crate::net::NodeIdx;

/// The process-group scopes of the simulation.
pub const SCOPES: [&str; 2] = ["pg", "s2"];

/// The name tables: the default (locked) one first.
pub const TABLES: [&str; 2] = ["locked", "eventual"];

/// Group names the workload uses.
pub const GROUPS: [&str; 4] = ["ga", "gb", "gc", "gd"];

/// Names the workload registers (few, so they clash).
pub const NAMES: [&str; 6] = ["alpha", "beta", "gamma", "delta", "eps", "zeta"];

/// The name tables every node runs.
pub fn names_config() -> NamesConfig {
    NamesConfig::empty()
        .table(
            TableConfig::new(TABLES[0])
                .mode(Mode::Locked)
                .policy(LossPolicy::Kill),
        )
        .table(
            TableConfig::new(TABLES[1])
                .mode(Mode::Eventual)
                .policy(LossPolicy::Notify),
        )
}

/// Whether node `i` runs `scope`.
pub fn runs_scope(i: NodeIdx, scope: &str) -> bool {
    scope == SCOPES[0] || i % 3 != 2
}

/// The global-group configuration of each of `n` nodes: none without
/// `groups`; else `g1` (normal) with the first half, `g2` (hidden) with
/// the rest, changed for one node as `mismatch` (resolved: not `Seeded`)
/// says.
pub fn groups_configs(n: usize, groups: bool, mismatch: Mismatch) -> Vec<GlobalGroupsConfig> {
    if !groups {
        return vec![GlobalGroupsConfig::default(); n];
    }
    let name = |i: usize| NodeName::new(&format!("n{i}@sim")).expect("valid node name");
    let split = n.div_ceil(2);
    let base = |g1: Vec<usize>, g2: Vec<usize>| {
        GlobalGroupsConfig::new([
            GlobalGroupDef::new("g1", Publish::Normal, g1.into_iter().map(name)),
            GlobalGroupDef::new("g2", Publish::Hidden, g2.into_iter().map(name)),
        ])
    };
    let mut out = vec![base((0..split).collect(), (split..n).collect()); n];
    match mismatch {
        Mismatch::Extra | Mismatch::Missing if n < 2 => {}
        Mismatch::Missing if n >= 3 => {
            out[0] = base(
                (0..split).filter(|&i| i != 1).collect(),
                (split..n).collect(),
            );
        }
        Mismatch::Extra | Mismatch::Missing => {
            let m = n - 1;
            out[m] = base(
                (0..split).chain([m]).collect(),
                (split..n).filter(|&i| i != m).collect(),
            );
        }
        Mismatch::None | Mismatch::Seeded => {}
    }
    out
}

/// `n` nodes in `k` global groups `g0`, `g1`, ... of (nearly) equal size,
/// in index order; even-numbered groups are normal, odd ones hidden. Every
/// node holds the same definitions.
pub fn split_groups(n: usize, k: usize) -> Vec<GlobalGroupsConfig> {
    let name = |i: usize| NodeName::new(&format!("n{i}@sim")).expect("valid node name");
    let k = k.clamp(1, n.max(1));
    let config = GlobalGroupsConfig::new((0..k).map(|j| {
        let publish = if j % 2 == 0 {
            Publish::Normal
        } else {
            Publish::Hidden
        };
        GlobalGroupDef::new(
            format!("g{j}"),
            publish,
            (j * n / k..(j + 1) * n / k).map(name),
        )
    }));
    vec![config; n]
}

/// The global group each node syncs in, from the nodes' configurations
/// (`configs[i]` is node `i`'s): nodes holding the same definition of
/// their own group share an id, numbered in order of first appearance.
pub fn group_ids(configs: &[GlobalGroupsConfig]) -> Vec<usize> {
    let mut defs: Vec<(String, Publish, Vec<NodeName>)> = Vec::new();
    let mut ids = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let me = NodeName::new(&format!("n{i}@sim")).expect("valid node name");
        let own = config.group_of(&me).expect("every node is in a group");
        let mut nodes = own.nodes.clone();
        nodes.sort();
        let key = (own.name.clone(), own.publish, nodes);
        ids.push(defs.iter().position(|d| *d == key).unwrap_or_else(|| {
            defs.push(key);
            defs.len() - 1
        }));
    }
    ids
}
