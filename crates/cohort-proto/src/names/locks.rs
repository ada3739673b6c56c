//! Locks on resources (`set_lock`, `del_lock`), shared by holders with the
//! same requester id, released on holder death and node down.

use std::collections::BTreeSet;
use std::time::Duration;

use super::error::NamesError;
use super::locks_state::{LockEntry, LockOp};
use super::wire::{LockId, NamesFrame};
use super::{Names, PREPARE_TIMEOUT};
use crate::ctx::Ctx;
use crate::pid::{NodeName, Pid};

impl Names {
    /// Starts `set_lock` for local `holder` on `nodes` (this node included
    /// when listed); `retries` more attempts after the first (`None`: forever).
    pub(super) fn start_lock(
        &mut self,
        op: u64,
        lock: LockId,
        holder: Pid,
        nodes: Vec<NodeName>,
        retries: Option<u32>,
        ctx: &mut Ctx<'_>,
    ) {
        self.lock_ops.insert(
            op,
            LockOp {
                lock,
                holder,
                nodes,
                attempt: 0,
                retries,
                awaiting: BTreeSet::new(),
                fresh: Vec::new(),
                denied: false,
                backing_off: false,
            },
        );
        self.send_lock_sets(op, ctx);
    }

    fn reachable(&self, node: &NodeName, ctx: &Ctx<'_>) -> bool {
        node == ctx.me() || self.is_member(node, ctx)
    }

    fn send_lock_sets(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        let Some(l) = self.lock_ops.get(&op) else {
            return;
        };
        let nodes: BTreeSet<NodeName> = l
            .nodes
            .iter()
            .filter(|n| self.reachable(n, ctx))
            .cloned()
            .collect();
        let l = self.lock_ops.get_mut(&op).expect("present");
        l.backing_off = false;
        l.denied = false;
        l.fresh.clear();
        l.awaiting = nodes.clone();
        let frame = NamesFrame::LockSet {
            op,
            attempt: l.attempt,
            lock: l.lock.clone(),
            holder: l.holder.clone(),
        };
        let holder = l.holder.clone();
        self.timers
            .insert((ctx.now + PREPARE_TIMEOUT, op, l.attempt));
        self.held_at
            .entry(holder)
            .or_default()
            .extend(nodes.iter().cloned());
        if nodes.is_empty() {
            return self.finish_lock(op, ctx);
        }
        for n in &nodes {
            self.send(n, frame.clone(), ctx);
        }
    }

    /// A timer of lock request `op` fired: the end of a back-off, or
    /// answers missing after the time-out (treated as a refusal).
    pub(super) fn lock_timer(&mut self, op: u64, attempt: u32, ctx: &mut Ctx<'_>) {
        let Some(l) = self.lock_ops.get_mut(&op) else {
            return;
        };
        if l.attempt != attempt {
            return;
        }
        if l.backing_off {
            self.send_lock_sets(op, ctx);
        } else {
            l.denied = true;
            l.awaiting.clear();
            self.finish_lock(op, ctx);
        }
    }

    /// A `LockSet` arrived.
    pub(super) fn lock_set(
        &mut self,
        from: &NodeName,
        op: u64,
        attempt: u32,
        lock: LockId,
        holder: Pid,
        ctx: &mut Ctx<'_>,
    ) {
        let (granted, fresh) = match self.locks.get_mut(&lock.resource) {
            None => {
                let mut holders = BTreeSet::new();
                holders.insert(holder);
                self.locks.insert(
                    lock.resource,
                    LockEntry {
                        requester: lock.requester,
                        holders,
                    },
                );
                (true, true)
            }
            Some(e) if e.requester == lock.requester => (true, e.holders.insert(holder)),
            Some(_) => (false, false),
        };
        let frame = NamesFrame::LockReply {
            op,
            attempt,
            granted,
            fresh,
        };
        self.send(from, frame, ctx);
    }

    /// An answer to one of this node's `LockSet`s.
    pub(super) fn lock_reply(
        &mut self,
        from: &NodeName,
        op: u64,
        attempt: u32,
        granted: bool,
        fresh: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(l) = self.lock_ops.get_mut(&op) else {
            return;
        };
        if l.attempt != attempt || l.backing_off || !l.awaiting.remove(from) {
            return;
        }
        if granted && fresh {
            l.fresh.push(from.clone());
        }
        if !granted {
            l.denied = true;
        }
        if l.awaiting.is_empty() {
            self.finish_lock(op, ctx);
        }
    }

