//! Where this node is in each member's stream of claim changes. Every node
//! numbers its changes (one stream per node, all tables); a receiver
//! applies only the next one and asks for a snapshot (`Resync`) on a gap,
//! or when the member's `Head` (sent after its position moved) shows it is
//! behind.

use std::collections::HashMap;

use super::wire::NamesFrame;
use crate::ctx::Ctx;
use crate::hash::FixedHasher;
use crate::pid::NodeName;
use crate::proto::Frame;

/// What this node holds of one member's stream.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// The last position applied; `None` while a snapshot is awaited.
    applied: Option<u64>,
    /// A `Resync` is out: do not ask again before its snapshot comes.
    resync_sent: bool,
}

/// How far each member's stream was applied here.
#[derive(Debug, Default)]
pub(super) struct Cursors {
    members: HashMap<NodeName, Cursor, FixedHasher>,
}

impl Cursors {
    /// A session with `node` came up: its snapshot is on its way.
    pub(super) fn up(&mut self, node: &NodeName) {
        self.members.insert(node.clone(), Cursor::default());
    }

    /// The session with `node` ended.
    pub(super) fn down(&mut self, node: &NodeName) {
        self.members.remove(node);
    }

    /// `node`'s snapshot at position `seq` was installed.
    pub(super) fn installed(&mut self, node: &NodeName, seq: u64) {
        self.members.insert(
            node.clone(),
            Cursor {
                applied: Some(seq),
                resync_sent: false,
            },
        );
    }

    /// Asks `node` for a snapshot, whatever was applied of its stream (a
    /// change it refers to is missing here).
    pub(super) fn resync(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.members.insert(
            node.clone(),
            Cursor {
                applied: None,
                resync_sent: true,
            },
        );
        ctx.send(node, Frame::Names(NamesFrame::Resync));
    }

    /// Whether a change at `seq` from `node` is the next one (then it
    /// counts as applied); on a gap, or before the first snapshot, asks for
    /// a snapshot once.
    pub(super) fn next(&mut self, node: &NodeName, seq: u64, ctx: &mut Ctx<'_>) -> bool {
        let c = self.members.entry(node.clone()).or_default();
        match c.applied {
            Some(at) if seq == at + 1 => {
                c.applied = Some(seq);
                true
            }
            Some(at) if seq <= at => false,
            _ => {
                Self::ask(c, node, ctx);
                false
            }
        }
    }

    /// `node` advertised its position `seq`: asks for a snapshot once when
    /// this node is behind.
    pub(super) fn head(&mut self, node: &NodeName, seq: u64, ctx: &mut Ctx<'_>) {
        let c = self.members.entry(node.clone()).or_default();
        if c.applied.is_none_or(|at| at < seq) {
            Self::ask(c, node, ctx);
        }
    }

    fn ask(c: &mut Cursor, node: &NodeName, ctx: &mut Ctx<'_>) {
        if !c.resync_sent {
            c.resync_sent = true;
            ctx.send(node, Frame::Names(NamesFrame::Resync));
        }
    }
}
