//! Claims, the visible view, and clash settlement.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::super::ctx::{Ctx, Deferred};
use super::super::pid::{ExitReason, NodeName, Pid};
use super::super::process::Message;
use super::super::Effect;
use super::{
    rank, Claim, LossPolicy, NameEvent, Names, NamesEffect, NamesFrame, Stored, Table,
    UnregisterReason, WireReason,
};

impl Table {
    /// The visible entry of `name`: the winner among its claims.
    pub(super) fn view(&self, name: &str) -> Option<(Pid, Bytes)> {
        let list = self.claims.get(name)?;
        if let [only] = list.as_slice() {
            // One claim: it wins (superseding and dropping need two).
            return Some((only.claim.pid.clone(), only.claim.meta.clone()));
        }
        let refs: Vec<&Claim> = list.iter().map(|s| &s.claim).collect();
        rank::winner(&refs, self.cfg.rank.as_ref())
            .map(|i| (refs[i].pid.clone(), refs[i].meta.clone()))
    }

    /// The claim of `pid` on `name`, if any.
    pub(super) fn claim_of(&self, name: &str, pid: &Pid) -> Option<&Claim> {
        self.claims
            .get(name)?
            .iter()
            .find(|s| &s.claim.pid == pid)
            .map(|s| &s.claim)
    }
}

impl Names {
    /// Publishes the change of `name`'s entry from `before`, with events.
    fn changed(
        &mut self,
        i: usize,
        name: &str,
        before: Option<(Pid, Bytes)>,
        reason: UnregisterReason,
        ctx: &mut Ctx<'_>,
    ) {
        let after = self.tables[i].view(name);
        if before == after {
            return;
        }
        ctx.push(Effect::Names(NamesEffect::View {
            table: i,
            name: name.to_string(),
            entry: after.clone(),
        }));
        if !self.tables[i].watched {
            return;
        }
        if let Some((pid, _)) = &before {
            if after.as_ref().map(|a| &a.0) != Some(pid) {
                ctx.push(Effect::Names(NamesEffect::Event {
                    table: i,
                    event: NameEvent::Unregistered {
                        name: name.to_string(),
                        pid: pid.clone(),
                        reason,
                    },
                }));
            }
        }
        if let Some((pid, meta)) = after {
            ctx.push(Effect::Names(NamesEffect::Event {
                table: i,
                event: NameEvent::Registered {
                    name: name.to_string(),
                    pid,
                    meta,
                },
            }));
        }
    }

    /// Stores a claim (replacing an earlier one of the same pid and name),
    /// then settles a clash if there is one.
    pub(super) fn add_claim(&mut self, i: usize, claim: Claim, ctx: &mut Ctx<'_>) {
        let name = claim.name.clone();
        let t = &mut self.tables[i];
        let before = t.view(&name);
        let reason = match (&before, &claim.supersedes) {
            (Some((p, _)), Some((sp, _))) if p == sp => UnregisterReason::Replaced,
            _ => UnregisterReason::Conflict,
        };
        let list = t.claims.entry(name.clone()).or_default();
        list.retain(|s| s.claim.pid != claim.pid);
        list.push(Stored {
            claim,
            reported: false,
        });
        self.changed(i, &name, before, reason, ctx);
        self.settle(i, &name, ctx);
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
        let Some(list) = t.claims.get_mut(name) else {
            return false;
        };
        let n = list.len();
        list.retain(|s| !(&s.claim.pid == pid && stamp.is_none_or(|st| st == s.claim.stamp)));
        let removed = list.len() != n;
        if list.is_empty() {
            t.claims.remove(name);
        }
        if let Some(names) = t.local.get_mut(pid) {
            if removed {
                names.remove(name);
            }
            if names.is_empty() {
                t.local.remove(pid);
            }
        }
        self.changed(i, name, before, reason, ctx);
        if removed {
            self.settle(i, name, ctx);
        }
        removed
    }

