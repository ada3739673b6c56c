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
//!   nodes have checked that they hold the same definition of their group;
//!   a node whose definition differs is listed under `sync_error` and never
//!   merged. Only synced nodes take part in names and groups, and only
//!   they are reported to `monitor_nodes` subscribers.
//! - Every node of the own group other than this one is, at every moment,
//!   in exactly one of `synced_nodes`, `sync_error` and `no_contact`: a
//!   node with a session is under `sync_error` until its definition
//!   matched (as in OTP, which sets it there at `nodeup`), and every check
//!   is answered. A node that receives a check from a node it does not
//!   count in its own group (or that has no configuration) answers with
//!   its own definition, which cannot match: OTP answers such a
//!   `conf_check` with `config_error`, and the asker lists the node under
//!   `sync_error`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::ctx::Ctx;
use super::pid::{NodeName, Pid};
use super::proto::Frame;
use super::{Effect, ReqId};
use bytes::Bytes;

/// How a group's nodes connect to other groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Publish {
    /// Connections to other groups are ordinary, visible ones.
    Normal,
    /// Connections to other groups are hidden.
    Hidden,
}

impl std::str::FromStr for Publish {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Publish::Normal),
            "hidden" => Ok(Publish::Hidden),
            other => Err(format!(
                "unknown publish type {other:?} (expected \"normal\" or \"hidden\")"
            )),
        }
    }
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Publish::Normal => "normal",
            Publish::Hidden => "hidden",
        })
    }
}

/// One global group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GlobalGroupDef {
    /// The group's name.
    pub name: String,
    /// How it connects to other groups.
    pub publish: Publish,
    /// Its nodes.
    pub nodes: Vec<NodeName>,
}

impl GlobalGroupDef {
    /// A group definition.
    pub fn new(
        name: impl Into<String>,
        publish: Publish,
        nodes: impl IntoIterator<Item = NodeName>,
    ) -> Self {
        GlobalGroupDef {
            name: name.into(),
            publish,
            nodes: nodes.into_iter().collect(),
        }
    }

    /// The definition with its nodes sorted, for comparison.
    fn canonical(&self) -> GlobalGroupDef {
        let mut d = self.clone();
        d.nodes.sort();
        d
    }
}

/// The global-group configuration of a node; empty means `no_conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalGroupsConfig {
    /// The groups, in configuration order (the order of `whereis` lookups).
    pub groups: Vec<GlobalGroupDef>,
}

/// A configuration that cannot be used. The node does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalGroupsError {
    /// A node is listed in two groups (or twice in one).
    #[error("global groups: node {node} is listed in both {first:?} and {second:?}")]
    NodeTwice {
        /// The node.
        node: NodeName,
        /// The first group listing it.
        first: String,
        /// The second group listing it.
        second: String,
    },
    /// Two groups share a name.
    #[error("global groups: group {0:?} is defined twice")]
    GroupTwice(String),
    /// A group has an empty name.
    #[error("global groups: group #{0} has an empty name")]
    EmptyName(usize),
    /// Groups are configured but this node is in none of them.
    #[error("global groups: this node ({0}) is not in any group")]
    NotMember(NodeName),
}

impl GlobalGroupsConfig {
    /// Checks the configuration for node `me`.
    pub fn validate(&self, me: &NodeName) -> Result<(), GlobalGroupsError> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let mut seen: BTreeMap<&NodeName, &str> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            if g.name.trim().is_empty() {
                return Err(GlobalGroupsError::EmptyName(i + 1));
            }
            if !names.insert(g.name.as_str()) {
                return Err(GlobalGroupsError::GroupTwice(g.name.clone()));
            }
            for n in &g.nodes {
                if let Some(first) = seen.insert(n, &g.name) {
                    return Err(GlobalGroupsError::NodeTwice {
                        node: n.clone(),
                        first: first.to_string(),
                        second: g.name.clone(),
                    });
                }
            }
        }
        if !seen.contains_key(me) {
            return Err(GlobalGroupsError::NotMember(me.clone()));
        }
        Ok(())
    }

    /// The group of `node`, if configured.
    pub fn group_of(&self, node: &NodeName) -> Option<&GlobalGroupDef> {
        self.groups.iter().find(|g| g.nodes.contains(node))
    }
}

/// Who can see whom: derived from the configuration, used by the peer
/// session layer for meshing and hiding.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// Nodes of the own group; `None` without configuration.
    pub own: Option<BTreeSet<NodeName>>,
    /// This node is in a hidden group.
    pub hidden_me: bool,
    /// Nodes in hidden groups.
    pub hidden: BTreeSet<NodeName>,
}

impl Visibility {
    /// The visibility of node `me` under `cfg`.
    pub fn of(cfg: &GlobalGroupsConfig, me: &NodeName) -> Self {
        let Some(own) = cfg.group_of(me) else {
            return Visibility::default();
        };
        Visibility {
            own: Some(own.nodes.iter().cloned().collect()),
            hidden_me: own.publish == Publish::Hidden,
            hidden: cfg
                .groups
                .iter()
                .filter(|g| g.publish == Publish::Hidden)
                .flat_map(|g| g.nodes.iter().cloned())
                .collect(),
        }
    }

