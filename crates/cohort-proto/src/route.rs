//! Where a message to a pid goes: decided here once, for
//! [`NodeCore::send`](crate::NodeCore::send) and for a runtime's lock-free
//! fast path, so that a simulator driving the core exercises the decision
//! production messages take.

use crate::pid::{NodeName, Pid};

/// Where a message to a pid goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Into the mailbox of a process of this node and this creation (a
    /// process that is gone drops it).
    Local,
    /// Onto the session with the pid's node, which is up with the pid's
    /// creation.
    Peer {
        /// The node holds changes for batching: they go out first (call
        /// [`NodeCore::flush`](crate::NodeCore::flush)), so a message never
        /// overtakes a change made before it was sent.
        flush_first: bool,
    },
    /// Nowhere: a pid of an earlier creation of this node, or of a node
    /// that is not connected or runs another creation now (sending never
    /// fails, as in Erlang).
    Drop,
}

/// Where a message from this node (`me`, `creation`) to `to` goes.
/// `peer_creation` gives the creation of an up peer (asked only for a pid
/// of another node); `held` tells whether the node holds changes for
/// batching.
pub fn route(
    me: &NodeName,
    creation: u32,
    to: &Pid,
    peer_creation: impl FnOnce(&NodeName) -> Option<u32>,
    held: bool,
) -> Route {
    if to.node() == me {
        return if to.creation() == creation {
            Route::Local
        } else {
            Route::Drop
        };
    }
    if peer_creation(to.node()) == Some(to.creation()) {
        Route::Peer { flush_first: held }
    } else {
        Route::Drop
    }
}

/// Where a message a peer sent to `to` goes: a node delivers to its own
/// processes and never relays.
pub fn route_received(me: &NodeName, creation: u32, to: &Pid) -> Route {
    route(me, creation, to, |_| None, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> NodeName {
        NodeName::new(n).unwrap()
    }

    #[test]
    fn a_message_goes_local_to_a_peer_of_its_creation_or_nowhere() {
        let me = node("a@h");
        let b = node("b@h");
        let up = |n: &NodeName| (n == &b).then_some(7);
        assert_eq!(
            route(&me, 1, &Pid::new(me.clone(), 1, 5), up, true),
            Route::Local
        );
        assert_eq!(
            route(&me, 1, &Pid::new(me.clone(), 2, 5), up, false),
            Route::Drop
        );
        assert_eq!(
            route(&me, 1, &Pid::new(b.clone(), 7, 5), up, true),
            Route::Peer { flush_first: true }
        );
        assert_eq!(
            route(&me, 1, &Pid::new(b.clone(), 7, 5), up, false),
            Route::Peer { flush_first: false }
        );
        assert_eq!(
            route(&me, 1, &Pid::new(b.clone(), 6, 5), up, false),
            Route::Drop
        );
        assert_eq!(
            route(&me, 1, &Pid::new(node("c@h"), 7, 5), up, false),
            Route::Drop
        );
        assert_eq!(route_received(&me, 1, &Pid::new(b, 7, 5)), Route::Drop);
        assert_eq!(
            route_received(&me, 1, &Pid::new(me.clone(), 1, 5)),
            Route::Local
        );
    }
}
