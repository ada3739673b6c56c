//! Names in the simulation: the operations the workload calls (register,
//! re_register, unregister, set_lock, del_lock) and the bookkeeping the
//! name invariants read: operations in flight, acknowledged locked
//! registrations with what the other nodes showed then (`locked_once`,
//! `locked_held`), legitimate retractions, the last touch of each name and
//! the rank winner of every clash seen (`names_unique`).

use std::collections::BTreeMap;

use bytes::Bytes;
use cohort_proto::names::{
    rank, Claim, LockId, NameEvent, NamesEffect, NamesError, NamesFrame, Outcome, RegisterArgs,
    UnregisterReason,
};
use cohort_proto::pid::Pid;
use cohort_proto::proto::Frame;

use super::Sim;
use crate::ledger::{ClashReport, LockedAck, NameOp, Rival, Witness};
use crate::net::NodeIdx;
use crate::registry::TABLES;

impl Sim {
    /// The workload touched `table`/`name` now.
    fn touch(&mut self, table: &str, name: &str) {
        let now = self.now();
        self.ledger
            .reg
            .name_touched
            .insert((table.to_string(), name.to_string()), now);
    }

    /// A frame is about to be handed to its receiver's core. An
    /// `unregister` of a name held on another node is carried out when its
    /// `Unregister` frame reaches the holder's node, which may be long
    /// after the caller was answered (its ack wait times out after 3 s,
    /// and a partition holds the frame until it heals): the workload
    /// touches the name again then.
    pub(super) fn frame_arrived(&mut self, frame: &Frame) {
        if let Frame::Names(NamesFrame::Unregister { table, name, .. }) = frame {
            self.touch(table, name);
        }
    }

    /// Node `i` registers local `serial` as `name` in `table`.
    pub fn name_register(
        &mut self,
        i: NodeIdx,
        table: &str,
        name: &str,
        serial: u64,
        replace: bool,
    ) {
        let op = self.bump_req(i);
        let pid = self.nodes[i].pid(serial);
        let creation = self.nodes[i].creation;
        self.trace.event(
            self.now(),
            format_args!(
                "op n{i}.{creation} {} {table}/{name} {pid} op={op}",
                if replace { "re_register" } else { "register" }
            ),
        );
        self.touch(table, name);
        let now = self.now();
        self.ledger.reg.name_ops.insert(
            (i, creation, op),
            NameOp {
                table: table.to_string(),
                name: name.to_string(),
                pid: Some(pid.clone()),
                replace,
                started: now,
                target: None,
            },
        );
        let args = RegisterArgs {
            table: table.to_string(),
            name: name.to_string(),
            pid,
            meta: Bytes::new(),
            policy: None,
            replace,
        };
        let mut out = None;
        self.input(i, |c, now| out = Some(c.names_register(now, op, args)));
        if let Some(Outcome::Done(r)) = out {
            self.name_reply(i, op, r);
        }
    }

    /// Node `i` unregisters `name` in `table`.
    pub fn name_unregister(&mut self, i: NodeIdx, table: &str, name: &str) {
        let op = self.bump_req(i);
        let creation = self.nodes[i].creation;
        self.trace.event(
            self.now(),
            format_args!("op n{i}.{creation} unregister {table}/{name} op={op}"),
        );
        self.touch(table, name);
        let now = self.now();
        let target = self.nodes[i].core().and_then(|c| {
            let names = c.names();
            let holder = names.whereis(table, name)?;
            let claim = names.claims_of(table, name);
            let c = claim.iter().find(|c| c.pid == holder)?;
            Some((holder, c.stamp))
        });
        self.ledger.reg.name_ops.insert(
            (i, creation, op),
            NameOp {
                table: table.to_string(),
                name: name.to_string(),
                pid: None,
                replace: false,
                started: now,
                target,
            },
        );
        let mut out = None;
        self.input(i, |c, now| {
            out = Some(c.names_unregister(now, op, table, name))
        });
        if let Some(Outcome::Done(r)) = out {
            self.name_reply(i, op, r);
        }
    }

    /// Local `serial` of node `i` takes the lock `res` on every member.
    pub fn name_lock(&mut self, i: NodeIdx, res: &str, serial: u64) {
        let op = self.bump_req(i);
        let pid = self.nodes[i].pid(serial);
        self.trace
            .event(self.now(), format_args!("op set_lock {res} {pid} op={op}"));
        let lock = LockId::new(res, pid.to_string());
        self.input(i, |c, now| {
            c.names_set_lock(now, op, lock, &pid, None, Some(2));
        });
        self.count("names: set_lock");
    }