    fn finish_lock(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        let l = self.lock_ops.get_mut(&op).expect("present");
        if !l.denied {
            self.lock_ops.remove(&op);
            return self.reply(op, Ok(true), ctx);
        }
        // Give back what this attempt took, then retry or give up.
        let fresh = std::mem::take(&mut l.fresh);
        let del = NamesFrame::LockDel {
            lock: l.lock.clone(),
            holder: l.holder.clone(),
        };
        match l.retries {
            Some(0) => {
                self.lock_ops.remove(&op);
                self.reply(op, Ok(false), ctx);
            }
            _ => {
                l.retries = l.retries.map(|r| r - 1);
                l.attempt += 1;
                l.backing_off = true;
                // OTP backs off randomly up to a quarter second; start lower.
                let base = 1000u64 << l.attempt.min(8);
                let attempt = l.attempt;
                let delay = base / 2 + ctx.random_below(base);
                self.timers
                    .insert((ctx.now + Duration::from_micros(delay), op, attempt));
            }
        }
        for n in &fresh {
            self.send(n, del.clone(), ctx);
        }
    }

    /// `holder` releases `lock` on this node.
    pub(super) fn lock_del(&mut self, lock: &LockId, holder: &Pid) {
        if let Some(e) = self.locks.get_mut(&lock.resource) {
            if e.requester == lock.requester {
                e.holders.remove(holder);
                if e.holders.is_empty() {
                    self.locks.remove(&lock.resource);
                }
            }
        }
    }

    /// `holder` ended: it releases every lock on this node.
    pub(super) fn lock_gone(&mut self, holder: &Pid) {
        self.locks.retain(|_, e| {
            e.holders.remove(holder);
            !e.holders.is_empty()
        });
    }

    /// Releases `lock` for local `holder` on `nodes`.
    pub(super) fn del_lock(
        &mut self,
        lock: LockId,
        holder: Pid,
        nodes: Vec<NodeName>,
        ctx: &mut Ctx<'_>,
    ) {
        for n in nodes
            .iter()
            .filter(|n| self.reachable(n, ctx))
            .cloned()
            .collect::<Vec<_>>()
        {
            let frame = NamesFrame::LockDel {
                lock: lock.clone(),
                holder: holder.clone(),
            };
            self.send(&n, frame, ctx);
        }
    }

    /// `node` is gone: its holders' locks go; requests stop waiting for it.
    pub(super) fn locks_peer_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.locks.retain(|_, e| {
            e.holders.retain(|h| h.node() != node);
            !e.holders.is_empty()
        });
        for set in self.held_at.values_mut() {
            set.remove(node);
        }
        let ready: Vec<u64> = self
            .lock_ops
            .iter_mut()
            .filter_map(|(op, l)| {
                (!l.backing_off && l.awaiting.remove(node) && l.awaiting.is_empty()).then_some(*op)
            })
            .collect();
        for op in ready {
            self.finish_lock(op, ctx);
        }
    }

    /// A local process ended: its lock requests fail and its locks go everywhere.
    pub(super) fn locks_exited(&mut self, pid: &Pid, ctx: &mut Ctx<'_>) {
        let ops: Vec<u64> = self
            .lock_ops
            .iter()
            .filter(|(_, l)| &l.holder == pid)
            .map(|(op, _)| *op)
            .collect();
        for op in ops {
            self.lock_ops.remove(&op);
            self.reply(op, Err(NamesError::NoProc), ctx);
        }
        for n in self.held_at.remove(pid).unwrap_or_default() {
            if self.reachable(&n, ctx) {
                self.send(
                    &n,
                    NamesFrame::LockGone {
                        holder: pid.clone(),
                    },
                    ctx,
                );
            }
        }
    }

    /// The holders of the lock on `resource` on this node, with its requester id.
    pub fn lock_holders(&self, resource: &str) -> Option<(String, Vec<Pid>)> {
        self.locks
            .get(resource)
            .map(|e| (e.requester.clone(), e.holders.iter().cloned().collect()))
    }
}
