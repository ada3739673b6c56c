//! Claims, the visible view, and clash settlement.

use std::collections::BTreeSet;

use super::event::{NameEvent, NamesEffect, UnregisterReason};
use super::rank;
use super::store::{NameClaims, NameClaimsRef, SharedClaim, Stored, StoredClaim};
use super::wire::{Claim, LossPolicy, LostClaim, NamesFrame, OwnClaim, WireReason};
use super::{claim_size, Names, Table, MAX_BATCH, MAX_LOST};
use crate::ctx::{Ctx, Deferred, Holds};
use crate::effect::Effect;
use crate::pid::{ExitReason, NodeName, Pid};
use crate::process::Message;
use crate::proto::Frame;

impl Table {
    /// The visible entry of `name`: the winner among its claims.
    pub(super) fn view(&self, name: &str) -> Option<SharedClaim> {
        let list = match self.claims.get(name)? {
            NameClaimsRef::One(r) => return Some(r.clone()),
            NameClaimsRef::Many(list) => list,
        };
        if let [only] = list {
            // One claim: it wins (superseding and dropping need two).
            return Some(only.rec.clone());
        }
        let claims: Vec<Claim> = list.iter().map(|s| s.rec.to_claim()).collect();
        let refs: Vec<&Claim> = claims.iter().collect();
        rank::winner(&refs, self.cfg.rank.as_ref()).map(|i| list[i].rec.clone())
    }

    /// The claim of `pid` on `name`, if any.
    pub(super) fn claim_of(&self, name: &str, pid: &Pid) -> Option<&SharedClaim> {
        self.claims.get(name)?.recs().find(|r| r.is(pid))
    }
}

impl Names {
    /// Publishes the change of `name`'s entry from `before`, with events.
    fn changed(
        &mut self,
        i: usize,
        name: &str,
        before: Option<SharedClaim>,
        reason: UnregisterReason,
        ctx: &mut Ctx<'_>,
    ) {
        let after = self.tables[i].view(name);
        self.publish(i, name, before, after, reason, ctx);
    }

    /// Publishes the change of `name`'s entry from `before` to `after`.
    fn publish(
        &mut self,
        i: usize,
        name: &str,
        before: Option<SharedClaim>,
        after: Option<SharedClaim>,
        reason: UnregisterReason,
        ctx: &mut Ctx<'_>,
    ) {
        match (&before, &after) {
            (None, None) => return,
            (Some(b), Some(a)) if b.same_entry(a) => return,
            _ => {}
        }
        // The name as stored: no copy of its own (inline or shared).
        let key = match (&after, &before) {
            (Some(r), _) | (None, Some(r)) => r.key().clone(),
            (None, None) => return,
        };
        ctx.push(Effect::Names(NamesEffect::View {
            table: i,
            name: key,
            entry: after.clone(),
        }));
        if !self.tables[i].watched {
            return;
        }
        if let Some(b) = &before {
            let pid = b.pid();
            if after.as_ref().map(|a| a.is(&pid)) != Some(true) {
                ctx.push(Effect::Names(NamesEffect::Event {
                    table: i,
                    event: NameEvent::Unregistered {
                        name: name.to_string(),
                        pid,
                        reason,
                    },
                }));
            }
        }
        if let Some(a) = after {
            ctx.push(Effect::Names(NamesEffect::Event {
                table: i,
                event: NameEvent::Registered {
                    name: name.to_string(),
                    pid: a.pid(),
                    meta: a.meta(),
                },
            }));
        }
    }

    /// Stores a claim (replacing an earlier one of the same pid and name),
    /// then settles a clash if there is one. Returns the stored claim.
    pub(super) fn add_claim(&mut self, i: usize, claim: Claim, ctx: &mut Ctx<'_>) -> SharedClaim {
        let rec = self.stored(claim, ctx);
        self.add_stored(i, rec.clone(), ctx);
        rec
    }

    /// `claim` in its stored form.
    pub(super) fn stored(&mut self, claim: Claim, ctx: &Ctx<'_>) -> SharedClaim {
        let origin = self.origin(claim.pid.node(), claim.pid.creation(), ctx);
        SharedClaim::new(StoredClaim::new(&claim, origin))
    }