    /// Local `serial` of node `i` releases the lock `res`.
    pub fn name_unlock(&mut self, i: NodeIdx, res: &str, serial: u64) {
        let pid = self.nodes[i].pid(serial);
        self.trace
            .event(self.now(), format_args!("op del_lock {res} {pid}"));
        let lock = LockId::new(res, pid.to_string());
        self.input(i, |c, now| c.names_del_lock(now, lock, &pid, None));
        self.count("names: del_lock");
    }

    /// Records the answer to name operation `op` of node `i`; an
    /// acknowledged locked registration goes to the ledger with what the
    /// other nodes show at this moment.
    fn name_reply(&mut self, i: NodeIdx, op: u64, result: Result<bool, NamesError>) {
        let creation = self.nodes[i].creation;
        let Some(o) = self.ledger.reg.name_ops.remove(&(i, creation, op)) else {
            return;
        };
        let kind = match (&o.pid, o.replace) {
            (None, _) => "unregister",
            (Some(_), false) => "register",
            (Some(_), true) => "re_register",
        };
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        *self
            .ledger
            .reg
            .name_results
            .entry(format!("{}/{kind}: {outcome}", o.table))
            .or_default() += 1;
        self.touch(&o.table, &o.name);
        if let (None, Ok(true), Some((holder, stamp))) = (&o.pid, &result, &o.target) {
            let still = self.index_of(holder.node()).and_then(|h| {
                let n = &self.nodes[h];
                let core = n.core().filter(|_| n.creation == holder.creation())?;
                let claims = core.names().claims_of(&o.table, &o.name);
                claims
                    .iter()
                    .any(|c| c.pid == *holder && c.stamp == *stamp)
                    .then_some(h)
            });
            if let Some(h) = still {
                let msg = format!(
                    "n{i} was told its unregister of {}/{} (op {op}) was applied, but n{h} still holds the claim of {holder} (stamp {stamp})",
                    o.table, o.name
                );
                self.ledger.reg.unapplied.push(msg);
            }
        }
        let (Some(pid), Ok(true)) = (o.pid.clone(), result) else {
            return;
        };
        if o.table != TABLES[0] {
            return;
        }
        let now = self.now();
        if o.replace {
            let others: Vec<Pid> = self
                .ledger
                .reg
                .locked_acks
                .iter()
                .filter(|a| a.table == o.table && a.name == o.name && a.pid != pid)
                .map(|a| a.pid.clone())
                .collect();
            for q in others {
                self.ledger
                    .reg
                    .retracted
                    .insert((o.table.clone(), o.name.clone(), q), now);
            }
        }
        let witnesses = self.witnesses(i, &o.table, &o.name, &pid);
        let reg = &self.ledger.reg;
        let rivals = reg
            .locked_acks
            .iter()
            .filter(|a| a.table == o.table && a.name == o.name && a.pid != pid)
            .filter(|a| self.ledger.is_alive(&a.pid))
            .filter(|a| {
                let key = (a.table.clone(), a.name.clone(), a.pid.clone());
                reg.retracted.get(&key).is_none_or(|&t| t < a.started)
            })
            .map(|a| Rival {
                pid: a.pid.clone(),
                node: a.node,
                acked: a.acked,
            })
            .collect();
        self.ledger.reg.locked_acks.push(LockedAck {
            table: o.table,
            name: o.name,
            pid,
            node: i,
            replace: o.replace,
            started: o.started,
            acked: now,
            witnesses,
            rivals,
        });
    }

    /// What every other node of node `i`'s global group that is synced
    /// with it both ways shows now of `pid`'s claim on `table`/`name`.
    fn witnesses(&self, i: NodeIdx, table: &str, name: &str, pid: &Pid) -> Vec<Witness> {
        let synced = &self.ledger.reg.synced;
        (0..self.nodes.len())
            .filter(|&j| j != i && self.same_group(i, j))
            .filter_map(|j| {
                let s1 = synced.get(&(i, j)).copied()?;
                let s2 = synced.get(&(j, i)).copied()?;
                let peer = &self.nodes[j].name;
                let session_up = self.nodes[i]
                    .core()
                    .and_then(|c| c.cluster().peer_creation(peer))
                    == Some(self.nodes[j].creation);
                let holds = self.nodes[j].core().map(|core| {
                    let names = core.names();
                    names.claims_of(table, name).iter().any(|c| c.pid == *pid)
                        || names.staged(table, name).is_some_and(|c| c.pid == *pid)
                });
                Some(Witness {
                    node: j,
                    synced_since: (s1, s2),
                    session_up,
                    holds,
                })
            })
            .collect()
    }

