//! Global groups (OTP `global_group`): the cluster split into named
//! partitions, each with its own name space.
//!
//! - Configuration: a list of groups, each a name, a publish type and its
//!   nodes. No configuration means one implicit group of every connected
//!   node (`no_conf`), behaving exactly like a cluster without groups.
//! - With a configuration, a node meshes only with its own group; names
//!   and process-group scopes replicate only inside it. A node of another
//!   group can still be reached for queries and sends; when either side is
//!   in a `hidden` group that connection is hidden (not in `nodes()`).
//! - A session with an own-group node becomes *synced* only once both
//!   nodes have checked that they hold the same definition of their group
//!   (by its digest; the definition itself is sent only when the digests
//!   differ, so that both nodes can say how); a node whose definition
//!   differs is listed under `sync_error` and never merged. Only synced nodes take part in names and groups, and only
//!   they are reported to `monitor_nodes` subscribers.
//! - Every node of the own group other than this one is, at every moment,
//!   in exactly one of `synced_nodes`, `sync_error` and `no_contact`: a
//!   node with a session is under `sync_error` until its definition
//!   matched (as in OTP, which sets it there at `nodeup`), and every check
//!   is answered. A node that receives a check from a node it does not
//!   count in its own group (or that has no configuration) answers with
//!   its own definition, which cannot match: OTP answers such a
//!   `conf_check` with `config_error`, and the asker lists the node under
//!   `sync_error`. A definition is never answered, so two nodes never
//!   ping-pong.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

mod config;
mod wire;

pub use self::config::{
    DefDigest, GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsError, Publish, Visibility,
};
pub use self::wire::{Answer, GlobalGroupsEffect, GlobalGroupsFrame, Query};
use crate::ctx::Ctx;
use crate::effect::{Effect, ReqId};
use crate::pid::NodeName;
use crate::proto::Frame;

/// A change of the set of nodes that take part in names and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The node now takes part.
    Up(NodeName, u32),
    /// The node no longer takes part.
    Down(NodeName, u32),
}

/// What [`GlobalGroupsState::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalGroupsInfo {
    /// `no_conf` or `synced`.
    pub state: String,
    /// The own group's name (`None` without configuration).
    pub own_group_name: Option<String>,
    /// The own group's nodes (every known node without configuration).
    pub own_group_nodes: Vec<NodeName>,
    /// Own-group nodes whose definition matched ours.
    pub synced_nodes: Vec<NodeName>,
    /// Own-group nodes whose definition differs.
    pub sync_error: Vec<NodeName>,
    /// Own-group nodes with no session.
    pub no_contact: Vec<NodeName>,
    /// The other groups, in configuration order.
    pub other_groups: Vec<GlobalGroupDef>,
}

/// The global-group state of one node.
#[derive(Debug, Default)]
pub struct GlobalGroupsState {
    me: Option<NodeName>,
    cfg: GlobalGroupsConfig,
    vis: Visibility,
    own: Option<GlobalGroupDef>,
    /// The digest of `own`.
    own_digest: Option<DefDigest>,
    /// Sessions up, with creations.
    sessions: BTreeMap<NodeName, u32>,
    synced: BTreeSet<NodeName>,
    sync_error: BTreeSet<NodeName>,
    /// Pending queries: id → (node asked, driver request).
    asks: BTreeMap<u64, (NodeName, ReqId)>,
    next_ask: u64,
    /// Pending `sync` requests: req → nodes still to answer.
    syncs: BTreeMap<ReqId, BTreeSet<NodeName>>,
}

