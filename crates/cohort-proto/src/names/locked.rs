//! Locked registrations in one round trip: a `Prepare` takes the name's
//! lock on every member (wait-die on the request's `(stamp, node)`) and
//! stages the claim under it; once all granted, the origin installs the
//! claim and queues a `Commit` to every member, which installs the staged
//! claim there and releases the lock.

use std::collections::BTreeSet;
use std::time::Duration;

use tracing::debug;

use super::error::NamesError;
use super::event::UnregisterReason;
use super::locked_state::{RegOp, Req, Unreg};
use super::wire::{Claim, NamesFrame, OwnClaim, PrepareAnswer, WireReason};
use super::{Names, NAME_LOCK_LEASE, PREPARE_TIMEOUT};
use crate::ctx::Ctx;
use crate::pid::{NodeName, Pid};
use crate::proto::Frame;

impl Names {
    /// Starts a locked registration of `claim` (stamped already).
    pub(super) fn start_reg(
        &mut self,
        op: u64,
        table: usize,
        claim: Claim,
        replace: bool,
        ctx: &mut Ctx<'_>,
    ) {
        self.regs.insert(
            op,
            RegOp {
                table,
                claim,
                replace,
                attempt: 0,
                asked: BTreeSet::new(),
                awaiting: BTreeSet::new(),
                backing_off: false,
                timer: None,
                unregister: None,
            },
        );
        self.send_prepares(op, ctx);
    }