    /// Whether `node` is in this node's own group (always, without configuration).
    pub fn in_own(&self, node: &NodeName) -> bool {
        self.own.as_ref().is_none_or(|o| o.contains(node))
    }

    /// Whether a session with `node` is hidden.
    pub fn is_hidden(&self, node: &NodeName) -> bool {
        !self.in_own(node) && (self.hidden_me || self.hidden.contains(node))
    }
}

/// A question asked of a node of another group (or of any node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// Who holds `name` in the default name table there?
    Whereis(String),
    /// Which names are registered there?
    RegisteredNames,
    /// Deliver `payload` to the holder of `name` there.
    Send {
        /// The name.
        name: String,
        /// The sending process, if any.
        from: Option<Pid>,
        /// The message.
        payload: Bytes,
    },
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The holder of the name, if any.
    Whereis(Option<Pid>),
    /// The registered names, sorted.
    Names(Vec<String>),
    /// The message went to this pid (or nobody held the name).
    Sent(Option<Pid>),
}

/// Wire messages of the global-group layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalGroupsFrame {
    /// "This is my group's definition" (`None`: I have no configuration).
    Check {
        /// The sender's own group definition.
        def: Option<GlobalGroupDef>,
        /// The sender wants the receiver's definition back (a `sync`).
        ask: bool,
    },
    /// A query; answered with [`GlobalGroupsFrame::Answer`].
    Ask {
        /// Request id on the asking node.
        id: u64,
        /// The question.
        query: Query,
    },
    /// The answer to an [`GlobalGroupsFrame::Ask`].
    Answer {
        /// The request id.
        id: u64,
        /// The answer.
        answer: Answer,
    },
}

/// Effects of the global-group layer for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalGroupsEffect {
    /// An own-group node became synced (`up`) or was lost.
    Node {
        /// The node.
        node: NodeName,
        /// Up (synced) or down.
        up: bool,
    },
    /// A query to `node` was answered (`None`: the node went away first).
    Answered {
        /// The request.
        req: ReqId,
        /// The answer.
        answer: Option<Answer>,
    },
    /// A `sync` request completed.
    Synced {
        /// The request.
        req: ReqId,
    },
}

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
        GlobalGroupsState {
            me: Some(me.clone()),
            cfg,
            vis,
            own,
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
            // below is always answered (by its own check, or by a
            // mismatch when it does not count us in its group).
            self.synced.remove(node);
            self.sync_error.insert(node.clone());
            ctx.send(
                node,
                Frame::GlobalGroup(GlobalGroupsFrame::Check {
                    def: self.own.clone(),
                    ask: false,
                }),
            );
        }
        Vec::new()
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
            GlobalGroupsFrame::Check { def, ask } => {
                let mut out = Vec::new();
                if !self.configured() || !self.vis.in_own(node) {
                    self.answer_outsider(node, def.as_ref(), ctx);
                    return out;
                }
                if ask {
                    ctx.send(
                        node,
                        Frame::GlobalGroup(GlobalGroupsFrame::Check {
                            def: self.own.clone(),
                            ask: false,
                        }),
                    );
                }
                let Some(&creation) = self.sessions.get(node) else {
                    return out;
                };
                let def = def.map(|d| d.canonical());
                let same = def == self.own;
                if same {
                    self.sync_error.remove(node);
                    if self.synced.insert(node.clone()) {
                        out.push(Transition::Up(node.clone(), creation));
                    }
                } else {
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
                    self.sync_error.insert(node.clone());
                    if self.synced.remove(node) {
                        out.push(Transition::Down(node.clone(), creation));
                    }
                }
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
    /// group (or this node has no configuration). When the sender's
    /// definition lists this node, the sender counts us and waits for an
    /// answer: it gets our definition (`None` without configuration),
    /// which cannot match its own (its group lists itself, ours does not),
    /// so it lists us under `sync_error`, as OTP's `config_error` answer
    /// does. A definition that does not list us is itself such an answer
    /// (or a stray) and is not answered, so two nodes never ping-pong.
    /// Encoded as an ordinary [`GlobalGroupsFrame::Check`]: no new wire variant.
    fn answer_outsider(
        &mut self,
        node: &NodeName,
        def: Option<&GlobalGroupDef>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(me) = &self.me else { return };
        if !def.is_some_and(|d| d.nodes.contains(me)) {
            return;
        }
        debug!(
            peer = %node,
            "global group check from a node outside our own group; answered with our definition (mismatch)"
        );
        ctx.send(
            node,
            Frame::GlobalGroup(GlobalGroupsFrame::Check {
                def: self.own.clone(),
                ask: false,
            }),
        );
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
            ctx.send(
                n,
                Frame::GlobalGroup(GlobalGroupsFrame::Check {
                    def: self.own.clone(),
                    ask: true,
                }),
            );
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