impl GlobalGroupsState {
    /// The state for node `me` (the configuration must be valid).
    pub fn new(cfg: GlobalGroupsConfig, me: &NodeName) -> Self {
        let vis = Visibility::of(&cfg, me);
        let own = cfg.group_of(me).map(GlobalGroupDef::canonical);
        let own_digest = own.as_ref().map(GlobalGroupDef::digest);
        GlobalGroupsState {
            me: Some(me.clone()),
            cfg,
            vis,
            own,
            own_digest,
            ..Default::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GlobalGroupsConfig {
        &self.cfg
    }

    /// Whether groups are configured.
    pub fn configured(&self) -> bool {
        self.own.is_some()
    }

    /// Who sees whom.
    pub fn visibility(&self) -> &Visibility {
        &self.vis
    }

    /// A session is up.
    pub fn peer_up(
        &mut self,
        node: &NodeName,
        creation: u32,
        ctx: &mut Ctx<'_>,
    ) -> Vec<Transition> {
        self.sessions.insert(node.clone(), creation);
        if !self.configured() {
            return vec![Transition::Up(node.clone(), creation)];
        }
        if self.vis.in_own(node) {
            // Not synced until its definition matched ours; the check
            // below is always answered (by its own check, or by its
            // definition when the digests differ or it does not count us
            // in its group).
            self.synced.remove(node);
            self.sync_error.insert(node.clone());
            self.send_check(node, false, ctx);
        }
        Vec::new()
    }

    fn send_check(&self, node: &NodeName, ask: bool, ctx: &mut Ctx<'_>) {
        if let Some(digest) = self.own_digest {
            ctx.send(
                node,
                Frame::GlobalGroup(GlobalGroupsFrame::Check { digest, ask }),
            );
        }
    }

    fn send_definition(&self, node: &NodeName, ctx: &mut Ctx<'_>) {
        ctx.send(
            node,
            Frame::GlobalGroup(GlobalGroupsFrame::Definition {
                def: self.own.clone(),
            }),
        );
    }

    /// A session ended.
    pub fn peer_down(
        &mut self,
        node: &NodeName,
        creation: u32,
        ctx: &mut Ctx<'_>,
    ) -> Vec<Transition> {
        self.sessions.remove(node);
        self.sync_error.remove(node);
        let mut out = Vec::new();
        let was = if self.configured() {
            self.synced.remove(node)
        } else {
            true
        };
        if was {
            out.push(Transition::Down(node.clone(), creation));
        }
        let lost: Vec<u64> = self
            .asks
            .iter()
            .filter(|(_, (n, _))| n == node)
            .map(|(&id, _)| id)
            .collect();
        for id in lost {
            let (_, req) = self.asks.remove(&id).expect("present");
            ctx.push(Effect::Groups(GlobalGroupsEffect::Answered {
                req,
                answer: None,
            }));
        }
        self.settle_syncs(node, ctx);
        out
    }

    fn settle_syncs(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        let mut done = Vec::new();
        for (req, waiting) in &mut self.syncs {
            waiting.remove(node);
            if waiting.is_empty() {
                done.push(*req);
            }
        }
        for req in done {
            self.syncs.remove(&req);
            ctx.push(Effect::Groups(GlobalGroupsEffect::Synced { req }));
        }
    }

    /// A global-group frame (queries are answered by the node core itself).
    pub fn frame(
        &mut self,
        node: &NodeName,
        frame: GlobalGroupsFrame,
        ctx: &mut Ctx<'_>,
    ) -> Vec<Transition> {
        match frame {
            GlobalGroupsFrame::Check { digest, ask } => {
                if !self.configured() || !self.vis.in_own(node) {
                    self.answer_outsider(node, ctx);
                    return Vec::new();
                }
                if ask {
                    self.send_check(node, false, ctx);
                }
                if !self.sessions.contains_key(node) {
                    return Vec::new();
                }
                let out = if Some(digest) == self.own_digest {
                    self.set_synced(node, true)
                } else {
                    // The warning names both definitions: it is written
                    // when the peer's definition arrives (it answers ours
                    // the same way).
                    debug!(
                        peer = %node,
                        "global group definition digest of {node} differs from ours; sending our definition"
                    );
                    self.send_definition(node, ctx);
                    self.set_synced(node, false)
                };
                self.settle_syncs(node, ctx);
                out
            }
            GlobalGroupsFrame::Definition { def } => {
                if !self.configured() || !self.vis.in_own(node) {
                    debug!(
                        peer = %node,
                        "global group definition from a node outside our own group; ignored"
                    );
                    return Vec::new();
                }
                if !self.sessions.contains_key(node) {
                    return Vec::new();
                }
                let def = def.map(|d| d.canonical());
                let same = def == self.own;
                if !same {
                    let ours = self.own.as_ref().map_or("-", |d| d.name.as_str());
                    let theirs = def
                        .as_ref()
                        .map_or("none (no configuration)", |d| d.name.as_str());
                    warn!(
                        peer = %node,
                        ours,
                        theirs,
                        our_nodes = ?self.own.as_ref().map(|d| &d.nodes),
                        their_nodes = ?def.as_ref().map(|d| &d.nodes),
                        "global group definition of {node} ({theirs}) differs from ours ({ours}); node excluded (sync_error)"
                    );
                }
                let out = self.set_synced(node, same);
                self.settle_syncs(node, ctx);
                out
            }
            GlobalGroupsFrame::Ask { .. } => Vec::new(),
            GlobalGroupsFrame::Answer { id, answer } => {
                if let Some((n, req)) = self.asks.remove(&id) {
                    if &n == node {
                        ctx.push(Effect::Groups(GlobalGroupsEffect::Answered {
                            req,
                            answer: Some(answer),
                        }));
                    } else {
                        self.asks.insert(id, (n, req));
                    }
                }
                Vec::new()
            }
        }
    }

    /// A check from `node`, which this node does not count in its own
    /// group (or this node has no configuration). The sender counts us
    /// (it checks only nodes of its own group) and waits for an answer: it
    /// gets our definition (`None` without configuration), which cannot
    /// match its own (its group lists itself, ours does not), so it lists
    /// us under `sync_error`, as OTP's `config_error` answer does.
    fn answer_outsider(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        debug!(
            peer = %node,
            "global group check from a node outside our own group; answered with our definition (mismatch)"
        );
        self.send_definition(node, ctx);
    }

    /// Moves `node` (with a session) to `synced` or to `sync_error`.
    fn set_synced(&mut self, node: &NodeName, synced: bool) -> Vec<Transition> {
        let Some(&creation) = self.sessions.get(node) else {
            return Vec::new();
        };
        if synced {
            self.sync_error.remove(node);
            if self.synced.insert(node.clone()) {
                return vec![Transition::Up(node.clone(), creation)];
            }
        } else {
            self.sync_error.insert(node.clone());
            if self.synced.remove(node) {
                return vec![Transition::Down(node.clone(), creation)];
            }
        }
        Vec::new()
    }

    /// Asks `node` a question; answered by [`GlobalGroupsEffect::Answered`].
    pub fn ask(&mut self, node: &NodeName, query: Query, req: ReqId, ctx: &mut Ctx<'_>) {
        self.next_ask += 1;
        let id = self.next_ask;
        if ctx.send(
            node,
            Frame::GlobalGroup(GlobalGroupsFrame::Ask { id, query }),
        ) {
            self.asks.insert(id, (node.clone(), req));
        } else {
            ctx.push(Effect::Groups(GlobalGroupsEffect::Answered {
                req,
                answer: None,
            }));
        }
    }

    /// Re-checks the definition with every own-group node that has a
    /// session; answered by [`GlobalGroupsEffect::Synced`] once all replied (or
    /// went away).
    pub fn sync(&mut self, req: ReqId, ctx: &mut Ctx<'_>) {
        let targets: BTreeSet<NodeName> = if self.configured() {
            self.sessions
                .keys()
                .filter(|n| self.vis.in_own(n))
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        for n in &targets {
            self.send_check(n, true, ctx);
        }
        if targets.is_empty() {
            ctx.push(Effect::Groups(GlobalGroupsEffect::Synced { req }));
        } else {
            self.syncs.insert(req, targets);
        }
    }

    /// The state as `global_group:info()` reports it.
    pub fn info(&self, known: &[NodeName]) -> GlobalGroupsInfo {
        let Some(own) = &self.own else {
            // As OTP's `own_nodes()` without configuration: this node and
            // every connected one.
            let mut nodes = known.to_vec();
            nodes.extend(self.me.clone());
            nodes.sort();
            nodes.dedup();
            return GlobalGroupsInfo {
                state: "no_conf".into(),
                own_group_name: None,
                own_group_nodes: nodes,
                synced_nodes: Vec::new(),
                sync_error: Vec::new(),
                no_contact: Vec::new(),
                other_groups: Vec::new(),
            };
        };
        GlobalGroupsInfo {
            state: "synced".into(),
            own_group_name: Some(own.name.clone()),
            own_group_nodes: own.nodes.clone(),
            synced_nodes: self.synced.iter().cloned().collect(),
            sync_error: self.sync_error.iter().cloned().collect(),
            no_contact: own
                .nodes
                .iter()
                .filter(|n| Some(*n) != self.me.as_ref() && !self.sessions.contains_key(*n))
                .cloned()
                .collect(),
            other_groups: self
                .cfg
                .groups
                .iter()
                .filter(|g| g.name != own.name)
                .cloned()
                .collect(),
        }
    }
}
