//! The faults the simulator injects: crashes, graceful stops and restarts
//! of nodes, partitions (symmetric, one-way, stacked) and their heals,
//! black-holed connections and latency spikes. Resets of a connection are
//! part of the TCP model (`tcp`).

use cohort_proto::pid::{ExitReason, Pid};

use super::node::NodeState;
use super::Sim;
use crate::config::FaultKind;
use crate::ledger::Ending;
use crate::net::{LinkId, NodeIdx};

impl Sim {
    /// Whether the fault `kind` is enabled for this run.
    pub(crate) fn fault_enabled(&self, kind: FaultKind) -> bool {
        self.cfg.faults.has(kind)
    }

    /// The host of node `i` goes down: the core and its processes vanish
    /// without a word.
    pub(crate) fn crash(&mut self, i: NodeIdx) {
        let label = self.label(i);
        self.trace
            .event(self.now(), format_args!("fault crash {label}"));
        self.forget_node(i, NodeState::Crashed);
    }

    /// The incarnation of node `i` is gone (crashed or stopped): so are its
    /// processes, sessions and registry entries.
    fn forget_node(&mut self, i: NodeIdx, state: NodeState) {
        let serials: Vec<u64> = self.nodes[i].alive.iter().copied().collect();
        for s in serials {
            let pid = self.nodes[i].pid(s);
            self.ledger.end(&pid, self.now(), Ending::NodeGone);
        }
        let n = &mut self.nodes[i];
        n.alive.clear();
        if n.is_running() {
            self.running -= 1;
        }
        n.state = state;
        n.timer_at = None;
        self.ledger.node_gone(i);
        let (name, creation) = (self.nodes[i].name.clone(), self.nodes[i].creation);
        self.ledger
            .reg
            .node_gone(i, |s| Pid::new(name.clone(), creation, s));
    }

    /// Node `i` stops gracefully: its processes exit, then it leaves.
    pub(crate) fn stop(&mut self, i: NodeIdx) {
        let label = self.label(i);
        self.trace
            .event(self.now(), format_args!("fault stop {label}"));
        let serials: Vec<u64> = self.nodes[i].alive.iter().copied().collect();
        for s in serials {
            self.exit(i, s, ExitReason::Shutdown);
        }
        self.input(i, |c, now| c.shutdown(now));
        self.forget_node(i, NodeState::Stopped);
    }

    /// A crashed or stopped node starts again with a new creation and
    /// connects to `seed`, as a node configured with seed nodes would.
    pub(crate) fn restart(&mut self, i: NodeIdx, seed: Option<NodeIdx>) {
        let label = self.label(i);
        self.trace
            .event(self.now(), format_args!("fault restart {label}"));
        self.start_node(i);
        if let Some(s) = seed {
            self.connect(i, s);
        }
    }

    /// Cuts `cuts` (directed node pairs) until healed.
    pub(crate) fn partition(&mut self, cuts: Vec<(NodeIdx, NodeIdx)>) {
        let desc: Vec<String> = cuts.iter().map(|(a, b)| format!("{a}>{b}")).collect();
        let id = self.net.partition(cuts);
        self.trace.event(
            self.now(),
            format_args!("fault partition #{id} cuts {}", desc.join(" ")),
        );
    }

    /// Heals the active partition at `index`; stalled pipes flow again.
    pub(crate) fn heal(&mut self, index: usize) {
        let p = self.net.heal(index);
        self.trace
            .event(self.now(), format_args!("fault heal #{}", p.id));
        self.rearm_all();
    }

    /// Turns latency spikes on or off (the `delay` fault).
    pub(crate) fn toggle_delay(&mut self) {
        self.spikes = !self.spikes;
        let on = self.spikes;
        self.trace
            .event(self.now(), format_args!("fault delay spikes={on}"));
    }

    /// Black-holes direction `dir` of link `id`.
    pub(crate) fn blackhole(&mut self, id: LinkId, dir: usize) {
        if let Some(link) = self.net.links.get_mut(&id) {
            link.pipes[dir].blackhole = true;
            link.pipes[dir].queue.clear();
            self.trace
                .event(self.now(), format_args!("fault loss link={id} dir={dir}"));
        }
    }
}
