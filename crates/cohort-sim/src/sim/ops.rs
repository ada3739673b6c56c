//! The process and cluster operations the workload performs on a node:
//! spawn, exit, kill, monitor, demonitor, send, connect, disconnect. Each
//! is traced, recorded in the ledger where an invariant needs it, and
//! fed to the node's core.

use bytes::Bytes;
use cohort_proto::pid::{ExitReason, Pid};
use cohort_proto::process::MonitorRef;
use rand::Rng;

use super::node::NodeState;
use super::Sim;
use crate::ledger::{Ending, MonRecord, ProcRecord};
use crate::net::NodeIdx;

impl Sim {
    /// A fresh request id of node `i`'s current incarnation (connects and
    /// registry operations share the counter: ids are unique per
    /// incarnation).
    pub(super) fn bump_req(&mut self, i: NodeIdx) -> u64 {
        self.nodes[i].next_req += 1;
        self.nodes[i].next_req
    }

    /// A random number from the run's generator.
    pub(super) fn rng_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// Node `a` connects to node `b`.
    pub(crate) fn connect(&mut self, a: NodeIdx, b: NodeIdx) {
        let addr = self.nodes[b].addr.clone();
        let n = &mut self.nodes[a];
        n.next_req += 1;
        let req = n.next_req;
        let label = self.label(a);
        self.trace.event(
            self.now(),
            format_args!("op {label} connect {addr} req={req}"),
        );
        self.input(a, |c, now| c.connect(addr, Some(req), now));
    }

    /// Node `a` disconnects node `b` on purpose.
    pub(crate) fn disconnect(&mut self, a: NodeIdx, b: NodeIdx) {
        let name = self.nodes[b].name.clone();
        let label = self.label(a);
        self.trace
            .event(self.now(), format_args!("op {label} disconnect {name}"));
        self.input(a, |c, now| {
            c.disconnect(&name, now);
        });
        // Even when they were not connected, `a` forgot `b` and will not
        // redial it.
        self.ledger.disconnected(a, b);
    }

    /// Spawns a process on node `i`.
    pub(crate) fn spawn(&mut self, i: NodeIdx) -> Option<Pid> {
        if !self.nodes[i].is_running() {
            return None;
        }
        let n = &mut self.nodes[i];
        n.next_serial += 1;
        let serial = n.next_serial;
        n.alive.insert(serial);
        let pid = n.pid(serial);
        self.ledger
            .procs
            .insert(pid.clone(), ProcRecord { ended: None });
        self.trace.event(self.now(), format_args!("op spawn {pid}"));
        self.input(i, |c, _| c.spawned(serial));
        Some(pid)
    }

    /// Local process `serial` of node `i` ends.
    pub(crate) fn exit(&mut self, i: NodeIdx, serial: u64, reason: ExitReason) {
        let pid = self.nodes[i].pid(serial);
        self.trace
            .event(self.now(), format_args!("op exit {pid} ({reason})"));
        self.ledger
            .end(&pid, self.now(), Ending::Exited(reason.clone()));
        self.ledger.reg.proc_gone(i, &pid);
        self.nodes[i].alive.remove(&serial);
        self.input(i, |c, now| c.exited(serial, reason, now));
    }

    /// Node `i` kills `pid`.
    pub(crate) fn kill(&mut self, i: NodeIdx, pid: &Pid) {
        let label = self.label(i);
        self.trace
            .event(self.now(), format_args!("op {label} kill {pid}"));
        let reason = ExitReason::Killed("sim".into());
        self.input(i, |c, now| c.kill(pid, reason, now));
    }

    /// Local process `watcher` of node `i` monitors `target`.
    pub(crate) fn monitor(&mut self, i: NodeIdx, watcher: u64, target: &Pid) {
        let NodeState::Running(core) = &mut self.nodes[i].state else {
            return;
        };
        let mref = core.new_ref();
        let w = self.nodes[i].pid(watcher);
        self.trace.event(
            self.now(),
            format_args!("op monitor {w} -> {target} mref={}", mref.0),
        );
        // Recorded before the call: the core may answer with an
        // immediate `Down` (NoProc, NoConnection).
        self.ledger.monitors.insert(
            (w, mref),
            MonRecord {
                target: target.clone(),
                demonitored: false,
                downs: Vec::new(),
            },
        );
        self.input(i, |c, _| c.monitor(mref, watcher, target));
    }

    /// Local process `watcher` of node `i` cancels monitor `mref`.
    pub(crate) fn demonitor(&mut self, i: NodeIdx, watcher: u64, mref: MonitorRef) {
        let w = self.nodes[i].pid(watcher);
        self.trace
            .event(self.now(), format_args!("op demonitor {w} mref={}", mref.0));
        if let Some(m) = self.ledger.monitors.get_mut(&(w, mref)) {
            m.demonitored = true;
        }
        self.input(i, |c, _| c.demonitor(watcher, mref));
    }

    /// Node `i` sends a message to `to`, from one of its processes or none.
    pub(crate) fn send_msg(&mut self, i: NodeIdx, from: Option<u64>, to: &Pid, size: usize) {
        let from = from.map(|s| self.nodes[i].pid(s));
        let label = self.label(i);
        self.trace
            .event(self.now(), format_args!("op {label} send {to} {size}B"));
        let payload = Bytes::from(vec![0xa5; size]);
        self.input(i, |c, _| c.send(to, from, payload));
    }
}
