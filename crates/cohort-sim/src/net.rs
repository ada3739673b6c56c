//! The simulated network: connections with TCP semantics and the fault
//! state (partitions, black holes) that decides what gets through.
//!
//! A connection ([`Link`]) has two ends and one FIFO [`Pipe`] per
//! direction. Frames in a pipe are delivered in order, once, each after its
//! own random latency but never before the frame ahead of it (head-of-line
//! blocking, as in TCP). A partition does not drop frames on a connection:
//! it stalls the pipe, and the frames flow again after the heal, unless one
//! side has given up on the connection by then. That is what TCP does, and
//! it keeps the simulator from reporting bugs no real network can cause.

use std::collections::{HashMap, VecDeque};
use std::ops::Index;

use cohort_proto::proto::Frame;
use cohort_proto::time::Time;
use cohort_proto::ConnId;

/// Index of a node in the simulation.
pub type NodeIdx = usize;

/// Identifies one simulated connection.
pub type LinkId = u64;

/// One end of a connection.
#[derive(Debug, Clone)]
pub struct End {
    /// The node owning this end.
    pub node: NodeIdx,
    /// The node's creation when the end was made; a later incarnation of
    /// the node does not own it.
    pub creation: u32,
    /// The node core's id for the connection (the acceptor's is known only
    /// once it accepted).
    pub conn: Option<ConnId>,
    /// Whether the node still uses this end (not closed, not told closed).
    pub open: bool,
}

/// What travels through a pipe.
#[derive(Debug, Clone)]
pub enum PipeMsg {
    /// The acceptor took the connection: the dialer's connect succeeded.
    Connected,
    /// Nobody listens at the address: the dialer's connect failed.
    Refused,
    /// One frame, which survived the codec round trip when it was sent,
    /// and the length of its encoding.
    Data(Box<Frame>, u32),
    /// A [`Frame::Tick`] and the length of its encoding: most frames are
    /// ticks, and this one needs no allocation.
    Tick(u32),
    /// A frame that did not survive the codec round trip.
    Garbled(Box<Garbled>),
    /// The sender closed its end after the frames ahead of this.
    Fin,
}

/// What went wrong with a frame's codec round trip (a core's bug, told
/// when the frame arrives).
#[derive(Debug, Clone)]
pub struct Garbled {
    /// What the `wire_contract` invariant is told.
    pub what: String,
    /// Why the receiver closes the connection, when the frame did not
    /// decode at all (a frame that decodes as another is dropped).
    pub close: Option<String>,
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Messages not yet delivered, each with the earliest time it may arrive.
    pub queue: VecDeque<(Time, PipeMsg)>,
    /// Whether a delivery event for the head is scheduled.
    pub armed: bool,
    /// Every frame sent into this direction vanishes.
    pub blackhole: bool,
}

/// A simulated connection. `ends[0]` dialed, `ends[1]` accepted;
/// `pipes[d]` carries what `ends[d]` sends.
#[derive(Debug)]
pub struct Link {
    /// The two ends.
    pub ends: [End; 2],
    /// The two directions.
    pub pipes: [Pipe; 2],
    /// The node the dialer wanted to reach.
    pub target: Option<NodeIdx>,
    /// When the dial started.
    pub dialed_at: Time,
    /// The connection was reset: nothing more is delivered on it.
    pub broken: bool,
}

impl Link {
    /// Whether nothing on this link can matter any more.
    pub fn is_dead(&self) -> bool {
        !self.ends[0].open
            && !self.ends[1].open
            && self.pipes[0].queue.is_empty()
            && self.pipes[1].queue.is_empty()
    }
}

/// The live links by id, in id order: a slab indexed by `id - base`,
/// since ids only grow. Every frame looks its link up several times, so
/// this is an index into a vector rather than a search of a map; the
/// slots of links forgotten at the front are dropped, so the slab spans
/// the ids from the oldest live link on.
#[derive(Debug, Default)]
pub struct Links {
    /// The id of `slots[0]`.
    base: LinkId,
    slots: VecDeque<Option<Link>>,
    len: usize,
}

impl Links {
    fn slot(&self, id: LinkId) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    /// The link `id`, if live.
    pub fn get(&self, id: &LinkId) -> Option<&Link> {
        self.slots.get(self.slot(*id)?)?.as_ref()
    }

    /// The link `id`, if live, to change.
    pub fn get_mut(&mut self, id: &LinkId) -> Option<&mut Link> {
        let i = self.slot(*id)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Adds link `id`, newer than every link added before.
    pub fn insert(&mut self, id: LinkId, link: Link) {
        if self.slots.is_empty() {
            self.base = id;
        }
        let i = usize::try_from(id - self.base).expect("ids grow");
        assert!(i >= self.slots.len(), "link ids are never reused");
        self.slots.resize_with(i, || None);
        self.slots.push_back(Some(link));
        self.len += 1;
    }

    /// Removes link `id`.
    pub fn remove(&mut self, id: &LinkId) -> Option<Link> {
        let i = self.slot(*id)?;
        let link = self.slots[i].take()?;
        self.len -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(link)
    }

    /// Number of live links.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no link is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The live links in id order.
    pub fn iter(&self) -> impl Iterator<Item = (LinkId, &Link)> {
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, l)| l.as_ref().map(|l| (base + i as LinkId, l)))
    }
}