    /// Records a name-service effect of node `i`: replies, retractions at
    /// the origin, names leaving a holder's view.
    pub(super) fn names_effect(&mut self, i: NodeIdx, effect: NamesEffect) {
        match effect {
            NamesEffect::Reply { op, result } => self.name_reply(i, op, result),
            NamesEffect::Event { table, event } => {
                let table = TABLES.get(table).copied().unwrap_or("?");
                match event {
                    NameEvent::Unregistered { name, pid, reason } => {
                        if pid.node() == &self.nodes[i].name
                            && matches!(
                                reason,
                                UnregisterReason::Unregistered
                                    | UnregisterReason::Exited(_)
                                    | UnregisterReason::Replaced
                            )
                        {
                            let now = self.now();
                            if reason == UnregisterReason::Unregistered {
                                // A locked unregister is applied once the
                                // holder has the name lock, which a
                                // partition may hold up past the heal: the
                                // name is touched when it is applied.
                                self.touch(table, &name);
                            }
                            self.ledger
                                .reg
                                .retracted
                                .insert((table.to_string(), name, pid), now);
                        }
                    }
                    NameEvent::ConflictResolved {
                        name,
                        winner,
                        loser,
                        action,
                    } => {
                        self.count("names: conflict resolved");
                        let report = ClashReport {
                            node: i,
                            creation: self.nodes[i].creation,
                            at: self.now(),
                            table: table.to_string(),
                            name,
                            winner,
                            loser,
                            action,
                        };
                        self.trace.event(
                            report.at,
                            format_args!(
                                "n{i}.{} conflict {}/{} loser {} winner {:?} {:?}",
                                report.creation,
                                report.table,
                                report.name,
                                report.loser,
                                report.winner,
                                report.action
                            ),
                        );
                        self.ledger.reg.clash_reports.push(report);
                    }
                    NameEvent::Registered { .. } => {}
                    other => unreachable!("a new name event, check it: {other:?}"),
                }
            }
            NamesEffect::View {
                table,
                name,
                entry: None,
            } => {
                // The name left the view of a holder's origin: unregistered
                // (a clash would show the winner instead).
                let table = TABLES.get(table).copied().unwrap_or("?");
                let me = self.nodes[i].name.clone();
                let now = self.now();
                let gone: Vec<Pid> = self
                    .ledger
                    .reg
                    .locked_acks
                    .iter()
                    .filter(|a| a.table == table && a.name == name && a.pid.node() == &me)
                    .map(|a| a.pid.clone())
                    .chain(
                        // Registrations not yet acknowledged count too: an
                        // unregister may overtake the last ack.
                        self.ledger
                            .reg
                            .name_ops
                            .iter()
                            .filter(|((n, _, _), o)| *n == i && o.table == table && o.name == name)
                            .filter_map(|(_, o)| o.pid.clone()),
                    )
                    .collect();
                for pid in gone {
                    self.ledger
                        .reg
                        .retracted
                        .insert((table.to_string(), name.to_string(), pid), now);
                }
            }
            NamesEffect::View { .. } => {}
        }
    }

    /// Records, per global group, table and name, the rank winner among
    /// the claims their origins hold when two or more are held at once.
    pub(crate) fn record_clashes(&mut self) {
        let now = self.now();
        let mut found = Vec::new();
        for table in TABLES {
            let mut held: BTreeMap<(usize, String), Vec<Claim>> = BTreeMap::new();
            for (b, node) in self.nodes.iter().enumerate() {
                let Some(core) = node.core() else { continue };
                for c in core.names().claims(table) {
                    if c.pid.node() == &node.name && self.ledger.is_alive(&c.pid) {
                        held.entry((self.group_of(b), c.name.clone()))
                            .or_default()
                            .push(c);
                    }
                }
            }
            for ((g, name), claims) in held {
                if claims.len() < 2 {
                    continue;
                }
                let refs: Vec<&Claim> = claims.iter().collect();
                if let Some(w) = rank::winner(&refs, None) {
                    found.push(((g, table.to_string(), name), (now, claims[w].pid.clone())));
                }
            }
        }
        if !found.is_empty() {
            self.count("names: clash seen");
        }
        self.ledger.reg.clashes.extend(found);
    }
}