    /// Starts a locked unregister of local `pid`'s claim on `name` stamped
    /// `stamp`: its lock request (the holder's pid under a fresh stamp,
    /// granted even though the name is held) takes the name's lock on
    /// every member like a registration; then [`Names::commit`] retracts
    /// the claim if it is still current and releases the lock behind the
    /// retraction. `reply_to`: the node and operation that forwarded it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_unregister(
        &mut self,
        op: u64,
        table: usize,
        name: &str,
        pid: &Pid,
        stamp: u64,
        reply_to: Option<(NodeName, u64)>,
        ctx: &mut Ctx<'_>,
    ) {
        let request = Claim {
            name: name.to_string(),
            pid: pid.clone(),
            meta: Default::default(),
            stamp: self.tick(0),
            policy: self.tables[table].cfg.policy,
            supersedes: None,
        };
        self.regs.insert(
            op,
            RegOp {
                table,
                claim: request,
                replace: true,
                attempt: 0,
                asked: BTreeSet::new(),
                awaiting: BTreeSet::new(),
                backing_off: false,
                timer: None,
                unregister: Some(Unreg {
                    pid: pid.clone(),
                    stamp,
                    reply_to,
                }),
            },
        );
        self.send_prepares(op, ctx);
    }

    /// Answers operation `op`: to the driver, or to the node that
    /// forwarded the unregister (`Ok` as applied, anything else as not).
    fn finish(&mut self, op: u64, r: &RegOp, result: Result<bool, NamesError>, ctx: &mut Ctx<'_>) {
        match r.unregister.as_ref().and_then(|u| u.reply_to.clone()) {
            Some((node, their_op)) => {
                let frame = NamesFrame::Unregistered {
                    op: their_op,
                    applied: result.is_ok(),
                };
                self.send(&node, frame, ctx);
            }
            None => self.reply(op, result, ctx),
        }
    }

    fn send_prepares(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        let mut nodes: BTreeSet<NodeName> = self.members(ctx).into_iter().collect();
        nodes.insert(ctx.me().clone());
        let Some(r) = self.regs.get_mut(&op) else {
            return;
        };
        r.backing_off = false;
        r.asked = nodes.clone();
        r.awaiting = nodes.clone();
        let frame = NamesFrame::Prepare {
            table: self.tables[r.table].cfg.name.clone(),
            claim: OwnClaim::of(&r.claim),
            op,
            attempt: r.attempt,
            replace: r.replace,
        };
        let at = ctx.now + PREPARE_TIMEOUT;
        if let Some((t, a)) = r.timer.replace((at, r.attempt)) {
            self.timers.remove(&(t, op, a));
        }
        self.timers.insert((at, op, r.attempt));
        let me = ctx.me().clone();
        // One frame for every peer, encoded once.
        ctx.broadcast(
            nodes.iter().filter(|n| **n != me),
            Frame::Names(frame.clone()),
        );
        self.send(&me, frame, ctx);
    }

    /// A timer of registration `op` fired: the end of a back-off, or a
    /// lock phase that got no full answer in time (treated as busy).
    pub(super) fn reg_timer(&mut self, op: u64, attempt: u32, ctx: &mut Ctx<'_>) {
        let Some(r) = self.regs.get(&op) else {
            return;
        };
        if r.attempt != attempt {
            return;
        }
        if r.backing_off {
            self.send_prepares(op, ctx);
        } else {
            self.back_off(op, ctx);
        }
    }

    /// Gives back every name lock of `op` and retries after a jittered delay.
    fn back_off(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        self.release_all(op, ctx);
        let r = self.regs.get_mut(&op).expect("present");
        r.attempt += 1;
        r.backing_off = true;
        let attempt = r.attempt;
        let base = 500u64 << attempt.min(7);
        let delay = base + ctx.random_below(base);
        let at = ctx.now + Duration::from_micros(delay);
        let r = self.regs.get_mut(&op).expect("present");
        if let Some((t, a)) = r.timer.replace((at, attempt)) {
            self.timers.remove(&(t, op, a));
        }
        self.timers.insert((at, op, attempt));
    }

    /// Whether a request may lock `name` now.
    fn check(&self, i: usize, name: &str, req: &Req) -> PrepareAnswer {
        if !req.replace && self.tables[i].claims.contains(name) {
            PrepareAnswer::Taken
        } else {
            PrepareAnswer::Granted
        }
    }

    fn answer(&mut self, req: &Req, answer: PrepareAnswer, ctx: &mut Ctx<'_>) {
        let frame = NamesFrame::Prepared {
            op: req.op,
            attempt: req.attempt,
            answer,
        };
        let node = req.node.clone();
        self.send(&node, frame, ctx);
    }

    /// A `Prepare` arrived (from a peer or this node).
    pub(super) fn prepare(&mut self, i: usize, req: Req, ctx: &mut Ctx<'_>) {
        let name = req.claim.name().to_string();
        let lock = self.tables[i].name_locks.entry(name.clone()).or_default();
        let older = match &lock.holder {
            None => None,
            Some(h) if h.key() == req.key() => {
                return self.answer(&req, PrepareAnswer::Granted, ctx)
            }
            Some(h) => Some(req.key() < h.key()),
        };
        match older {
            None => {
                let a = self.check(i, &name, &req);
                if a == PrepareAnswer::Granted {
                    self.tables[i]
                        .name_locks
                        .get_mut(&name)
                        .expect("present")
                        .holder = Some(req.clone());
                } else {
                    self.drop_idle_name_lock(i, &name);
                }
                self.answer(&req, a, ctx);
            }
            Some(true) => {
                // Older than the holder: wait (wait-die never waits for an older one).
                let lock = self.tables[i].name_locks.get_mut(&name).expect("present");
                let pos = lock.waiters.partition_point(|w| w.key() < req.key());
                lock.waiters.insert(pos, req);
            }
            Some(false) => self.answer(&req, PrepareAnswer::Busy, ctx),
        }
    }

    fn drop_idle_name_lock(&mut self, i: usize, name: &str) {
        let t = &mut self.tables[i];
        if t.name_locks
            .get(name)
            .is_some_and(|s| s.holder.is_none() && s.waiters.is_empty())
        {
            t.name_locks.remove(name);
        }
    }

    /// Releases the lock of `name` held or awaited by `node`'s request `stamp`.
    pub(super) fn release_name_lock(
        &mut self,
        i: usize,
        name: &str,
        node: &NodeName,
        stamp: u64,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(lock) = self.tables[i].name_locks.get_mut(name) else {
            return;
        };
        if lock
            .holder
            .as_ref()
            .is_some_and(|h| h.key() == (stamp, node))
        {
            lock.holder = None;
            self.grant_next(i, name, ctx);
        } else {
            lock.waiters.retain(|w| w.key() != (stamp, node));
            self.drop_idle_name_lock(i, name);
        }
    }

    fn grant_next(&mut self, i: usize, name: &str, ctx: &mut Ctx<'_>) {
        loop {
            let Some(lock) = self.tables[i].name_locks.get_mut(name) else {
                return;
            };
            if lock.holder.is_some() || lock.waiters.is_empty() {
                break;
            }
            let mut w = lock.waiters.remove(0);
            w.since = ctx.now;
            let a = self.check(i, name, &w);
            if a == PrepareAnswer::Granted {
                self.tables[i]
                    .name_locks
                    .get_mut(name)
                    .expect("present")
                    .holder = Some(w.clone());
            }
            self.answer(&w, a, ctx);
        }
        self.drop_idle_name_lock(i, name);
    }

    /// Frees name locks held longer than the lease: their release was lost.
    pub(super) fn expire_name_locks(&mut self, ctx: &mut Ctx<'_>) {
        for i in 0..self.tables.len() {
            let stale: Vec<String> = self.tables[i]
                .name_locks
                .iter()
                .filter(|(_, s)| {
                    s.holder
                        .as_ref()
                        .is_some_and(|h| h.since + NAME_LOCK_LEASE <= ctx.now)
                })
                .map(|(n, _)| n.clone())
                .collect();
            for name in stale {
                self.tables[i]
                    .name_locks
                    .get_mut(&name)
                    .expect("present")
                    .holder = None;
                self.grant_next(i, &name, ctx);
            }
        }
    }

    /// `node` is gone: its name locks are released.
    pub(super) fn release_name_locks_of(&mut self, i: usize, node: &NodeName, ctx: &mut Ctx<'_>) {
        let names: Vec<String> = self.tables[i].name_locks.keys().cloned().collect();
        for name in names {
            let lock = self.tables[i].name_locks.get_mut(&name).expect("present");
            lock.waiters.retain(|w| &w.node != node);
            if lock.holder.as_ref().is_some_and(|h| &h.node == node) {
                lock.holder = None;
                self.grant_next(i, &name, ctx);
            } else {
                self.drop_idle_name_lock(i, &name);
            }
        }
    }

    /// An answer to one of this node's `Prepare`s.
    pub(super) fn prepared(
        &mut self,
        from: &NodeName,
        op: u64,
        attempt: u32,
        answer: PrepareAnswer,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(r) = self.regs.get_mut(&op) else {
            return;
        };
        if r.attempt != attempt || r.backing_off || !r.awaiting.remove(from) {
            return;
        }
        match answer {
            PrepareAnswer::Granted => {
                if r.awaiting.is_empty() {
                    self.commit(op, ctx);
                }
            }
            PrepareAnswer::Taken => {
                if let Some(r) = self.abort_reg(op, ctx) {
                    self.finish(op, &r, Err(NamesError::Taken), ctx);
                }
            }
            PrepareAnswer::Busy => self.back_off(op, ctx),
        }
    }

    /// Tells every asked node to drop this request's lock.
    fn release_all(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        let Some(r) = self.regs.get_mut(&op) else {
            return;
        };
        let asked = std::mem::take(&mut r.asked);
        r.awaiting.clear();
        let frame = NamesFrame::Release {
            table: self.tables[r.table].cfg.name.clone(),
            name: r.claim.name.clone(),
            stamp: r.claim.stamp,
        };
        for n in &asked {
            self.send(n, frame.clone(), ctx);
        }
    }

    fn abort_reg(&mut self, op: u64, ctx: &mut Ctx<'_>) -> Option<RegOp> {
        self.release_all(op, ctx);
        let r = self.regs.remove(&op)?;
        self.drop_reg_timer(op, &r);
        Some(r)
    }

    /// Drops the pending timer of registration `op`, which ended.
    fn drop_reg_timer(&mut self, op: u64, r: &RegOp) {
        if let Some((t, a)) = r.timer {
            self.timers.remove(&(t, op, a));
        }
    }

    /// Every member granted: check again, install the claim here and queue
    /// its commit to every member, then answer. The members hold the name
    /// locked for this claim until the commit (ordered after everything
    /// this node sent before) installs it there.
    fn commit(&mut self, op: u64, ctx: &mut Ctx<'_>) {
        let r = self.regs.remove(&op).expect("present");
        self.drop_reg_timer(op, &r);
        if r.unregister.is_some() {
            return self.commit_unregister(op, r, ctx);
        }
        let (i, mut claim) = (r.table, r.claim);
        if let Err(e) = self.local_checks(i, &claim.name, &claim.pid, r.replace, ctx) {
            let frame = NamesFrame::Release {
                table: self.tables[i].cfg.name.clone(),
                name: claim.name.clone(),
                stamp: claim.stamp,
            };
            for n in &r.asked {
                self.send(n, frame.clone(), ctx);
            }
            return self.reply(op, Err(e), ctx);
        }
        if r.replace {
            self.displace(i, &mut claim, ctx);
        }
        let me = ctx.me().clone();
        let (name, stamp) = (claim.name.clone(), claim.stamp);
        // A claim that supersedes another differs from the staged one: it
        // goes out whole (an `Add` releases the lock too).
        let staged = if claim.supersedes.is_none() {
            r.asked
        } else {
            BTreeSet::new()
        };
        self.add_local(i, claim, &staged, false, ctx);
        self.release_name_lock(i, &name, &me, stamp, ctx);
        self.reply(op, Ok(true), ctx);
    }

    /// Every member granted a locked unregister the name's lock: retracts
    /// the claim if it is still current, then releases the lock on every
    /// member behind the retraction (so a registration waiting for the
    /// lock finds the name free), and answers.
    fn commit_unregister(&mut self, op: u64, r: RegOp, ctx: &mut Ctx<'_>) {
        let u = r.unregister.as_ref().expect("an unregister");
        let (i, here) = (r.table, u.reply_to.is_none());
        let name = r.claim.name.clone();
        let current = self.tables[i].claim_of(&name, &u.pid).map(|c| c.stamp()) == Some(u.stamp);
        let mut awaiting = BTreeSet::new();
        if current {
            let ack = here.then_some(op);
            let pid = u.pid.clone();
            awaiting = self.retract(
                i,
                &name,
                &pid,
                UnregisterReason::Unregistered,
                WireReason::Unregistered,
                ack,
                ctx,
            );
        }
        let frame = NamesFrame::Release {
            table: self.tables[i].cfg.name.clone(),
            name,
            stamp: r.claim.stamp,
        };
        for n in &r.asked {
            self.send(n, frame.clone(), ctx);
        }
        match (current, here) {
            (true, true) => self.wait_acks(op, awaiting, Ok(true), ctx),
            (true, false) => self.finish(op, &r, Ok(true), ctx),
            (false, _) => self.finish(op, &r, Err(NamesError::NotRegistered), ctx),
        }
    }

    /// The `Commit` of `node`'s request `stamp` on `name`: installs the
    /// claim staged under the lock and releases it. Without the staged
    /// claim (its lock expired or was lost), asks `node` for a snapshot.
    pub(super) fn commit_staged(
        &mut self,
        i: usize,
        name: &str,
        node: &NodeName,
        stamp: u64,
        ctx: &mut Ctx<'_>,
    ) {
        let staged = self.tables[i]
            .name_locks
            .get(name)
            .and_then(|s| s.holder.as_ref())
            .filter(|h| h.key() == (stamp, node))
            .map(|h| h.claim.clone());
        match staged {
            Some(rec) => {
                self.add_stored(i, rec, ctx);
                self.release_name_lock(i, name, node, stamp, ctx);
            }
            None => {
                debug!(peer = %node, %name, "commit without a staged claim; resync");
                self.cursors.resync(node, ctx);
            }
        }
    }

    /// For a `re_register`: the claim continues the line of the name's
    /// holder (it takes that claim's place in the rank, see [`rank`]); a
    /// local holder is retracted at once, a remote one by its own node
    /// when the claim reaches it.
    ///
    /// [`rank`]: super::rank
    pub(super) fn displace(&mut self, i: usize, claim: &mut Claim, ctx: &mut Ctx<'_>) {
        let Some(holder) = self.tables[i].view(&claim.name) else {
            return;
        };
        claim.supersedes = Some(holder.successor());
        if holder.node() == ctx.me() {
            self.retract(
                i,
                &claim.name.clone(),
                &holder.pid(),
                UnregisterReason::Replaced,
                WireReason::Replaced,
                None,
                ctx,
            );
        }
    }

    /// The checks done at the origin before a claim is made.
    pub(super) fn local_checks(
        &self,
        i: usize,
        name: &str,
        pid: &Pid,
        replace: bool,
        ctx: &Ctx<'_>,
    ) -> Result<(), NamesError> {
        if pid.node() != ctx.me() || pid.creation() != ctx.creation() {
            return Err(NamesError::NotLocal);
        }
        if !ctx.is_local_alive(pid) {
            return Err(NamesError::NoProc);
        }
        let t = &self.tables[i];
        if !t.cfg.multiple_names {
            if let Some(other) = t.local.names(pid.serial()).find(|n| *n != name) {
                return Err(NamesError::AlreadyNamed(other.to_string()));
            }
        }
        if !replace && t.claims.contains(name) {
            return Err(NamesError::Taken);
        }
        Ok(())
    }

    /// `node` is gone: registrations stop waiting for it.
    pub(super) fn regs_peer_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        let ready: Vec<u64> = self
            .regs
            .iter_mut()
            .filter_map(|(op, r)| {
                r.asked.remove(node);
                (!r.backing_off && r.awaiting.remove(node) && r.awaiting.is_empty()).then_some(*op)
            })
            .collect();
        for op in ready {
            self.commit(op, ctx);
        }
    }

    /// A local process ended: its registrations in flight fail.
    pub(super) fn regs_exited(&mut self, pid: &Pid, ctx: &mut Ctx<'_>) {
        let ops: Vec<u64> = self
            .regs
            .iter()
            .filter(|(_, r)| &r.claim.pid == pid)
            .map(|(op, _)| *op)
            .collect();
        for op in ops {
            if let Some(r) = self.abort_reg(op, ctx) {
                // An unregister's holder ended: its exit retracted the claim.
                let e = match r.unregister {
                    Some(_) => NamesError::NotRegistered,
                    None => NamesError::NoProc,
                };
                self.finish(op, &r, Err(e), ctx);
            }
        }
    }
}