impl Index<&LinkId> for Links {
    type Output = Link;

    fn index(&self, id: &LinkId) -> &Link {
        self.get(id).expect("link exists")
    }
}

/// A set of directed cuts that is healed as a whole.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Identifies the partition in the trace.
    pub id: u64,
    /// The cut directions `(from, to)`.
    pub cuts: Vec<(NodeIdx, NodeIdx)>,
}

/// All connections and the fault state of the network.
#[derive(Debug, Default)]
pub struct Net {
    /// Live connections by id (ids are never reused).
    pub links: Links,
    /// `(node, creation, conn)` to the link and end carrying it (only
    /// looked up, never walked: its order does not matter).
    pub by_conn: HashMap<(NodeIdx, u32, ConnId), (LinkId, usize), foldhash::fast::FixedState>,
    next_link: LinkId,
    /// Active partitions; they may overlap.
    pub partitions: Vec<Partition>,
    next_partition: u64,
    /// How many active partitions cut each direction (only looked up).
    cut: HashMap<(NodeIdx, NodeIdx), u32, foldhash::fast::FixedState>,
}

impl Net {
    /// A new link id.
    pub fn alloc_link(&mut self) -> LinkId {
        self.next_link += 1;
        self.next_link
    }

    /// Whether traffic from `from` to `to` is cut.
    pub fn is_cut(&self, from: NodeIdx, to: NodeIdx) -> bool {
        !self.cut.is_empty() && self.cut.contains_key(&(from, to))
    }

    /// Adds a partition cutting `cuts`; returns its id.
    pub fn partition(&mut self, cuts: Vec<(NodeIdx, NodeIdx)>) -> u64 {
        self.next_partition += 1;
        for &c in &cuts {
            *self.cut.entry(c).or_default() += 1;
        }
        self.partitions.push(Partition {
            id: self.next_partition,
            cuts,
        });
        self.next_partition
    }

    /// Removes the partition at `index` in [`Net::partitions`].
    pub fn heal(&mut self, index: usize) -> Partition {
        let p = self.partitions.remove(index);
        for c in &p.cuts {
            if let Some(n) = self.cut.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    self.cut.remove(c);
                }
            }
        }
        p
    }

    /// The link and end of a node's connection.
    pub fn find(&self, node: NodeIdx, creation: u32, conn: ConnId) -> Option<(LinkId, usize)> {
        self.by_conn.get(&(node, creation, conn)).copied()
    }

    /// Forgets a link once nothing on it can matter.
    pub fn collect(&mut self, id: LinkId) {
        if self.links.get(&id).is_some_and(Link::is_dead) {
            let link = self.links.remove(&id).expect("present");
            for end in &link.ends {
                if let Some(conn) = end.conn {
                    self.by_conn.remove(&(end.node, end.creation, conn));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(node: NodeIdx) -> Link {
        let end = End {
            node,
            creation: 1,
            conn: None,
            open: true,
        };
        Link {
            ends: [end.clone(), end],
            pipes: Default::default(),
            target: None,
            dialed_at: Time::ZERO,
            broken: false,
        }
    }

    #[test]
    fn links_are_found_by_id_and_walked_in_id_order() {
        let mut links = Links::default();
        for id in [3, 4, 7, 9] {
            links.insert(id, link(id as NodeIdx));
        }
        assert_eq!(links.len(), 4);
        assert!(links.get(&5).is_none() && links.get(&2).is_none() && links.get(&10).is_none());
        assert_eq!(links[&7].ends[0].node, 7);

        // Forgetting the oldest drops its slot; the others stay where they were.
        assert_eq!(links.remove(&3).map(|l| l.ends[0].node), Some(3));
        assert!(links.remove(&3).is_none());
        links.get_mut(&9).expect("live").broken = true;
        assert_eq!(links.remove(&7).map(|l| l.ends[0].node), Some(7));
        links.insert(12, link(12));
        let walked: Vec<(LinkId, NodeIdx)> =
            links.iter().map(|(id, l)| (id, l.ends[0].node)).collect();
        assert_eq!(walked, vec![(4, 4), (9, 9), (12, 12)]);
        assert!(links[&9].broken);

        for id in [4, 9, 12] {
            links.remove(&id);
        }
        assert!(links.is_empty() && links.iter().next().is_none());
        // An empty slab starts again at the next id.
        links.insert(20, link(20));
        assert_eq!(links.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![20]);
    }
}
