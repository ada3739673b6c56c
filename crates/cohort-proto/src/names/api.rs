//! The name service's operations, and their [`NodeCore`] entry points.
//!
//! Operations carry an id `op` chosen by the driver; an operation that
//! cannot finish at once answers later with [`NamesEffect::Reply`].

use std::collections::BTreeSet;

use bytes::Bytes;

#[allow(unused_imports)]
use super::NamesEffect;
use super::{
    Claim, LockId, LossPolicy, Mode, Names, NamesError, NamesFrame, UnregisterReason, WireReason,
};
use crate::ctx::Ctx;
use crate::pid::{NodeName, Pid};

/// The result of an operation: done now, or later through
/// [`NamesEffect::Reply`] with the same `op`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: `Ok(true)` on success, `Ok(false)` for a lock not taken.
    Done(Result<bool, NamesError>),
    /// The answer comes later as a [`NamesEffect::Reply`].
    Pending,
}

/// A registration request.
#[derive(Debug, Clone)]
pub struct RegisterArgs {
    /// The table.
    pub table: String,
    /// The name.
    pub name: String,
    /// The local process.
    pub pid: Pid,
    /// Application metadata.
    pub meta: Bytes,
    /// Loss policy for this claim; the table's when `None`.
    pub policy: Option<LossPolicy>,
    /// `re_register`: take the name even when it is held.
    pub replace: bool,
}

impl Names {
    fn index(&self, table: &str) -> Result<usize, NamesError> {
        self.table_index(table)
            .ok_or_else(|| NamesError::UnknownTable(table.to_string()))
    }

