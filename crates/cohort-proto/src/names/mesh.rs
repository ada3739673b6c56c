//! Whether this node has a session with every member of its tables.
//!
//! Claims travel only between directly connected members (never relayed),
//! so a table needs a full mesh among its members. Every head interval a
//! node tells each member its view in brief (`MembersView`: how many
//! members it has, itself included, and a hash of their names) when the
//! view changed since it last told that member or differs from the
//! member's; a member whose view differs answers with its whole list
//! (`Members`), once for each view of its own. In a full mesh every view is
//! the same, so this costs a few bytes per member after a change and
//! nothing when idle, not a list per member on every change. A node that
//! hears of a member it has no
//! session with, for longer than [`PARTIAL_MESH_GRACE`] (the mesh dials
//! a node it hears of at once, so a short gap is the mesh forming), reports
//! it: [`Names::unreached`], a warning in the log, and the runtime's `info`
//! and metrics. Names held there are not seen here, and clashes with them
//! are not settled, until a session comes up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, warn};

use super::wire::NamesFrame;
use crate::ctx::Ctx;
use crate::pid::NodeName;
use crate::proto::Frame;
use crate::time::Time;

/// How long a member heard of without a session may go unreported.
pub const PARTIAL_MESH_GRACE: Duration = Duration::from_secs(10);
/// At most this many members are kept per member's list (a larger list
/// is cut, with a warning).
const MAX_HEARD: usize = 4096;

/// A node's members and itself, in brief: how many and the XOR of a fixed
/// hash of their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    count: u32,
    hash: u64,
}

impl View {
    fn of<'a>(nodes: impl Iterator<Item = &'a NodeName>) -> View {
        use std::hash::BuildHasher;
        let h = foldhash::fast::FixedState::with_seed(0x006e_616d_6573);
        let mut v = View { count: 0, hash: 0 };
        for n in nodes {
            v.count += 1;
            v.hash ^= h.hash_one(n.as_str());
        }
        v
    }
}

/// Views are first told this long after a session came up: a forming mesh
/// settles within it, so views then agree and no list is sent.
const VIEW_DELAY: Duration = Duration::from_secs(1);

/// What this node and a member told each other of their views.
#[derive(Debug, Default)]
struct Told {
    /// When the member's session came up here.
    since: Time,
    /// Our view as we last told it.
    told: Option<View>,
    /// Its view as it last told it.
    heard: Option<View>,
    /// Our view when we last sent it our whole list.
    pushed: Option<View>,
}

/// What this node hears of its members' members.
#[derive(Debug, Default)]
pub(super) struct MeshWatch {
    /// Members told of (their session came up here), and what we told.
    up: BTreeMap<NodeName, Told>,
    /// Each member's members, as it last said.
    heard: BTreeMap<NodeName, BTreeSet<NodeName>>,
    /// Members heard of without a session here, since when.
    missing: BTreeMap<NodeName, Time>,
    /// Those missing for longer than the grace: what is reported.
    reported: BTreeSet<NodeName>,
    /// Our view, and the [`Ctx::peers_key`] it was computed for: a view
    /// heard is compared with it without listing the members again (a
    /// forming mesh of n nodes brings each node n views a second).
    mine: Option<((u64, u64), View)>,
}

impl MeshWatch {
    /// Members heard of without a session for longer than
    /// [`PARTIAL_MESH_GRACE`].
    pub(super) fn unreached(&self) -> Vec<NodeName> {
        self.reported.iter().cloned().collect()
    }

    /// A member came up: views are compared at the next head interval.
    pub(super) fn up(&mut self, node: &NodeName, now: Time) {
        let t = Told {
            since: now,
            ..Told::default()
        };
        self.up.insert(node.clone(), t);
        self.heard.remove(node);
    }

    /// A session ended: what it said goes.
    pub(super) fn down(&mut self, node: &NodeName) {
        self.heard.remove(node);
        self.up.remove(node);
    }

    /// `node`'s view: when it differs from ours, it gets our whole list
    /// (once for each view of ours); when it is the same, it has no member
    /// we lack.
    pub(super) fn view(
        &mut self,
        node: &NodeName,
        count: u32,
        hash: u64,
        members: impl Fn(&Ctx<'_>) -> Vec<NodeName>,
        ctx: &mut Ctx<'_>,
    ) {
        let view = View { count, hash };
        let key = ctx.peers_key();
        let mut list = None;
        let mine = match self.mine {
            Some((k, v)) if k == key => v,
            _ => {
                let l = members(ctx);
                let v = View::of(l.iter().chain(std::iter::once(ctx.me())));
                self.mine = Some((key, v));
                list = Some(l);
                v
            }
        };
        let Some(t) = self.up.get_mut(node) else {
            return;
        };
        t.heard = Some(view);
        if view == mine {
            self.heard.remove(node);
            return;
        }
        if t.pushed == Some(mine) {
            return;
        }
        t.pushed = Some(mine);
        let members = list.unwrap_or_else(|| members(ctx));
        let up: Vec<NodeName> = members.into_iter().filter(|m| m != node).collect();
        ctx.send(
            node,
            Frame::Names(NamesFrame::Members {
                all: true,
                up,
                down: Vec::new(),
            }),
        );
    }

    /// Tells each member our view where it changed or differs (every head
    /// interval).
    fn tell(&mut self, members: &[NodeName], ctx: &mut Ctx<'_>) {
        // `members` are the members under the current peers key: the view
        // kept for that key is theirs.
        let key = ctx.peers_key();
        let mine = match self.mine {
            Some((k, v)) if k == key => v,
            _ => {
                let v = View::of(members.iter().chain(std::iter::once(ctx.me())));
                self.mine = Some((key, v));
                v
            }
        };
        for m in members {
            let t = self.up.entry(m.clone()).or_insert_with(|| Told {
                since: ctx.now,
                ..Told::default()
            });
            if ctx.now < t.since + VIEW_DELAY {
                continue;
            }
            if t.told != Some(mine) || t.heard.is_some_and(|h| h != mine) {
                t.told = Some(mine);
                ctx.send(
                    m,
                    Frame::Names(NamesFrame::MembersView {
                        count: mine.count,
                        hash: mine.hash,
                    }),
                );
            }
        }
    }

    /// `node` says which members it has.
    pub(super) fn heard(
        &mut self,
        node: &NodeName,
        all: bool,
        up: Vec<NodeName>,
        down: Vec<NodeName>,
    ) {
        let list = self.heard.entry(node.clone()).or_default();
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

    /// Tells views, and looks for members heard of without a session
    /// (every head interval).
    pub(super) fn check(&mut self, list: Vec<NodeName>, ctx: &mut Ctx<'_>) {
        self.tell(&list, ctx);
        // The members come in name order (the peers' order): looked up by
        // bisection, without building a set of them every interval; and
        // only the members that told a list of their own are visited (in
        // an idle full mesh, none).
        debug_assert!(list.is_sorted(), "members come in name order");
        let me = ctx.me();
        let heard: BTreeSet<NodeName> = self
            .heard
            .iter()
            .filter(|(m, _)| list.binary_search(m).is_ok())
            .flat_map(|(_, nodes)| nodes)
            .filter(|n| *n != me && list.binary_search(n).is_err())
            .cloned()
            .collect();
        let w = self;
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
