//! The process/monitor protocol of a node: local processes start and end,
//! messages to pids here or on a peer, monitors with exactly one `Down`.

use super::*;
use crate::route::{route, Route};

impl NodeCore {
    /// A local process was created with `serial`.
    pub fn spawned(&mut self, serial: u64) {
        self.procs.spawned(serial);
    }

    /// A local process ended: its monitors fire, its memberships and names go.
    pub fn exited(&mut self, serial: u64, reason: ExitReason, now: Time) {
        self.clock = self.clock.max(now);
        let me = self.pid(serial);
        if !self.procs.is_alive(serial) {
            return;
        }
        let acts = self.procs.exited(&me, &reason, &self.name);
        self.run_monitor_actions(acts);
        with_sub!(self, pg, now, |pg, ctx| pg.exited(&me, &mut ctx));
        with_sub!(self, names, now, |names, ctx| names
            .exited(&me, &reason, &mut ctx));
        self.run_deferred(now);
    }

    /// Ends process `pid` (local or remote) with `reason`.
    pub fn kill(&mut self, pid: &Pid, reason: ExitReason, now: Time) {
        self.clock = self.clock.max(now);
        self.kill_at(pid, reason, now);
    }

    pub(super) fn kill_at(&mut self, pid: &Pid, reason: ExitReason, now: Time) {
        if pid.node() == &self.name {
            if pid.creation() == self.creation && self.procs.is_alive(pid.serial()) {
                self.fx.push(Effect::Kill {
                    serial: pid.serial(),
                    reason: reason.clone(),
                });
                self.exited(pid.serial(), reason, now);
            }
        } else if self.cluster.peer_creation(pid.node()) == Some(pid.creation()) {
            let node = pid.node().clone();
            self.send_frame(
                &node,
                Frame::Exit {
                    target: pid.clone(),
                    reason,
                },
            );
        }
    }

    /// Sends a message to `to`; silently dropped when `to` is dead or its
    /// node unreachable (as in Erlang: sending never fails). Where it goes
    /// is decided by [`route`], as on a runtime's fast path.
    pub fn send(&mut self, to: &Pid, from: Option<Pid>, payload: Bytes) {
        let held = self.holds();
        let peer_creation = |n: &NodeName| self.cluster.peer_creation(n);
        match route(&self.name, self.creation, to, peer_creation, held) {
            Route::Local => self.deliver_local(to, from, payload),
            Route::Peer { .. } => {
                let frame = Frame::Send {
                    to: to.clone(),
                    from,
                    payload,
                };
                self.send_frame(to.node(), frame);
            }
            Route::Drop => {}
        }
    }

    /// Sends a frame of the node's own (a message, a monitor, an exit, a
    /// `Down`, an answer) to an up peer, after the held changes: it must not
    /// overtake a join made before it. The sub-protocols' frames keep the
    /// same rule in [`Ctx::send`].
    pub(super) fn send_frame(&mut self, node: &NodeName, frame: Frame) {
        self.flush(self.clock);
        self.cluster.send(node, frame, &mut self.fx);
    }

    pub(super) fn deliver_local(&mut self, to: &Pid, from: Option<Pid>, payload: Bytes) {
        if to.creation() == self.creation && self.procs.is_alive(to.serial()) {
            self.fx.push(Effect::Deliver {
                to: to.serial(),
                msg: Message::Data { from, payload },
            });
        }
    }

    /// Local process `watcher` monitors `target` under `mref` (unique on
    /// this node; see [`NodeCore::new_ref`]): exactly one `Message::Down`
    /// will follow, unless demonitored.
    pub fn monitor(&mut self, mref: MonitorRef, watcher: u64, target: &Pid) {
        let down = |reason| Effect::Deliver {
            to: watcher,
            msg: Message::Down {
                mref,
                pid: target.clone(),
                reason,
            },
        };
        if !self.procs.is_alive(watcher) {
            return;
        }
        if target.node() == &self.name {
            if target.creation() == self.creation && self.procs.is_alive(target.serial()) {
                self.procs.add_outgoing(mref, watcher, target.clone());
                let w = self.pid(watcher);
                self.procs.add_incoming(target.serial(), mref, w);
            } else {
                self.fx.push(down(ExitReason::NoProc));
            }
            return;
        }
        match self.cluster.peer_creation(target.node()) {
            Some(c) if c == target.creation() => {
                self.procs.add_outgoing(mref, watcher, target.clone());
                let frame = Frame::Monitor {
                    mref: mref.0,
                    watcher: self.pid(watcher),
                    target: target.clone(),
                };
                self.send_frame(target.node(), frame);
            }
            Some(_) => self.fx.push(down(ExitReason::NoProc)),
            None => self.fx.push(down(ExitReason::NoConnection)),
        }
    }

    /// A fresh monitor reference, for drivers that let the core number them.
    pub fn new_ref(&mut self) -> MonitorRef {
        self.procs.new_ref()
    }

    /// Cancels a monitor; no `Down` for it arrives afterwards.
    pub fn demonitor(&mut self, watcher: u64, mref: MonitorRef) {
        let Some(target) = self.procs.remove_outgoing(mref) else {
            return;
        };
        let w = self.pid(watcher);
        if target.node() == &self.name {
            self.procs.remove_incoming(target.serial(), mref, &w);
        } else {
            let node = target.node().clone();
            self.send_frame(
                &node,
                Frame::Demonitor {
                    mref: mref.0,
                    watcher: w,
                    target,
                },
            );
        }
    }

    // ---- internals ----------------------------------------------------

    pub(super) fn run_monitor_actions(&mut self, acts: Vec<MonitorAction>) {
        for act in acts {
            match act {
                MonitorAction::Deliver { watcher, msg } => {
                    self.fx.push(Effect::Deliver { to: watcher, msg });
                }
                MonitorAction::RemoteDown {
                    mref,
                    watcher,
                    target,
                    reason,
                } => {
                    let node = watcher.node().clone();
                    self.send_frame(
                        &node,
                        Frame::Down {
                            mref: mref.0,
                            watcher,
                            target,
                            reason,
                        },
                    );
                }
                MonitorAction::RemoteDemonitor {
                    mref,
                    watcher,
                    target,
                } => {
                    let node = target.node().clone();
                    self.send_frame(
                        &node,
                        Frame::Demonitor {
                            mref: mref.0,
                            watcher,
                            target,
                        },
                    );
                }
            }
        }
    }
}
