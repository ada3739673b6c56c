//! What a sub-protocol (process groups, global names) may do when it
//! handles an input: send frames to up peers, queue effects for the driver,
//! ask about local processes, and defer actions that re-enter the node core
//! (killing a local process runs every exit hook, so it happens after the
//! handler returns).
//!
//! [`Ctx::send`] and [`Ctx::broadcast`] are where the rule "held changes
//! are never overtaken" is kept for frames of sub-protocols: they send what
//! the *other* layers hold first (a layer orders its own held changes, as
//! only it knows which of its frames may pass them). The node's own frames
//! (messages, monitors, exits) keep it in `NodeCore::send_frame`.

use std::collections::BTreeSet;

use super::cluster::Cluster;
use super::pid::{ExitReason, NodeName, Pid};
use super::process::Processes;
use super::proto::Frame;
use super::time::Time;
use super::{Effect, Effects};

/// An action a handler asks the node core to take once it has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// End local process `pid` with `reason` (delivers `Message::Exit`,
    /// fires monitors, runs every sub-protocol's exit hook).
    Kill(Pid, ExitReason),
}

/// A layer that holds changes for batching: whatever another layer sends
/// first sends what it holds (see [`Ctx::send`]).
pub trait Holds {
    /// Whether changes are held.
    fn holds(&self) -> bool;
    /// Sends the held changes now.
    fn flush(&mut self, ctx: &mut Ctx<'_>);
}

/// The handle a sub-protocol gets for one input.
pub struct Ctx<'a> {
    /// The time of the input.
    pub now: Time,
    pub(crate) cluster: &'a mut Cluster,
    pub(crate) procs: &'a Processes,
    pub(crate) fx: &'a mut Effects,
    pub(crate) deferred: &'a mut Vec<Deferred>,
    /// Peers that take part in names and groups (own global group, synced).
    pub(crate) eligible: &'a BTreeSet<NodeName>,
    /// Changes whenever `eligible` does.
    pub(crate) eligible_gen: u64,
    /// The other layers, whose held changes go out before this one sends.
    pub(crate) others: [Option<&'a mut dyn Holds>; 2],
}

impl Ctx<'_> {
    /// This node's name.
    pub fn me(&self) -> &NodeName {
        self.cluster.me()
    }

    /// This node's creation.
    pub fn creation(&self) -> u32 {
        self.cluster.creation()
    }

    /// The pid of local process `serial`.
    pub fn pid(&self, serial: u64) -> Pid {
        Pid::new(self.me().clone(), self.creation(), serial)
    }

    /// Whether `pid` is a live local process.
    pub fn is_local_alive(&self, pid: &Pid) -> bool {
        pid.node() == self.me()
            && pid.creation() == self.creation()
            && self.procs.is_alive(pid.serial())
    }

    /// The up peers that take part in names and groups (the own global
    /// group's synced nodes; every peer without global groups), with their
    /// creations, in name order.
    pub fn peers(&self) -> Vec<(NodeName, u32)> {
        self.cluster
            .peers_with_creation()
            .filter(|(n, _)| self.eligible.contains(*n))
            .map(|(n, c)| (n.clone(), c))
            .collect()
    }

    /// A key that changes whenever [`Ctx::peers`] may answer differently:
    /// what is derived from the peers can be kept while it stays the same.
    pub fn peers_key(&self) -> (u64, u64) {
        (self.cluster.peers_generation(), self.eligible_gen)
    }

    /// Whether `node` takes part in names and own-group scopes.
    pub fn is_eligible(&self, node: &NodeName) -> bool {
        self.eligible.contains(node)
    }

    /// Whether `node` has an up, visible (not hidden) session.
    pub fn is_visible_peer(&self, node: &NodeName) -> bool {
        self.cluster.peer_creation(node).is_some() && !self.cluster.is_hidden(node)
    }

    /// Every up peer, in or out of the own global group.
    pub fn all_peers(&self) -> Vec<(NodeName, u32)> {
        self.cluster
            .peers_with_creation()
            .map(|(n, c)| (n.clone(), c))
            .collect()
    }

    /// The creation of an up peer.
    pub fn peer_creation(&self, node: &NodeName) -> Option<u32> {
        self.cluster.peer_creation(node)
    }

    /// Sends a frame to an up peer, after what the other layers hold;
    /// false when the peer is not up.
    pub fn send(&mut self, node: &NodeName, frame: Frame) -> bool {
        self.send_others_held();
        self.cluster.send(node, frame, self.fx)
    }

    /// Sends one frame to every up peer among `nodes`, encoded once, after
    /// what the other layers hold.
    pub fn broadcast<'b>(&mut self, nodes: impl IntoIterator<Item = &'b NodeName>, frame: Frame) {
        self.send_others_held();
        self.cluster.broadcast(nodes, frame, self.fx);
    }

    fn send_others_held(&mut self) {
        for other in self.others.iter_mut().flatten() {
            if other.holds() {
                let mut ctx = Ctx {
                    now: self.now,
                    cluster: self.cluster,
                    procs: self.procs,
                    fx: self.fx,
                    deferred: self.deferred,
                    eligible: self.eligible,
                    eligible_gen: self.eligible_gen,
                    others: [None, None],
                };
                other.flush(&mut ctx);
            }
        }
    }

    /// A number in `0..n` (0 when `n` is 0) from the node's seeded
    /// generator: the core's only randomness, so a seed replays.
    pub fn random_below(&mut self, n: u64) -> u64 {
        self.cluster.random_below(n)
    }

    /// Queues an effect for the driver.
    pub fn push(&mut self, e: Effect) {
        self.fx.push(e);
    }

    /// Asks the node core to kill a local process after this handler.
    pub fn defer(&mut self, d: Deferred) {
        self.deferred.push(d);
    }
}
