//! The state a node's handle, its processes and its tasks share.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::cell::EngineCell;
use super::global_group_state::Requests;
use super::link::{Link, Traffic};
use super::names_state::NamesShared;
use super::pg_state::PgSubs;
use crate::core::pid::{NodeName, Pid};
use crate::core::process::Message;
use crate::discovery::state::State as DiscoveryState;
use crate::transport::tls::TlsTransport;

/// State shared by the node handle, its processes, the driver and the
/// connection tasks.
pub(crate) struct Shared {
    pub(crate) name: NodeName,
    pub(crate) creation: u32,
    pub(crate) local_addr: String,
    /// Live local processes: serial → mailbox. Serials are this node's own
    /// counter, so a fixed fast hasher is safe (no peer chooses the keys).
    pub(crate) mailboxes: DashMap<u64, mpsc::UnboundedSender<Message>, foldhash::fast::FixedState>,
    /// Up peers: name → session writer.
    pub(crate) links: DashMap<NodeName, Link>,
    pub(crate) next_serial: AtomicU64,
    pub(crate) next_ref: AtomicU64,
    pub(crate) names: NamesShared,
    pub(crate) engine: EngineCell,
    /// Traffic counters, for metrics (shared with each connection's).
    pub(crate) traffic: Arc<Traffic>,
    /// Global-group requests waiting for an answer.
    pub(crate) global_group_reqs: Requests,
    /// Process-group monitor subscriptions: id → event channel.
    pub(crate) pg_subs: PgSubs,
    /// Discovery strategies started on the node.
    pub(crate) discovery: std::sync::Mutex<Vec<Arc<DiscoveryState>>>,
    /// The TLS transport, when the node uses one (for reloads).
    pub(crate) tls: Option<TlsTransport>,
}

impl Shared {
    /// Puts a message into a local mailbox; false when the process is gone.
    pub(crate) fn deliver_local(&self, to: &Pid, msg: Message) -> bool {
        if to.creation() != self.creation {
            return false;
        }
        match self.mailboxes.get(&to.serial()) {
            Some(mb) => mb.send(msg).is_ok(),
            None => false,
        }
    }
}
