//! The global-group configuration: groups, publish types, and which nodes
//! this node meshes with and sees as hidden.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pid::NodeName;

/// How a group's nodes connect to other groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    pub(super) fn canonical(&self) -> GlobalGroupDef {
        let mut d = self.clone();
        d.nodes.sort();
        d
    }

    /// The SHA-256 of the definition (name, publish type and nodes in
    /// sorted order, each length-prefixed): two definitions that differ
    /// only in the order of their nodes have the same digest. Nodes
    /// compare digests when a session comes up, so a group's formation
    /// does not send every node the whole list of nodes; the definition
    /// itself crosses only when the digests differ.
    ///
    /// ```
    /// use cohort_proto::global_group::{GlobalGroupDef, Publish};
    /// use cohort_proto::pid::NodeName;
    /// let n = |s: &str| NodeName::new(s).unwrap();
    /// let ab = GlobalGroupDef::new("g1", Publish::Normal, [n("a@h"), n("b@h")]);
    /// let ba = GlobalGroupDef::new("g1", Publish::Normal, [n("b@h"), n("a@h")]);
    /// let hidden = GlobalGroupDef::new("g1", Publish::Hidden, [n("a@h"), n("b@h")]);
    /// assert_eq!(ab.digest(), ba.digest());
    /// assert_ne!(ab.digest(), hidden.digest());
    /// ```
    pub fn digest(&self) -> DefDigest {
        let mut nodes: Vec<&NodeName> = self.nodes.iter().collect();
        nodes.sort();
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(self.name.as_bytes());
        field(self.publish.to_string().as_bytes());
        field(&(nodes.len() as u64).to_le_bytes());
        for n in nodes {
            field(n.as_str().as_bytes());
        }
        DefDigest(h.finalize().into())
    }
}

/// The digest of a [`GlobalGroupDef`] ([`GlobalGroupDef::digest`]): what
/// a definition check carries instead of the definition.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DefDigest(pub [u8; 32]);

impl std::fmt::Debug for DefDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DefDigest(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The global-group configuration of a node; empty means `no_conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GlobalGroupsConfig {
    /// The groups, in configuration order (the order of `whereis` lookups).
    pub groups: Vec<GlobalGroupDef>,
}

impl GlobalGroupsConfig {
    /// A configuration of these groups, in configuration order.
    pub fn new(groups: impl IntoIterator<Item = GlobalGroupDef>) -> Self {
        GlobalGroupsConfig {
            groups: groups.into_iter().collect(),
        }
    }
}

/// A configuration that cannot be used. The node does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