    /// Drops every claim whose origin is `node`.
    pub(super) fn drop_origin(&mut self, i: usize, node: &NodeName, ctx: &mut Ctx<'_>) {
        let gone: Vec<(String, Pid)> = self.tables[i]
            .claims
            .iter()
            .flat_map(|(n, list)| {
                list.iter()
                    .filter(|s| s.claim.pid.node() == node)
                    .map(move |s| (n.clone(), s.claim.pid.clone()))
            })
            .collect();
        for (name, pid) in gone {
            self.remove_claim(i, &name, &pid, None, UnregisterReason::NodeDown, ctx);
        }
    }

    /// Makes a claim of a local pid and sends it to every member; returns
    /// the members asked to ack when `ack` is set.
    pub(super) fn add_local(
        &mut self,
        i: usize,
        claim: Claim,
        ack: Option<u64>,
        ctx: &mut Ctx<'_>,
    ) -> BTreeSet<NodeName> {
        let members = self.members(ctx);
        let table = self.tables[i].cfg.name.clone();
        self.seq += 1;
        let seq = self.seq;
        for m in &members {
            let frame = NamesFrame::Add {
                table: table.clone(),
                claim: claim.clone(),
                seq,
                ack,
            };
            self.send(m, frame, ctx);
        }
        self.tables[i]
            .local
            .entry(claim.pid.clone())
            .or_default()
            .insert(claim.name.clone());
        self.add_claim(i, claim, ctx);
        if ack.is_some() {
            members.into_iter().collect()
        } else {
            BTreeSet::new()
        }
    }

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
        let Some(stamp) = self.tables[i].claim_of(name, pid).map(|c| c.stamp) else {
            return BTreeSet::new();
        };
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
            .iter()
            .find(|s| s.claim.pid.node() == &me)?
            .claim
            .pid
            .clone();
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

    /// Settles a clash on `name`: every node reports it, the losers' own
    /// node retracts them and applies their policy.
    pub(super) fn settle(&mut self, i: usize, name: &str, ctx: &mut Ctx<'_>) {
        let t = &mut self.tables[i];
        let Some(list) = t.claims.get_mut(name) else {
            return;
        };
        if list.len() < 2 {
            return;
        }
        let refs: Vec<&Claim> = list.iter().map(|s| &s.claim).collect();
        let win = rank::winner(&refs, t.cfg.rank.as_ref());
        let drop_all = win.is_none();
        let winner = win.map(|w| refs[w].pid.clone());
        let superseded: Vec<bool> = refs
            .iter()
            .map(|c| rank::superseded(c, refs.iter().copied()))
            .collect();
        let me = ctx.me().clone();
        let mut acts = Vec::new();
        for (k, s) in list.iter_mut().enumerate() {
            if Some(k) == win {
                continue;
            }
            let local = s.claim.pid.node() == &me;
            if superseded[k] {
                if local {
                    acts.push((s.claim.pid.clone(), None));
                }
                continue;
            }
            let action = if drop_all {
                LossPolicy::DropBoth
            } else {
                s.claim.policy
            };
            let first = !s.reported;
            s.reported = true;
            if first && t.watched {
                ctx.push(Effect::Names(NamesEffect::Event {
                    table: i,
                    event: NameEvent::ConflictResolved {
                        name: name.to_string(),
                        winner: winner.clone(),
                        loser: s.claim.pid.clone(),
                        action,
                    },
                }));
            }
            if local {
                acts.push((s.claim.pid.clone(), Some(action)));
            }
        }
        let table = t.cfg.name.clone();
        for (pid, action) in acts {
            let (reason, wire) = match action {
                None => (UnregisterReason::Replaced, WireReason::Replaced),
                Some(_) => (UnregisterReason::Conflict, WireReason::Conflict),
            };
            self.retract(i, name, &pid, reason, wire, None, ctx);
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
}