    /// Stores a claim (see [`Names::add_claim`]).
    pub(super) fn add_stored(&mut self, i: usize, rec: SharedClaim, ctx: &mut Ctx<'_>) {
        let t = &mut self.tables[i];
        if t.claims.insert_first(&rec) {
            // The common case, a free name: the claim is the entry.
            let after = Some(rec.clone());
            self.publish(i, rec.name(), None, after, UnregisterReason::Conflict, ctx);
            return;
        }
        let before = t.view(rec.name());
        let reason = match &before {
            Some(p) if rec.supersedes().is_some() && p.same_line(&rec) => {
                UnregisterReason::Replaced
            }
            _ => UnregisterReason::Conflict,
        };
        let claims = match t.claims.take(rec.name()) {
            None => NameClaims::One(rec.clone()),
            Some(NameClaims::One(old)) if old.same_claimant(&rec) => NameClaims::One(rec.clone()),
            Some(old) => {
                let mut list = old.into_list();
                list.retain(|s| !s.rec.same_claimant(&rec));
                list.push(Stored { rec: rec.clone() });
                NameClaims::from_list(list).expect("not empty")
            }
        };
        t.claims.insert(claims);
        let name = rec.name();
        self.changed(i, name, before, reason, ctx);
        self.settle(i, name, ctx);
    }

    /// Forgets the claim of `pid` on `name` (of stamp `stamp` if given).
    pub(super) fn remove_claim(
        &mut self,
        i: usize,
        name: &str,
        pid: &Pid,
        stamp: Option<u64>,
        reason: UnregisterReason,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let t = &mut self.tables[i];
        let before = t.view(name);
        let Some(taken) = t.claims.take(name) else {
            return false;
        };
        let mut list = taken.into_list();
        let n = list.len();
        list.retain(|s| !(s.rec.is(pid) && stamp.is_none_or(|st| st == s.rec.stamp())));
        let removed = list.len() != n;
        if let Some(claims) = NameClaims::from_list(list) {
            t.claims.insert(claims);
        }
        let local = pid.node() == ctx.me() && pid.creation() == ctx.creation();
        if removed && local {
            t.local.remove(pid.serial(), name);
        }
        self.changed(i, name, before, reason, ctx);
        if removed {
            self.settle(i, name, ctx);
        }
        removed
    }

    /// Drops every claim whose origin is `node`. A name whose only claim
    /// is `node`'s (nearly all of them) goes in one step, without copies;
    /// a name with several claims takes the general path (its view may
    /// move to another claim, and a clash may need settling).
    pub(super) fn drop_origin(&mut self, i: usize, node: &NodeName, ctx: &mut Ctx<'_>) {
        enum Gone {
            Only(SharedClaim),
            Among(String, Pid),
        }
        let gone: Vec<Gone> = self.tables[i]
            .claims
            .iter()
            .flat_map(|claims| {
                let only = matches!(claims, NameClaimsRef::One(_));
                claims.recs().filter(|r| r.node() == node).map(move |r| {
                    if only {
                        Gone::Only(r.clone())
                    } else {
                        Gone::Among(r.name().to_string(), r.pid())
                    }
                })
            })
            .collect();
        for g in gone {
            match g {
                Gone::Only(rec) => {
                    self.tables[i].claims.take(rec.name());
                    self.publish(
                        i,
                        rec.name(),
                        Some(rec.clone()),
                        None,
                        UnregisterReason::NodeDown,
                        ctx,
                    );
                }
                Gone::Among(name, pid) => {
                    self.remove_claim(i, &name, &pid, None, UnregisterReason::NodeDown, ctx);
                }
            }
        }
    }

