//! What monitors of a scope or group are told: one event per change, in
//! the order this node applied it.

use bytes::Bytes;

use super::view::Group;
use super::wire::ScopeName;
use crate::pid::Pid;

/// What happened to a group, as monitors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgEventKind {
    /// These pids joined (a pid listed twice joined twice).
    Join,
    /// These pids left (or their process or node went away).
    Leave,
    /// The metadata of these pids' memberships changed.
    Meta,
}

/// One change of a group, delivered to monitors in the order this node
/// applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgEvent {
    /// The scope.
    pub scope: ScopeName,
    /// The group.
    pub group: Group,
    /// What happened.
    pub kind: PgEventKind,
    /// The pids concerned, once per membership.
    pub pids: Vec<Pid>,
    /// The metadata, for joins and updates.
    pub meta: Option<Bytes>,
}

impl PgEvent {
    /// An event of `kind` about `pids` in `scope`/`group`.
    pub fn new(
        scope: ScopeName,
        group: Group,
        kind: PgEventKind,
        pids: Vec<Pid>,
        meta: Option<Bytes>,
    ) -> Self {
        PgEvent {
            scope,
            group,
            kind,
            pids,
            meta,
        }
    }
}

/// Effects of the process-group layer for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum PgEffect {
    /// Deliver an event to monitor subscription `sub`.
    Event {
        /// The subscription.
        sub: u64,
        /// The event.
        event: PgEvent,
    },
}
