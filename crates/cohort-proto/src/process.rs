//! The process table of one node: which local processes live, and who
//! monitors whom, locally and across nodes.
//!
//! Mailboxes themselves belong to the runtime; this module decides which
//! messages and `Down` notifications are due, and where.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::pid::{ExitReason, NodeName, Pid};

/// Identifies one monitor; unique within the watcher's node creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef(pub u64);

/// What a process finds in its mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A message sent with `send`.
    Data {
        /// The sending process, if the sender gave one.
        from: Option<Pid>,
        /// The message body.
        payload: Bytes,
    },
    /// A monitored process ended (or could not be reached).
    Down {
        /// The monitor that fired.
        mref: MonitorRef,
        /// The monitored process.
        pid: Pid,
        /// Why it ended: its exit reason, `NoProc` or `NoConnection`.
        reason: ExitReason,
    },
    /// This process was ended by `kill`; the last message it receives.
    Exit {
        /// The reason given to `kill`.
        reason: ExitReason,
    },
    /// This process lost a clash on a global name and is no longer
    /// registered under it (loss policies `Notify` and `DropBoth`).
    NameConflict {
        /// The name table.
        table: String,
        /// The name.
        name: String,
        /// The process that kept the name, if any.
        winner: Option<Pid>,
    },
}

/// A `Down` to deliver, or a frame to send about a monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// Put `Message::Down` into a local watcher's mailbox.
    Deliver {
        /// The local watcher's serial.
        watcher: u64,
        /// The message.
        msg: Message,
    },
    /// Tell a remote watcher's node that `target` ended.
    RemoteDown {
        /// Monitor reference.
        mref: MonitorRef,
        /// The remote watcher.
        watcher: Pid,
        /// The local process that ended.
        target: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// Tell a remote target's node to forget a monitor.
    RemoteDemonitor {
        /// Monitor reference.
        mref: MonitorRef,
        /// The local watcher.
        watcher: Pid,
        /// The remote target.
        target: Pid,
    },
}

/// The process table of one node.
#[derive(Debug, Default)]
pub struct Processes {
    /// Live local serials (a fixed hasher: nothing here depends on the
    /// process's random state).
    alive: HashSet<u64, crate::hash::FixedHasher>,
    next_mref: u64,
    /// Monitors held by local watchers: mref → (watcher serial, target).
    outgoing: BTreeMap<MonitorRef, (u64, Pid)>,
    /// Monitors on local targets: target serial → watchers.
    incoming: BTreeMap<u64, Vec<(MonitorRef, Pid)>>,
}

impl Processes {
    /// Records a new local process.
    pub fn spawned(&mut self, serial: u64) {
        self.alive.insert(serial);
    }

    /// Whether a local process lives.
    pub fn is_alive(&self, serial: u64) -> bool {
        self.alive.contains(&serial)
    }

    /// Number of live local processes.
    pub fn len(&self) -> usize {
        self.alive.len()
    }

    /// Whether no local process lives.
    pub fn is_empty(&self) -> bool {
        self.alive.is_empty()
    }

    /// A new monitor reference.
    pub fn new_ref(&mut self) -> MonitorRef {
        self.next_mref += 1;
        MonitorRef(self.next_mref)
    }

    /// Local watcher `watcher` starts monitoring `target`, under `mref`.
    pub fn add_outgoing(&mut self, mref: MonitorRef, watcher: u64, target: Pid) {
        self.outgoing.insert(mref, (watcher, target));
    }

    /// Removes a monitor held by a local watcher; returns its target.
    pub fn remove_outgoing(&mut self, mref: MonitorRef) -> Option<Pid> {
        self.outgoing.remove(&mref).map(|(_, t)| t)
    }

    /// `watcher` (local or remote) starts monitoring local `target`.
    pub fn add_incoming(&mut self, target: u64, mref: MonitorRef, watcher: Pid) {
        self.incoming
            .entry(target)
            .or_default()
            .push((mref, watcher));
    }

    /// Removes a monitor on a local target.
    pub fn remove_incoming(&mut self, target: u64, mref: MonitorRef, watcher: &Pid) {
        if let Some(list) = self.incoming.get_mut(&target) {
            list.retain(|(m, w)| !(*m == mref && w == watcher));
            if list.is_empty() {
                self.incoming.remove(&target);
            }
        }
    }

    /// A local process ended: fires the monitors on it and drops the
    /// monitors it held. `me` is this node's pid for `serial`.
    pub fn exited(
        &mut self,
        me: &Pid,
        reason: &ExitReason,
        local: &NodeName,
    ) -> Vec<MonitorAction> {
        let serial = me.serial();
        let mut acts = Vec::new();
        if !self.alive.remove(&serial) {
            return acts;
        }
        for (mref, watcher) in self.incoming.remove(&serial).unwrap_or_default() {
            if watcher == *me {
                // A process watching itself: it is gone, nobody to tell.
                self.outgoing.remove(&mref);
                continue;
            }
            if watcher.node() == local {
                if self.outgoing.remove(&mref).is_some() {
                    acts.push(MonitorAction::Deliver {
                        watcher: watcher.serial(),
                        msg: Message::Down {
                            mref,
                            pid: me.clone(),
                            reason: reason.clone(),
                        },
                    });
                }
            } else {
                acts.push(MonitorAction::RemoteDown {
                    mref,
                    watcher,
                    target: me.clone(),
                    reason: reason.clone(),
                });
            }
        }
        // Monitors this process held die with it.
        let held: Vec<MonitorRef> = self
            .outgoing
            .iter()
            .filter(|(_, (w, _))| *w == serial)
            .map(|(m, _)| *m)
            .collect();
        for mref in held {
            let (_, target) = self.outgoing.remove(&mref).expect("present");
            if target.node() == local {
                self.remove_incoming(target.serial(), mref, me);
            } else {
                acts.push(MonitorAction::RemoteDemonitor {
                    mref,
                    watcher: me.clone(),
                    target,
                });
            }
        }
        acts
    }

    /// The connection to `node` is lost: local watchers of its processes get
    /// `NoConnection`; its processes' monitors on local targets are dropped.
    pub fn node_down(&mut self, node: &NodeName) -> Vec<MonitorAction> {
        let lost: Vec<MonitorRef> = self
            .outgoing
            .iter()
            .filter(|(_, (_, t))| t.node() == node)
            .map(|(m, _)| *m)
            .collect();
        let mut acts = Vec::with_capacity(lost.len());
        for mref in lost {
            let (watcher, target) = self.outgoing.remove(&mref).expect("present");
            acts.push(MonitorAction::Deliver {
                watcher,
                msg: Message::Down {
                    mref,
                    pid: target,
                    reason: ExitReason::NoConnection,
                },
            });
        }
        self.incoming.retain(|_, list| {
            list.retain(|(_, w)| w.node() != node);
            !list.is_empty()
        });
        acts
    }

    /// Number of monitors held by local watchers.
    pub fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Number of monitors on local targets.
    pub fn incoming_len(&self) -> usize {
        self.incoming.values().map(Vec::len).sum()
    }
}

/// A message that could not be encoded or decoded with serde.
#[derive(Debug, thiserror::Error)]
#[error("message codec: {0}")]
pub struct CodecError(#[from] pub postcard::Error);

impl Message {
    /// Decodes the payload of a `Data` message sent with `send_typed`;
    /// `None` for other messages.
    pub fn decode<T: DeserializeOwned>(&self) -> Option<Result<T, CodecError>> {
        match self {
            Message::Data { payload, .. } => {
                Some(postcard::from_bytes(payload).map_err(CodecError))
            }
            _ => None,
        }
    }
}