    /// Makes a claim of a local pid and sends it to every member: a
    /// `Commit` to those in `staged` (they hold it staged under its name
    /// lock), the whole claim (`Add`) to the others. With `defer`, the
    /// `Add` waits in the outbox to go out with the next claims.
    pub(super) fn add_local(
        &mut self,
        i: usize,
        claim: Claim,
        staged: &BTreeSet<NodeName>,
        defer: bool,
        ctx: &mut Ctx<'_>,
    ) {
        if !defer {
            self.flush(ctx);
        }
        self.seq += 1;
        let seq = self.seq;
        let origin = self.origin(claim.pid.node(), claim.pid.creation(), ctx);
        let rec = SharedClaim::new(StoredClaim::new(&claim, origin));
        self.tables[i].local.insert(claim.pid.serial(), &rec);
        // A node without members has nobody to send the claim to.
        let alone = !ctx.eligible.iter().any(|n| ctx.peer_creation(n).is_some());
        if defer && !alone {
            let n = claim_size(&claim);
            if self.outbox.as_ref().is_some_and(|(t, _, _)| *t != i)
                || (self.outbox.is_some() && self.outbox_bytes + n > self.chunk)
            {
                self.flush(ctx);
            }
            if self.outbox.is_none() {
                self.outbox_bytes = 0;
            }
            self.outbox_bytes += n;
            let (_, claims, _) = self.outbox.get_or_insert_with(|| (i, Vec::new(), seq));
            claims.push(OwnClaim::of(&claim));
            if claims.len() >= MAX_BATCH {
                self.flush(ctx);
            }
            return self.add_stored(i, rec, ctx);
        }
        let table = self.tables[i].cfg.name.clone();
        let members = self.members(ctx);
        // One frame of each kind for every member, encoded once by the driver.
        if members.iter().any(|m| staged.contains(m)) {
            let frame = NamesFrame::Commit {
                table: table.clone(),
                name: claim.name.clone(),
                stamp: claim.stamp,
                seq,
            };
            ctx.broadcast(
                members.iter().filter(|m| staged.contains(*m)),
                Frame::Names(frame),
            );
        }
        if members.iter().any(|m| !staged.contains(m)) {
            let frame = NamesFrame::Add {
                table,
                claims: vec![OwnClaim::of(&claim)],
                seq,
                ack: None,
            };
            ctx.broadcast(
                members.iter().filter(|m| !staged.contains(*m)),
                Frame::Names(frame),
            );
        }
        self.add_stored(i, rec, ctx);
    }

    /// Whether eventual claims wait to go out (see [`Names::flush`]).
    pub fn holds(&self) -> bool {
        self.outbox.is_some()
    }

    /// Sends the eventual claims made since the last frame to every member,
    /// as one `Add`: a burst of registrations costs one frame per batch.
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        let Some((i, claims, seq)) = self.outbox.take() else {
            return;
        };
        let frame = NamesFrame::Add {
            table: self.tables[i].cfg.name.clone(),
            claims,
            seq,
            ack: None,
        };
        // Members that came up since got these claims in their snapshot.
        let members = self.members(ctx);
        ctx.broadcast(&members, Frame::Names(frame));
    }
}

impl Holds for Names {
    fn holds(&self) -> bool {
        Names::holds(self)
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        Names::flush(self, ctx);
    }
}

