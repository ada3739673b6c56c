//! Global groups in the simulation: which nodes sync with which (from
//! each node's configuration), the cross-group `whereis` the workload
//! asks, and the bookkeeping the `group_boundary` invariant reads (synced
//! sessions, answers naming a pid outside the answering group).

use cohort_proto::global_group::{Answer, GlobalGroupsConfig, GlobalGroupsEffect, Query};

use super::Sim;
use crate::config::Mismatch;
use crate::ledger::Stray;
use crate::net::NodeIdx;

impl Sim {
    /// The global group node `i` syncs in: nodes with the same definition
    /// of their own group share it (0 without a configuration). Without a
    /// [`Mismatch`], 0 for `g1` and 1 for `g2`.
    pub fn group_of(&self, i: NodeIdx) -> usize {
        self.group_ids[i]
    }

    /// Whether `a` and `b` are in the same global group (hold the same
    /// definition of their own group, so they sync with each other).
    pub fn same_group(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.group_of(a) == self.group_of(b)
    }

    /// Whether `a`'s configuration lists `b` in `a`'s own group (always
    /// without configuration): `a` meshes with `b` and checks its
    /// definition. Not symmetric when definitions differ.
    pub fn counts(&self, a: NodeIdx, b: NodeIdx) -> bool {
        if !self.cfg.groups {
            return true;
        }
        let (na, nb) = (&self.nodes[a].name, &self.nodes[b].name);
        self.groups[a]
            .group_of(na)
            .is_some_and(|g| g.nodes.contains(nb))
    }

    /// Whether one of `a` and `b` counts the other in its own group.
    pub fn related(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.counts(a, b) || self.counts(b, a)
    }

    /// Whose global-group definitions differ in this run.
    pub fn mismatch(&self) -> Mismatch {
        self.mismatch
    }

    /// The global-group configuration node `i` starts with (empty: none).
    pub fn groups_config(&self, i: NodeIdx) -> &GlobalGroupsConfig {
        &self.groups[i]
    }

    /// Node `i` asks node `to` who holds `name` in its default table.
    pub fn groups_whereis(&mut self, i: NodeIdx, to: NodeIdx, name: &str) {
        let req = self.bump_req(i);
        let creation = self.nodes[i].creation;
        let node = self.nodes[to].name.clone();
        self.trace.event(
            self.now(),
            format_args!("op n{i}.{creation} groups-ask {node} whereis {name} req={req}"),
        );
        self.ledger.reg.asks.insert((i, creation, req), to);
        let q = Query::Whereis(name.to_string());
        self.input(i, |c, now| c.groups_ask(&node, q, req, now));
        self.count("groups: ask");
    }

    /// Records a global-group effect of node `i`: sessions taking part in
    /// names and groups (synced), answers to cross-group queries.
    pub(super) fn groups_effect(&mut self, i: NodeIdx, effect: GlobalGroupsEffect) {
        let creation = self.nodes[i].creation;
        match effect {
            GlobalGroupsEffect::Node { node, up } => {
                if let Some(b) = self.index_of(&node) {
                    if up {
                        let now = self.now();
                        self.ledger.reg.synced.insert((i, b), now);
                    } else {
                        self.ledger.reg.synced.remove(&(i, b));
                    }
                }
            }
            GlobalGroupsEffect::Answered { req, answer } => {
                let Some(to) = self.ledger.reg.asks.remove(&(i, creation, req)) else {
                    return;
                };
                self.count(if answer.is_some() {
                    "groups: answered"
                } else {
                    "groups: unanswered"
                });
                if let Some(Answer::Whereis(Some(pid))) = answer {
                    let owner = self.index_of(pid.node());
                    if owner.is_none_or(|o| !self.same_group(o, to)) {
                        let now = self.now();
                        let what = format!(
                            "n{to} answered n{i}'s whereis with {pid}, owned outside its group"
                        );
                        self.ledger.reg.crossings.push(Stray { at: now, what });
                    }
                }
            }
            GlobalGroupsEffect::Synced { .. } => {}
        }
    }

    /// Coverage: the own-group nodes listed under `sync_error` after
    /// settling, by why (the peer counts this node too, with another
    /// definition; or it does not count this node at all).
    pub(super) fn count_group_states(&mut self) {
        let mut seen = Vec::new();
        for (o, node) in self.nodes.iter().enumerate() {
            let Some(core) = node.core() else { continue };
            if !core.groups().configured() {
                continue;
            }
            for x in core.groups().info(&[]).sync_error {
                if let Some(b) = self.index_of(&x) {
                    seen.push(if self.counts(b, o) {
                        "groups: sync_error, other definition"
                    } else {
                        "groups: sync_error, not counted back"
                    });
                }
            }
        }
        for what in seen {
            self.count(what);
        }
    }
}
