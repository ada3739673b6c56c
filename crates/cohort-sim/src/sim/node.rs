//! One simulated node: its name and address, its incarnation, whether it
//! runs, and the driver's counters for it.

use std::collections::BTreeSet;

use cohort_proto::pid::{NodeName, Pid};
use cohort_proto::time::Time;
use cohort_proto::NodeCore;

use crate::net::NodeIdx;

/// Whether a node runs, and its core when it does.
#[derive(Debug)]
pub enum NodeState {
    /// The node runs this core.
    Running(Box<NodeCore>),
    /// The host is down: nothing it had survives, nothing reaches it, and
    /// it answers nothing (no resets).
    Crashed,
    /// The node stopped gracefully; the host is up, so connections to it
    /// are refused and frames to its old connections get a reset.
    Stopped,
}

/// One node of the simulation.
#[derive(Debug)]
pub struct SimNode {
    /// The node's name.
    pub name: NodeName,
    /// Where it listens.
    pub addr: String,
    /// Its creation (the current one while running, else the last one).
    pub creation: u32,
    /// Whether it runs.
    pub state: NodeState,
    /// Live local processes of the current incarnation.
    pub alive: BTreeSet<u64>,
    /// Frames this node sent, over all incarnations.
    pub sent_frames: u64,
    /// Encoded bytes this node sent, over all incarnations.
    pub sent_bytes: u64,
    /// When the core asked to be woken (a timer event is scheduled then).
    pub(super) timer_at: Option<Time>,
    /// The serial of the last process spawned in this incarnation.
    pub(super) next_serial: u64,
    /// The last request id used in this incarnation.
    pub(super) next_req: u64,
}

impl SimNode {
    /// Node `i`, not started yet.
    pub(super) fn new(i: NodeIdx) -> Self {
        SimNode {
            name: NodeName::new(&format!("n{i}@sim")).expect("valid node name"),
            addr: format!("sim:{i}"),
            creation: 0,
            state: NodeState::Stopped,
            alive: BTreeSet::new(),
            sent_frames: 0,
            sent_bytes: 0,
            timer_at: None,
            next_serial: 0,
            next_req: 0,
        }
    }

    /// The core, while the node runs.
    pub fn core(&self) -> Option<&NodeCore> {
        match &self.state {
            NodeState::Running(core) => Some(core),
            _ => None,
        }
    }

    /// Whether the node runs.
    pub fn is_running(&self) -> bool {
        matches!(self.state, NodeState::Running(_))
    }

    /// The pid of local process `serial` of the current incarnation.
    pub fn pid(&self, serial: u64) -> Pid {
        Pid::new(self.name.clone(), self.creation, serial)
    }
}