impl Names {
    /// Retracts the claim of local `pid` on `name` everywhere; returns the
    /// members asked to ack when `ack` is set.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn retract(
        &mut self,
        i: usize,
        name: &str,
        pid: &Pid,
        reason: UnregisterReason,
        wire: WireReason,
        ack: Option<u64>,
        ctx: &mut Ctx<'_>,
    ) -> BTreeSet<NodeName> {
        let Some(stamp) = self.tables[i].claim_of(name, pid).map(|c| c.stamp()) else {
            return BTreeSet::new();
        };
        // The stream stays in order: claims waiting to go out go first.
        self.flush(ctx);
        let members = self.members(ctx);
        let table = self.tables[i].cfg.name.clone();
        self.seq += 1;
        let seq = self.seq;
        for m in &members {
            let frame = NamesFrame::Remove {
                seq,
                table: table.clone(),
                name: name.to_string(),
                pid: pid.clone(),
                stamp,
                reason: wire.clone(),
                ack,
            };
            self.send(m, frame, ctx);
        }
        self.remove_claim(i, name, pid, Some(stamp), reason, ctx);
        if ack.is_some() {
            members.into_iter().collect()
        } else {
            BTreeSet::new()
        }
    }

    /// Unregisters `name` if a local pid holds it; returns the members
    /// asked to ack, or `None` when no local pid holds it.
    pub(super) fn unregister_local(
        &mut self,
        i: usize,
        name: &str,
        ack: Option<u64>,
        ctx: &mut Ctx<'_>,
    ) -> Option<BTreeSet<NodeName>> {
        let me = ctx.me().clone();
        let pid = self.tables[i]
            .claims
            .get(name)?
            .recs()
            .find(|r| r.node() == &me)?
            .pid();
        Some(self.retract(
            i,
            name,
            &pid,
            UnregisterReason::Unregistered,
            WireReason::Unregistered,
            ack,
            ctx,
        ))
    }

    /// Settles a clash on `name`: the losers' own node retracts them
    /// (the retraction carries the winner and the action, so every node
    /// that held a losing claim reports the clash where it applies that
    /// retraction, in the loser's node's order) and applies their policy.
    /// Nodes that merely hold both claims report nothing yet: the loser's
    /// node decides, with the claims it holds then.
    pub(super) fn settle(&mut self, i: usize, name: &str, ctx: &mut Ctx<'_>) {
        let t = &mut self.tables[i];
        // The common case, one claim: nothing to settle.
        let list = match t.claims.get(name) {
            Some(NameClaimsRef::Many(l)) if l.len() >= 2 => l,
            _ => return,
        };
        let me = ctx.me().clone();
        // Only the losers' own node acts: nothing to do without a local claim.
        if !list.iter().any(|s| s.rec.node() == &me) {
            return;
        }
        let claims: Vec<Claim> = list.iter().map(|s| s.rec.to_claim()).collect();
        let refs: Vec<&Claim> = claims.iter().collect();
        let win = rank::winner(&refs, t.cfg.rank.as_ref());
        let winner = win.map(|w| refs[w].pid.clone());
        let mut acts = Vec::new();
        for (k, s) in list.iter().enumerate() {
            if Some(k) == win || s.rec.node() != &me {
                continue;
            }
            let action = if rank::superseded(refs[k], refs.iter().copied()) {
                None
            } else if win.is_none() {
                Some(LossPolicy::DropBoth)
            } else {
                Some(claims[k].policy)
            };
            acts.push((s.rec.pid(), action));
        }
        let table = t.cfg.name.clone();
        for (pid, action) in acts {
            let (reason, wire) = match action {
                None => (UnregisterReason::Replaced, WireReason::Replaced),
                Some(action) => (
                    UnregisterReason::Conflict,
                    WireReason::Conflict {
                        winner: winner.clone(),
                        action,
                    },
                ),
            };
            if let (Some(action), Some(c)) = (action, self.tables[i].claim_of(name, &pid)) {
                let lost = LostClaim {
                    name: name.to_string(),
                    pid: pid.clone(),
                    stamp: c.stamp(),
                    winner: winner.clone(),
                    action,
                };
                self.remember_lost(i, lost);
            }
            self.retract(i, name, &pid, reason, wire, None, ctx);
            if let Some(action) = action {
                self.resolved(i, name, winner.clone(), pid.clone(), action, ctx);
            }
            match action {
                Some(LossPolicy::Kill) => ctx.defer(Deferred::Kill(
                    pid,
                    ExitReason::Killed(format!("name conflict: {name}")),
                )),
                Some(LossPolicy::Notify | LossPolicy::DropBoth) if ctx.is_local_alive(&pid) => {
                    ctx.push(Effect::Deliver {
                        to: pid.serial(),
                        msg: Message::NameConflict {
                            table: table.clone(),
                            name: name.to_string(),
                            winner: winner.clone(),
                        },
                    });
                }
                _ => {}
            }
        }
    }

    /// Keeps `lost` among the recent losses of local claims that go with
    /// this node's snapshots (the oldest goes past [`MAX_LOST`]).
    fn remember_lost(&mut self, i: usize, lost: LostClaim) {
        if self.lost.len() >= MAX_LOST {
            self.lost.pop_front();
        }
        self.lost.push_back((i, lost));
    }

    /// Reports that `loser`'s claim on `name` lost a clash to `winner`.
    pub(super) fn resolved(
        &mut self,
        i: usize,
        name: &str,
        winner: Option<Pid>,
        loser: Pid,
        action: LossPolicy,
        ctx: &mut Ctx<'_>,
    ) {
        if self.tables[i].watched {
            ctx.push(Effect::Names(NamesEffect::Event {
                table: i,
                event: NameEvent::ConflictResolved {
                    name: name.to_string(),
                    winner,
                    loser,
                    action,
                },
            }));
        }
    }
}
