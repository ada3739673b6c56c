//! Whether this node has a session with every member of its tables.
//!
//! Claims travel only between directly connected members (never relayed),
//! so a table needs a full mesh among its members. Every node tells its
//! members which members it has (`Members`: its whole list when a session
//! comes up, then each change); a node that hears of a member it has no
//! session with, for longer than [`PARTIAL_MESH_GRACE`] (the mesh dials
//! a node it hears of at once, so a short gap is the mesh forming), reports
//! it: [`Names::unreached`], a warning in the log, and the runtime's `info`
//! and metrics. Names held there are not seen here, and clashes with them
//! are not settled, until a session comes up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, warn};

use super::wire::NamesFrame;
use super::Names;
use crate::ctx::Ctx;
use crate::pid::NodeName;
use crate::proto::Frame;
use crate::time::Time;

/// How long a member heard of without a session may go unreported.
pub const PARTIAL_MESH_GRACE: Duration = Duration::from_secs(10);
/// At most this many members are kept per member's list (a larger list
/// is cut, with a warning).
const MAX_HEARD: usize = 4096;

/// What this node hears of its members' members.
#[derive(Debug, Default)]
pub(super) struct MeshWatch {
    /// Members told of (their session came up here).
    up: BTreeSet<NodeName>,
    /// Each member's members, as it last said.
    heard: BTreeMap<NodeName, BTreeSet<NodeName>>,
    /// Members heard of without a session here, since when.
    missing: BTreeMap<NodeName, Time>,
    /// Those missing for longer than the grace: what is reported.
    reported: BTreeSet<NodeName>,
}

impl Names {
    /// Members of this node's tables that its members have a session with
    /// and it has not, for longer than [`PARTIAL_MESH_GRACE`]: empty in a
    /// full mesh.
    pub fn unreached(&self) -> Vec<NodeName> {
        self.mesh.reported.iter().cloned().collect()
    }

    /// A member came up: it gets this node's members, the others hear of it.
    pub(super) fn mesh_up(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.mesh.up.insert(node.clone());
        let members = self.members(ctx);
        let others: Vec<NodeName> = members.iter().filter(|m| *m != node).cloned().collect();
        let all = NamesFrame::Members {
            all: true,
            up: others.clone(),
            down: Vec::new(),
        };
        ctx.send(node, Frame::Names(all));
        let news = NamesFrame::Members {
            all: false,
            up: vec![node.clone()],
            down: Vec::new(),
        };
        ctx.broadcast(&others, Frame::Names(news));
    }

    /// A session ended: if it was a member's, the others hear of it.
    pub(super) fn mesh_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.mesh.heard.remove(node);
        if !self.mesh.up.remove(node) {
            return;
        }
        let news = NamesFrame::Members {
            all: false,
            up: Vec::new(),
            down: vec![node.clone()],
        };
        let members = self.members(ctx);
        ctx.broadcast(&members, Frame::Names(news));
    }

    /// `node` says which members it has.
    pub(super) fn mesh_heard(
        &mut self,
        node: &NodeName,
        all: bool,
        up: Vec<NodeName>,
        down: Vec<NodeName>,
    ) {
        let list = self.mesh.heard.entry(node.clone()).or_default();
        if all {
            list.clear();
        }
        for n in &down {
            list.remove(n);
        }
        let mut cut = false;
        for n in up {
            if list.len() >= MAX_HEARD {
                cut = true;
                break;
            }
            list.insert(n);
        }
        if cut {
            warn!(peer = %node, max = MAX_HEARD, "a peer lists more members than kept; the rest is ignored");
        }
    }

    /// Looks for members heard of without a session (every head interval).
    pub(super) fn mesh_check(&mut self, ctx: &Ctx<'_>) {
        let members: BTreeSet<NodeName> = self.members(ctx).into_iter().collect();
        let me = ctx.me();
        let heard: BTreeSet<NodeName> = members
            .iter()
            .filter_map(|m| self.mesh.heard.get(m))
            .flatten()
            .filter(|n| *n != me && !members.contains(*n))
            .cloned()
            .collect();
        let w = &mut self.mesh;
        w.missing.retain(|n, _| heard.contains(n));
        for n in heard {
            w.missing.entry(n).or_insert(ctx.now);
        }
        let now: BTreeSet<NodeName> = w
            .missing
            .iter()
            .filter(|(_, since)| **since + PARTIAL_MESH_GRACE <= ctx.now)
            .map(|(n, _)| n.clone())
            .collect();
        if now == w.reported {
            return;
        }
        if now.iter().any(|n| !w.reported.contains(n)) {
            let list: Vec<&str> = now.iter().map(|n| n.as_str()).collect();
            warn!(
                unreached = ?list,
                "partial mesh: peers of this node's peers have no session with it; their names are not seen here and clashes with them are not settled until they connect"
            );
        } else if now.is_empty() {
            info!("full mesh again: a session with every member the peers have");
        }
        w.reported = now;
    }
}
