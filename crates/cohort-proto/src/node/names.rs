//! The name service's [`NodeCore`] entry points: each call runs the
//! [`Names`](crate::names::Names) operation with the node's context.

use super::NodeCore;
use crate::names::{LockId, Outcome, RegisterArgs};
use crate::pid::{NodeName, Pid};
use crate::time::Time;

impl NodeCore {
    /// Registers a local pid under a name (see [`Names::register`](crate::names::Names::register)).
    pub fn names_register(&mut self, now: Time, op: u64, args: RegisterArgs) -> Outcome {
        self.with_names(now, |n, ctx| n.register(op, args, ctx))
    }

    /// Unregisters a name (see [`Names::unregister`](crate::names::Names::unregister)).
    pub fn names_unregister(&mut self, now: Time, op: u64, table: &str, name: &str) -> Outcome {
        self.with_names(now, |n, ctx| n.unregister(op, table, name, ctx))
    }

    /// Exchanges names with every member (see [`Names::sync`](crate::names::Names::sync)).
    pub fn names_sync(&mut self, now: Time, op: u64) -> Outcome {
        self.with_names(now, |n, ctx| n.sync(op, ctx))
    }

    /// Takes a lock (see [`Names::set_lock`](crate::names::Names::set_lock)).
    pub fn names_set_lock(
        &mut self,
        now: Time,
        op: u64,
        lock: LockId,
        holder: &Pid,
        nodes: Option<Vec<NodeName>>,
        retries: Option<u32>,
    ) -> Outcome {
        let holder = holder.clone();
        self.with_names(now, |n, ctx| {
            n.set_lock(op, lock, holder, nodes, retries, ctx)
        })
    }

    /// Releases a lock (see [`Names::release_lock`](crate::names::Names::release_lock)).
    pub fn names_del_lock(
        &mut self,
        now: Time,
        lock: LockId,
        holder: &Pid,
        nodes: Option<Vec<NodeName>>,
    ) {
        let holder = holder.clone();
        self.with_names(now, |n, ctx| n.release_lock(lock, holder, nodes, ctx))
    }
}
