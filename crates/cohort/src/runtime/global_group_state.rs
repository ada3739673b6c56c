//! Global-group requests waiting for the core's answer, the
//! `monitor_nodes` subscribers, and the execution of global-group effects.

use std::sync::Mutex;

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::core::global_group::{Answer, GlobalGroupsEffect};
use crate::core::pid::NodeName;
use crate::core::ReqId;

/// An own-group node became synced (up) or was lost (down).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupNodeEvent {
    /// Up, after its group definition matched ours.
    Up(NodeName),
    /// Down.
    Down(NodeName),
}

/// Requests waiting for the core, and `monitor_nodes` subscribers.
#[derive(Default)]
pub(crate) struct Requests {
    pub(super) next: std::sync::atomic::AtomicU64,
    pub(super) answers: DashMap<ReqId, oneshot::Sender<Option<Answer>>>,
    pub(super) syncs: DashMap<ReqId, oneshot::Sender<()>>,
    pub(super) monitors: Mutex<Vec<super::stream::EventSender<GroupNodeEvent>>>,
}

impl Requests {
    pub(super) fn req(&self) -> ReqId {
        // Far from the connect-request ids, which count from 1.
        (1 << 62) + self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Carries out one global-group effect.
    pub(crate) fn apply(&self, fx: GlobalGroupsEffect) {
        match fx {
            GlobalGroupsEffect::Node { node, up } => {
                let ev = if up {
                    GroupNodeEvent::Up(node)
                } else {
                    GroupNodeEvent::Down(node)
                };
                self.monitors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|m| m.send(ev.clone()).is_ok());
            }
            GlobalGroupsEffect::Answered { req, answer } => {
                if let Some((_, tx)) = self.answers.remove(&req) {
                    let _ = tx.send(answer);
                }
            }
            GlobalGroupsEffect::Synced { req } => {
                if let Some((_, tx)) = self.syncs.remove(&req) {
                    let _ = tx.send(());
                }
            }
        }
    }
}