    /// Registers (or re-registers) a local pid.
    pub fn register(&mut self, op: u64, a: RegisterArgs, ctx: &mut Ctx<'_>) -> Outcome {
        let i = match self.index(&a.table) {
            Ok(i) => i,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let too_long = |what| move |(len, max)| NamesError::TooLong { what, len, max };
        if let Err(e) = crate::limits::name(&a.name)
            .map_err(too_long("name"))
            .and_then(|()| {
                crate::limits::meta(Some(&a.meta[..]), self.max_meta).map_err(too_long("metadata"))
            })
        {
            return Outcome::Done(Err(e));
        }
        // Eventual claims may wait in the outbox for the next ones; any
        // other frame goes out after them.
        let defer = self.tables[i].cfg.mode == Mode::Eventual && !a.replace;
        if !defer {
            self.flush(ctx);
        }
        if let Err(e) = self.local_checks(i, &a.name, &a.pid, a.replace, ctx) {
            return Outcome::Done(Err(e));
        }
        let cfg = &self.tables[i].cfg;
        let (mode, policy) = (cfg.mode, a.policy.unwrap_or(cfg.policy));
        let stamp = self.tick(0);
        let mut claim = Claim {
            name: a.name,
            pid: a.pid,
            meta: a.meta,
            stamp,
            policy,
            supersedes: None,
        };
        let out = match mode {
            Mode::Eventual => {
                if a.replace {
                    self.displace(i, &mut claim, ctx);
                }
                self.add_local(i, claim, &BTreeSet::new(), defer, ctx);
                Outcome::Done(Ok(true))
            }
            Mode::Locked => {
                self.start_reg(op, i, claim, a.replace, ctx);
                Outcome::Pending
            }
        };
        self.pump(ctx);
        out
    }

    /// Unregisters `name`, the claim of its holder as this node sees it.
    ///
    /// - Held by a local pid, eventual table: retracted at once, `Ok`.
    /// - Held by a local pid, locked table: the name's lock is taken on
    ///   every member (as a locked registration takes it), the claim is
    ///   retracted and the lock released behind the retraction; `Ok` once
    ///   every member acknowledged it (or after 3 s: the holder retracted
    ///   it, the stream repair brings it to the others).
    /// - Held on another node: the request goes to the holder's node,
    ///   naming the claim seen here, and that node retracts it only if it
    ///   is still current (under the name lock in a locked table). `Ok`
    ///   when it answered that it did, [`NamesError::NotRegistered`] when
    ///   the claim was gone, [`NamesError::OutcomeUnknown`] when no answer
    ///   came within 3 s or the node went away (it may or may not act).
    /// - No holder: [`NamesError::NotRegistered`].
    pub fn unregister(&mut self, op: u64, table: &str, name: &str, ctx: &mut Ctx<'_>) -> Outcome {
        self.flush(ctx);
        let i = match self.index(table) {
            Ok(i) => i,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let Some(holder) = self.tables[i].view(name) else {
            // A clash being dropped has claims but no holder: retract ours.
            self.unregister_local(i, name, None, ctx);
            self.pump(ctx);
            return Outcome::Done(Err(NamesError::NotRegistered));
        };
        let locked = self.tables[i].cfg.mode == Mode::Locked;
        let (pid, stamp) = (holder.pid(), holder.stamp());
        let out = if holder.node() == ctx.me() && pid.creation() == ctx.creation() {
            if locked {
                self.start_unregister(op, i, name, &pid, stamp, None, ctx);
                Outcome::Pending
            } else {
                self.retract(
                    i,
                    name,
                    &pid,
                    UnregisterReason::Unregistered,
                    WireReason::Unregistered,
                    None,
                    ctx,
                );
                Outcome::Done(Ok(true))
            }
        } else {
            let node = holder.node().clone();
            let frame = NamesFrame::Unregister {
                table: table.to_string(),
                name: name.to_string(),
                pid,
                stamp,
                op,
            };
            self.send(&node, frame, ctx);
            let unknown = Err(NamesError::OutcomeUnknown {
                name: name.to_string(),
            });
            self.wait(op, BTreeSet::from([node]), unknown.clone(), unknown, ctx);
            Outcome::Pending
        };
        self.pump(ctx);
        out
    }

    /// Answers once every member acknowledged a ping sent after this
    /// node's snapshot, so both sides exchanged their names.
    pub fn sync(&mut self, op: u64, ctx: &mut Ctx<'_>) -> Outcome {
        self.flush(ctx);
        let members = self.members(ctx);
        for m in &members {
            // Both snapshots again, then the ping: the ack proves both
            // directions were applied, even if a first snapshot was lost.
            self.send_snapshot(m, ctx);
            self.send(m, NamesFrame::Resync, ctx);
            self.send(m, NamesFrame::Ping { op }, ctx);
        }
        let awaiting: BTreeSet<NodeName> = members.into_iter().collect();
        if awaiting.is_empty() {
            return Outcome::Done(Ok(true));
        }
        self.wait_acks(op, awaiting, Ok(true), ctx);
        Outcome::Pending
    }

    /// Takes `lock` for local `holder` on `nodes` (every member and this
    /// node when `None`).
    pub fn set_lock(
        &mut self,
        op: u64,
        lock: LockId,
        holder: Pid,
        nodes: Option<Vec<NodeName>>,
        retries: Option<u32>,
        ctx: &mut Ctx<'_>,
    ) -> Outcome {
        self.flush(ctx);
        if holder.node() != ctx.me() || holder.creation() != ctx.creation() {
            return Outcome::Done(Err(NamesError::NotLocal));
        }
        if !ctx.is_local_alive(&holder) {
            return Outcome::Done(Err(NamesError::NoProc));
        }
        let nodes = nodes.unwrap_or_else(|| self.all_nodes(ctx));
        self.start_lock(op, lock, holder, nodes, retries, ctx);
        self.pump(ctx);
        Outcome::Pending
    }

    /// Releases `lock` for local `holder` on `nodes` (every member and this
    /// node when `None`).
    pub fn release_lock(
        &mut self,
        lock: LockId,
        holder: Pid,
        nodes: Option<Vec<NodeName>>,
        ctx: &mut Ctx<'_>,
    ) {
        self.flush(ctx);
        let nodes = nodes.unwrap_or_else(|| self.all_nodes(ctx));
        self.del_lock(lock, holder, nodes, ctx);
        self.pump(ctx);
    }

    fn all_nodes(&self, ctx: &Ctx<'_>) -> Vec<NodeName> {
        let mut v = self.members(ctx);
        v.push(ctx.me().clone());
        v
    }

    /// The pid registered as `name` in `table`, from this node's view.
    pub fn whereis(&self, table: &str, name: &str) -> Option<Pid> {
        let i = self.table_index(table)?;
        self.tables[i].view(name).map(|r| r.pid())
    }

    /// The names visible in `table`, sorted.
    pub fn registered_names(&self, table: &str) -> Vec<String> {
        let mut v: Vec<String> = self.visible_names(table).map(str::to_string).collect();
        v.sort();
        v
    }

    /// How many names are visible in `table`: the length of
    /// [`Names::registered_names`], without listing them.
    pub fn name_count(&self, table: &str) -> usize {
        self.visible_names(table).count()
    }

    /// The names visible in `table` (none when there is no such table),
    /// in no particular order.
    fn visible_names<'a>(&'a self, table: &str) -> impl Iterator<Item = &'a str> + 'a {
        let t = self.table_index(table).map(|i| &self.tables[i]);
        t.into_iter().flat_map(|t| {
            t.claims
                .iter()
                .map(|claims| claims.name())
                .filter(move |n| t.view(n).is_some())
        })
    }

    /// The claim staged on this node under the lock of `name` in `table`
    /// by a locked registration in flight (granted, not committed yet).
    pub fn staged(&self, table: &str, name: &str) -> Option<Claim> {
        let i = self.table_index(table)?;
        self.tables[i].name_locks.get(name)?.staged()
    }

    /// Every claim known for `name` in `table` (the winner and not yet
    /// settled losers), ordered by process: [`Names::claims`] of that one
    /// name, without listing the table.
    pub fn claims_of(&self, table: &str, name: &str) -> Vec<Claim> {
        let Some(i) = self.table_index(table) else {
            return Vec::new();
        };
        let mut v: Vec<Claim> = self.tables[i]
            .claims
            .get(name)
            .into_iter()
            .flat_map(|claims| claims.recs().map(|r| r.to_claim()))
            .collect();
        v.sort_by(|a, b| a.pid.cmp(&b.pid));
        v
    }

    /// Every claim known in `table` (winners and not yet settled losers).
    pub fn claims(&self, table: &str) -> Vec<Claim> {
        let Some(i) = self.table_index(table) else {
            return Vec::new();
        };
        let mut v: Vec<Claim> = self.tables[i]
            .claims
            .iter()
            .flat_map(|claims| claims.recs().map(|r| r.to_claim()))
            .collect();
        v.sort_by(|a, b| (&a.name, &a.pid).cmp(&(&b.name, &b.pid)));
        v
    }
}
