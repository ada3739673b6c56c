//! The process-group monitor subscriptions of a node, and the delivery of
//! their events.

use dashmap::DashMap;

use crate::core::pg::{PgEffect, PgEvent};

/// Process-group monitor subscriptions: id → event channel.
#[derive(Default)]
pub(crate) struct PgSubs(DashMap<u64, super::stream::EventSender<PgEvent>>);

impl PgSubs {
    /// Adds a subscription.
    pub(crate) fn insert(&self, sub: u64, tx: super::stream::EventSender<PgEvent>) {
        self.0.insert(sub, tx);
    }

    /// Ends a subscription.
    pub(crate) fn remove(&self, sub: u64) {
        self.0.remove(&sub);
    }

    /// Carries out one process-group effect, under the engine lock.
    pub(crate) fn apply(&self, fx: PgEffect) {
        match fx {
            PgEffect::Event { sub, event } => {
                let closed = match self.0.get(&sub) {
                    Some(tx) => tx.send(event).is_err(),
                    None => false,
                };
                if closed {
                    self.0.remove(&sub);
                }
            }
        }
    }
}
