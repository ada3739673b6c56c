//! The driver: feeds inputs to a node's core and carries out the effects
//! it asks for, as the runtime does for a real node.
//!
//! Connections go to the TCP model (`tcp`), registry effects to their
//! bookkeeping (`pg`, `names`, `global_group`); what a core does wrong
//! (a send on a connection it closed, a timer that keeps firing at one
//! instant) goes to the ledger for the `wire_contract` invariant.

use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::pg::PgEffect;
use cohort_proto::pid::ExitReason;
use cohort_proto::process::Message;
use cohort_proto::time::Time;
use cohort_proto::{CoreConfig, DownReason, Effect, NodeCore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::node::NodeState;
use super::scheduler::Event;
use super::Sim;
use crate::ledger::{Ending, Stray};
use crate::net::NodeIdx;
use crate::registry;

/// A timeout firing again and again at one instant means the core asks to
/// be woken at a time that has already passed: a livelock.
const TIMER_LIVELOCK: u32 = 1000;

impl Sim {
    /// Starts node `i` with a new creation: a fresh core, its process-group
    /// scopes, its first timer.
    pub(super) fn start_node(&mut self, i: NodeIdx) {
        let creation = self.nodes[i].creation + 1;
        let seed = self.rng.random::<u64>();
        let cfg = CoreConfig {
            name: self.nodes[i].name.clone(),
            creation,
            listen: Some(self.nodes[i].addr.clone()),
            cookie: Cookie::new("sim"),
            cluster: ClusterConfig {
                groups: self.groups[i].clone(),
                ..ClusterConfig::default()
            },
            names: registry::names_config(),
        };
        let core = NodeCore::new(cfg, StdRng::seed_from_u64(seed), self.now());
        let n = &mut self.nodes[i];
        n.creation = creation;
        if !n.is_running() {
            self.running += 1;
        }
        n.state = NodeState::Running(Box::new(core));
        n.alive.clear();
        n.timer_at = None;
        n.next_serial = 0;
        n.next_req = 0;
        let label = self.label(i);
        self.trace.event(self.now(), format_args!("{label} start"));
        self.start_scopes(i);
        // Name events on (the `conflict_told_everywhere` invariant reads them).
        self.input(i, |c, now| {
            c.with_names(now, |n, _| {
                for t in 0..registry::TABLES.len() {
                    n.watch(t);
                }
            })
        });
        self.rearm_timer(i);
    }

    /// Feeds one input to node `i`'s core (if it runs) and carries out
    /// what it asks for.
    pub(crate) fn input(&mut self, i: NodeIdx, f: impl FnOnce(&mut NodeCore, Time)) {
        let now = self.now();
        let NodeState::Running(core) = &mut self.nodes[i].state else {
            return;
        };
        f(core, now);
        self.drain(i);
    }

    /// Carries out every effect node `i`'s core has queued, then rearms its
    /// timer.
    pub(super) fn drain(&mut self, i: NodeIdx) {
        loop {
            let NodeState::Running(core) = &mut self.nodes[i].state else {
                return;
            };
            let Some(effect) = core.poll_effect() else {
                break;
            };
            self.apply(i, effect);
        }
        self.rearm_timer(i);
    }

    /// Schedules node `i`'s wake-up for when its core asks, unless one is
    /// scheduled for then already.
    fn rearm_timer(&mut self, i: NodeIdx) {
        let Some(core) = self.nodes[i].core() else {
            return;
        };
        let at = core.next_timeout().max(self.now());
        if self.nodes[i].timer_at != Some(at) {
            self.nodes[i].timer_at = Some(at);
            let creation = self.nodes[i].creation;
            self.sched.schedule(at, Event::Timer { node: i, creation });
        }
    }

    /// Node `i`'s wake-up time came.
    pub(super) fn on_timer(&mut self, i: NodeIdx, creation: u32) {
        let n = &self.nodes[i];
        // Timers of an old incarnation, or superseded by a new wake-up time.
        if n.creation != creation || n.timer_at != Some(self.now()) || !n.is_running() {
            return;
        }
        if self.timer_streak.0 == self.now() {
            self.timer_streak.1 += 1;
            if self.timer_streak.1 == TIMER_LIVELOCK {
                let what = format!(
                    "{} asked to be woken at {} again and again",
                    self.label(i),
                    self.now().0
                );
                self.driver_faults.push(Stray {
                    at: self.now(),
                    what,
                });
                return;
            }
            if self.timer_streak.1 > TIMER_LIVELOCK {
                return;
            }
        } else {
            self.timer_streak = (self.now(), 1);
        }
        self.nodes[i].timer_at = None;
        self.input(i, |c, now| c.timeout(now));
    }

    /// Carries out one effect of node `i`'s core.
    fn apply(&mut self, i: NodeIdx, effect: Effect) {
        match effect {
            Effect::Dial { conn, addr } => self.dial(i, conn, addr),
            Effect::Send { conn, frame } => self.send(i, conn, frame),
            Effect::Broadcast { conns, frame } => {
                // Encoded and checked once; each copy is counted and traced.
                let codec = self.encode(&frame);
                let mut frame = Some(frame);
                let last = conns.len().saturating_sub(1);
                for (k, conn) in conns.into_iter().enumerate() {
                    let f = if k == last {
                        frame.take().expect("taken once, by the last")
                    } else {
                        frame.clone().expect("present until the last")
                    };
                    self.send_encoded(i, conn, f, codec.clone());
                }
            }
            Effect::Close { conn, reason } => self.close(i, conn, &reason),
            Effect::NodeUp {
                node,
                creation: peer_creation,
                conn,
                ..
            } => {
                let label = self.label(i);
                self.trace.event(
                    self.now(),
                    format_args!("{label} node-up {node}.{peer_creation} conn={conn}"),
                );
                self.count("node-up");
                if let Some(b) = self.index_of(&node) {
                    self.ledger.session_up(i, b, peer_creation);
                }
            }
            Effect::NodeDown {
                node,
                creation: peer_creation,
                reason,
            } => {
                let label = self.label(i);
                self.trace.event(
                    self.now(),
                    format_args!("{label} node-down {node}.{peer_creation} ({reason})"),
                );
                self.count(match reason {
                    DownReason::ConnectionClosed(_) => "node-down: connection closed",
                    DownReason::Timeout => "node-down: timeout",
                    DownReason::PeerLeft => "node-down: peer left",
                    DownReason::Disconnected => "node-down: disconnected",
                    DownReason::Restarted => "node-down: restarted",
                    DownReason::Blocked => "node-down: blocked",
                    DownReason::Shutdown => "node-down: shutdown",
                    DownReason::ProtocolError(_) => "node-down: protocol error",
                    // The protocol's enums are non_exhaustive for users; the
                    // simulator wants to hear of every new reason.
                    other => unreachable!("a new down reason, count it: {other:?}"),
                });
                if let Some(b) = self.index_of(&node) {
                    self.ledger.session_down(i, b, !reason.reconnects());
                }
            }
            Effect::Deliver { to, msg } => self.deliver(i, to, msg),
            Effect::Kill { serial, reason } => {
                let pid = self.nodes[i].pid(serial);
                self.trace
                    .event(self.now(), format_args!("kill-effect {pid} ({reason})"));
                if !self.ledger.is_alive(&pid) {
                    let what = format!("Exit({reason}) to {pid}, which had ended");
                    self.ledger.late_deliveries.push(Stray {
                        at: self.now(),
                        what,
                    });
                }
                self.ledger
                    .end(&pid, self.now(), Ending::Exited(reason.clone()));
                self.ledger.reg.proc_gone(i, &pid);
                self.nodes[i].alive.remove(&serial);
            }
            Effect::ConnectDone { req, result } => {
                let label = self.label(i);
                self.trace.event(
                    self.now(),
                    format_args!("{label} connect-done req={req} {result:?}"),
                );
            }
            other => {
                let label = self.label(i);
                self.trace
                    .event(self.now(), format_args!("{label} effect {other:?}"));
                self.registry_effect(i, other);
            }
        }
    }

    /// Records a process-group, name or global-group effect of node `i`.
    fn registry_effect(&mut self, i: NodeIdx, effect: Effect) {
        match effect {
            Effect::Pg(PgEffect::Event { sub, event }) => self.pg_event(i, sub, event),
            Effect::Names(effect) => self.names_effect(i, effect),
            Effect::Groups(effect) => self.groups_effect(i, effect),
            _ => {}
        }
    }

    /// Records a break of the driver contract by a core.
    pub(super) fn contract(&mut self, what: String) {
        self.ledger.contract.push(Stray {
            at: self.now(),
            what,
        });
    }

    /// A message reaches the mailbox of local process `to` of node `i`.
    fn deliver(&mut self, i: NodeIdx, to: u64, msg: Message) {
        let pid = self.nodes[i].pid(to);
        let now = self.now();
        match &msg {
            Message::Data { from, payload } => {
                self.trace.event(
                    now,
                    format_args!("deliver {pid} data {}B from {from:?}", payload.len()),
                );
                self.count("deliver: data");
            }
            Message::Down {
                mref,
                pid: target,
                reason,
            } => {
                self.trace.event(
                    now,
                    format_args!("deliver {pid} down {} {target} ({reason})", mref.0),
                );
                self.count(match reason {
                    ExitReason::NoProc => "down: noproc",
                    ExitReason::NoConnection => "down: noconnection",
                    _ => "down: exit reason",
                });
            }
            Message::Exit { reason } => {
                self.trace
                    .event(now, format_args!("deliver {pid} exit ({reason})"));
                self.count("deliver: exit");
            }
            other => {
                self.trace
                    .event(now, format_args!("deliver {pid} {other:?}"));
                self.count("deliver: other");
            }
        }
        if !self.ledger.is_alive(&pid) {
            let what = format!("{msg:?} delivered to {pid}, which had ended");
            self.ledger.late_deliveries.push(Stray { at: now, what });
        }
        if let Message::Down {
            mref,
            pid: target,
            reason,
        } = msg
        {
            match self.ledger.monitors.get_mut(&(pid.clone(), mref)) {
                Some(m) if m.target == target => {
                    let after = m.demonitored;
                    m.downs.push((now, reason, after));
                }
                _ => {
                    let what = format!("Down {} for {target} to {pid}, which never set it", mref.0);
                    self.ledger.stray_downs.push(Stray { at: now, what });
                }
            }
        }
    }
}
