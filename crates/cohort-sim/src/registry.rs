//! Process groups, global names and global groups in the simulation: the
//! configuration every node starts with, the operations the workload calls,
//! and what the driver records from the cores' registry effects.
//!
//! - Scopes: `pg` runs on every node (the runtime starts it; the sim does
//!   it here), `s2` on nodes whose index is not 2 mod 3, so some nodes do
//!   not run it and must never see its members.
//! - Name tables: `locked` (the default table: [`Mode::Locked`], loser
//!   killed) and `eventual` ([`Mode::Eventual`], loser notified).
//! - Global groups (with [`SimConfig::groups`](crate::config::SimConfig)):
//!   `g1` (normal) holds the first half of the nodes, `g2` (hidden) the rest;
//!   with a [`Mismatch`], one node's definition deliberately differs.

use std::collections::BTreeMap;

use bytes::Bytes;
use cohort_proto::global_group::{
    Answer, GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsEffect, Publish, Query,
};
use cohort_proto::names::{
    rank, Claim, LockId, LossPolicy, Mode, NameEvent, NamesConfig, NamesEffect, NamesError,
    NamesFrame, Outcome, RegisterArgs, TableConfig, UnregisterReason,
};
use cohort_proto::pg::{PgEffect, PgEventKind};
use cohort_proto::pid::{NodeName, Pid};
use cohort_proto::proto::Frame;
use cohort_proto::Effect;

use crate::config::Mismatch;
use crate::ledger::{LockedAck, NameOp, PgMonRecord, PidCounts, Stray};
use crate::net::NodeIdx;
use crate::sim::Sim;

/// A saved piece of the membership model, to undo a refused operation.
type SavedPg = (
    Option<BTreeMap<String, BTreeMap<u64, u32>>>,
    Vec<((String, String, Pid), Option<Vec<u32>>)>,
);

/// The process-group scopes of the simulation.
pub const SCOPES: [&str; 2] = ["pg", "s2"];

/// The name tables: the default (locked) one first.
pub const TABLES: [&str; 2] = ["locked", "eventual"];

/// Group names the workload uses.
pub const GROUPS: [&str; 4] = ["ga", "gb", "gc", "gd"];

/// Names the workload registers (few, so they clash).
pub const NAMES: [&str; 6] = ["alpha", "beta", "gamma", "delta", "eps", "zeta"];

/// The name tables every node runs.
pub fn names_config() -> NamesConfig {
    NamesConfig::empty()
        .table(
            TableConfig::new(TABLES[0])
                .mode(Mode::Locked)
                .policy(LossPolicy::Kill),
        )
        .table(
            TableConfig::new(TABLES[1])
                .mode(Mode::Eventual)
                .policy(LossPolicy::Notify),
        )
}

/// Whether node `i` runs `scope`.
pub fn runs_scope(i: NodeIdx, scope: &str) -> bool {
    scope == SCOPES[0] || i % 3 != 2
}

/// The global-group configuration of each of `n` nodes: none without
/// `groups`; else `g1` (normal) with the first half, `g2` (hidden) with
/// the rest, changed for one node as `mismatch` (resolved: not `Seeded`)
/// says.
pub fn groups_configs(n: usize, groups: bool, mismatch: Mismatch) -> Vec<GlobalGroupsConfig> {
    if !groups {
        return vec![GlobalGroupsConfig::default(); n];
    }
    let name = |i: usize| NodeName::new(&format!("n{i}@sim")).expect("valid node name");
    let split = n.div_ceil(2);
    let base = |g1: Vec<usize>, g2: Vec<usize>| GlobalGroupsConfig {
        groups: vec![
            GlobalGroupDef::new("g1", Publish::Normal, g1.into_iter().map(name)),
            GlobalGroupDef::new("g2", Publish::Hidden, g2.into_iter().map(name)),
        ],
    };
    let mut out = vec![base((0..split).collect(), (split..n).collect()); n];
    match mismatch {
        Mismatch::Extra | Mismatch::Missing if n < 2 => {}
        Mismatch::Missing if n >= 3 => {
            out[0] = base(
                (0..split).filter(|&i| i != 1).collect(),
                (split..n).collect(),
            );
        }
        Mismatch::Extra | Mismatch::Missing => {
            let m = n - 1;
            out[m] = base(
                (0..split).chain([m]).collect(),
                (split..n).filter(|&i| i != m).collect(),
            );
        }
        Mismatch::None | Mismatch::Seeded => {}
    }
    out
}

impl Sim {
    /// The global-group configuration node `i` starts with (empty: none).
    pub fn groups_config(&self, i: NodeIdx) -> &GlobalGroupsConfig {
        &self.groups[i]
    }

    /// Starts the scopes node `i` runs.
    pub(crate) fn start_scopes(&mut self, i: NodeIdx) {
        for scope in SCOPES {
            if runs_scope(i, scope) {
                self.input(i, |c, now| {
                    c.pg_start_scope(scope, now);
                });
            }
        }
    }

    fn next_req(&mut self, i: NodeIdx) -> u64 {
        // Shares the counter with connects: ids are unique per incarnation.
        self.bump_req(i)
    }

    // ---- process groups ------------------------------------------------

    /// Local processes `serials` of node `i` join `group` in `scope`.
    pub fn pg_join(&mut self, i: NodeIdx, scope: &str, group: &str, serials: &[u64]) -> bool {
        let pids: Vec<Pid> = serials.iter().map(|&s| self.nodes[i].pid(s)).collect();
        let label = format!("n{i}.{}", self.nodes[i].creation);
        self.trace.event(
            self.now(),
            format_args!("op {label} pg-join {scope}/{group} {}", pids.len()),
        );
        // The model changes first: the core reports the join to local
        // monitors before it returns.
        let saved = self.save_pg(i, scope, group, &pids);
        let members = self
            .ledger
            .reg
            .pg_local
            .entry((i, scope.to_string()))
            .or_default()
            .entry(group.to_string())
            .or_default();
        let mut counts = Vec::new();
        for p in &pids {
            let c = members.entry(p.serial()).or_default();
            *c += 1;
            counts.push((p.clone(), *c));
        }
        for (p, c) in counts {
            self.ledger.reg.hist(scope, group, &p, c);
        }
        let mut result = None;
        let meta = Some(Bytes::from_static(b"m0"));
        self.input(i, |c, now| {
            result = Some(c.pg_join(scope, group, &pids, meta, now));
        });
        let ok = matches!(result, Some(Ok(())));
        self.count(if ok { "pg: join" } else { "pg: join refused" });
        if !ok {
            self.restore_pg(i, scope, group, saved);
        }
        ok
    }

    /// Local process `serial` of node `i` leaves `group` once.
    pub fn pg_leave(&mut self, i: NodeIdx, scope: &str, group: &str, serial: u64) -> bool {
        let pid = self.nodes[i].pid(serial);
        let label = format!("n{i}.{}", self.nodes[i].creation);
        self.trace.event(
            self.now(),
            format_args!("op {label} pg-leave {scope}/{group} {pid}"),
        );
        let saved = self.save_pg(i, scope, group, std::slice::from_ref(&pid));
        let groups = self
            .ledger
            .reg
            .pg_local
            .entry((i, scope.to_string()))
            .or_default();
        let mut now_count = 0;
        if let Some(members) = groups.get_mut(group) {
            if let Some(c) = members.get_mut(&serial) {
                *c -= 1;
                now_count = *c;
                if *c == 0 {
                    members.remove(&serial);
                }
            }
            if members.is_empty() {
                groups.remove(group);
            }
        }
        self.ledger.reg.hist(scope, group, &pid, now_count);
        let mut result = None;
        let p = pid.clone();
        self.input(i, |c, now| {
            result = Some(c.pg_leave(scope, group, &[p], now));
        });
        let ok = matches!(result, Some(Ok(())));
        self.count(if ok { "pg: leave" } else { "pg: leave refused" });
        if !ok {
            self.restore_pg(i, scope, group, saved);
        }
        ok
    }

    fn save_pg(&self, i: NodeIdx, scope: &str, group: &str, pids: &[Pid]) -> SavedPg {
        let local = self
            .ledger
            .reg
            .pg_local
            .get(&(i, scope.to_string()))
            .cloned();
        let hist = pids
            .iter()
            .map(|p| {
                let k = (scope.to_string(), group.to_string(), p.clone());
                let h = self.ledger.reg.pg_hist.get(&k).cloned();
                (k, h)
            })
            .collect();
        (local, hist)
    }

    fn restore_pg(&mut self, i: NodeIdx, scope: &str, _group: &str, saved: SavedPg) {
        let (local, hist) = saved;
        match local {
            Some(l) => {
                self.ledger.reg.pg_local.insert((i, scope.to_string()), l);
            }
            None => {
                self.ledger.reg.pg_local.remove(&(i, scope.to_string()));
            }
        }
        for (k, h) in hist {
            match h {
                Some(h) => {
                    self.ledger.reg.pg_hist.insert(k, h);
                }
                None => {
                    self.ledger.reg.pg_hist.remove(&k);
                }
            }
        }
    }

    /// Local process `serial` of node `i` updates its metadata in `group`.
    pub fn pg_meta(&mut self, i: NodeIdx, scope: &str, group: &str, serial: u64) {
        let pid = self.nodes[i].pid(serial);
        let tag = self.rng_u64() % 100;
        let meta = Some(Bytes::from(format!("m{tag}")));
        self.trace
            .event(self.now(), format_args!("op pg-meta {scope}/{group} {pid}"));
        let mut ok = false;
        self.input(i, |c, now| {
            ok = c.pg_update_meta(scope, group, &pid, meta, now).is_ok();
        });
        self.count(if ok { "pg: meta" } else { "pg: meta refused" });
    }

    /// Node `i` subscribes to `scope` (or one group of it).
    pub fn pg_monitor(&mut self, i: NodeIdx, scope: &str, group: Option<&str>) {
        let sub = self.next_req(i);
        let creation = self.nodes[i].creation;
        self.trace.event(
            self.now(),
            format_args!("op n{i}.{creation} pg-monitor {scope}/{group:?} sub={sub}"),
        );
        let mut snap = None;
        self.input(i, |c, _| {
            snap = Some(c.pg_monitor(scope, group, sub));
        });
        let Some(Ok(snap)) = snap else {
            return;
        };
        self.count("pg: monitor");
        let mut state: BTreeMap<String, PidCounts> = BTreeMap::new();
        let mut pos = BTreeMap::new();
        for (g, pids) in snap {
            let e = state.entry(g.to_string()).or_default();
            for p in pids {
                *e.entry(p).or_default() += 1;
            }
            for (p, &c) in e.iter() {
                let at = self.hist_index(scope, &g, p, c, 0);
                pos.insert((g.to_string(), p.clone()), at.unwrap_or(0));
            }
        }
        self.ledger.reg.pg_mons.insert(
            (i, creation, sub),
            PgMonRecord {
                node: i,
                creation,
                scope: scope.to_string(),
                group: group.map(str::to_string),
                state,
                pos,
                events: 0,
            },
        );
    }

    /// The first index at or after `from` where the origin's history of
    /// (scope, group, pid) reads `count`.
    fn hist_index(
        &self,
        scope: &str,
        group: &str,
        pid: &Pid,
        count: u32,
        from: usize,
    ) -> Option<usize> {
        let h =
            self.ledger
                .reg
                .pg_hist
                .get(&(scope.to_string(), group.to_string(), pid.clone()))?;
        (from..h.len()).find(|&k| h[k] == count)
    }

    fn pg_event(&mut self, i: NodeIdx, sub: u64, event: cohort_proto::pg::PgEvent) {
        let creation = self.nodes[i].creation;
        let key = (i, creation, sub);
        let Some(mut m) = self.ledger.reg.pg_mons.remove(&key) else {
            return;
        };
        m.events += 1;
        let group = event.group.to_string();
        let mut touched: BTreeMap<Pid, ()> = BTreeMap::new();
        let mut problems = Vec::new();
        match event.kind {
            PgEventKind::Join => {
                let st = m.state.entry(group.clone()).or_default();
                for p in &event.pids {
                    *st.entry(p.clone()).or_default() += 1;
                    touched.insert(p.clone(), ());
                }
            }
            PgEventKind::Leave => {
                let st = m.state.entry(group.clone()).or_default();
                for p in &event.pids {
                    match st.get_mut(p) {
                        Some(c) if *c > 0 => {
                            *c -= 1;
                            if *c == 0 {
                                st.remove(p);
                            }
                        }
                        _ => problems.push(format!(
                            "sub {sub} of n{i}.{creation} got a leave of {p} from {}/{group} it never saw join",
                            m.scope
                        )),
                    }
                    touched.insert(p.clone(), ());
                }
                if st.is_empty() {
                    m.state.remove(&group);
                }
            }
            PgEventKind::Meta => {
                let st = m.state.get(&group);
                for p in &event.pids {
                    if st.and_then(|s| s.get(p)).is_none_or(|&c| c == 0) {
                        problems.push(format!(
                            "sub {sub} of n{i}.{creation} got a meta update of {p} in {}/{group}, not a member",
                            m.scope
                        ));
                    }
                }
            }
        }
        // Origin order: every count the subscriber reaches must come at or
        // after its last position in the origin's history (a drop to zero
        // is a node going down, allowed at any point).
        for p in touched.keys() {
            let c = m
                .state
                .get(&group)
                .and_then(|s| s.get(p))
                .copied()
                .unwrap_or(0);
            let k = (group.clone(), p.clone());
            let from = m.pos.get(&k).copied().unwrap_or(0);
            match self.hist_index(&m.scope, &group, p, c, from) {
                Some(at) => {
                    m.pos.insert(k, at);
                }
                None if c == 0 => {}
                None => {
                    let h = self
                        .ledger
                        .reg
                        .pg_hist
                        .get(&(m.scope.clone(), group.clone(), p.clone()))
                        .cloned()
                        .unwrap_or_default();
                    problems.push(format!(
                        "sub {sub} of n{i}.{creation} saw {p} in {}/{group} {c} times, not in the origin's history {h:?} after position {from}",
                        m.scope
                    ));
                }
            }
        }
        let now = self.now();
        for what in problems {
            self.ledger.reg.pg_anomalies.push(Stray { at: now, what });
        }
        self.ledger.reg.pg_mons.insert(key, m);
    }

    // ---- names ---------------------------------------------------------

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
    pub(crate) fn frame_arrived(&mut self, frame: &Frame) {
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
        let op = self.next_req(i);
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
        let op = self.next_req(i);
        let creation = self.nodes[i].creation;
        self.trace.event(
            self.now(),
            format_args!("op n{i}.{creation} unregister {table}/{name} op={op}"),
        );
        self.touch(table, name);
        let now = self.now();
        self.ledger.reg.name_ops.insert(
            (i, creation, op),
            NameOp {
                table: table.to_string(),
                name: name.to_string(),
                pid: None,
                replace: false,
                started: now,
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
        let op = self.next_req(i);
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
        // A locked registration succeeded: every member synced with this
        // node (both ways) since before it started holds the claim, or has
        // it staged under the name lock until the commit arrives.
        for j in 0..self.nodes.len() {
            if j == i || !self.same_group(i, j) {
                continue;
            }
            let since = |x: NodeIdx, y: NodeIdx| self.ledger.reg.synced.get(&(x, y)).copied();
            let (Some(s1), Some(s2)) = (since(i, j), since(j, i)) else {
                continue;
            };
            let peer = self.nodes[j].name.clone();
            let still = self.nodes[i]
                .core()
                .and_then(|c| c.cluster().peer_creation(&peer))
                == Some(self.nodes[j].creation);
            if !still || s1 > o.started || s2 > o.started {
                continue;
            }
            let Some(core) = self.nodes[j].core() else {
                continue;
            };
            let names = core.names();
            let held = names
                .claims(&o.table)
                .iter()
                .any(|c| c.name == o.name && c.pid == pid)
                || names
                    .staged(&o.table, &o.name)
                    .is_some_and(|c| c.pid == pid);
            if !held {
                let what = format!(
                    "locked {}/{} acknowledged to {pid} on n{i} (started at {}us), but n{j} (synced since {}us/{}us) neither holds nor has staged it",
                    o.table, o.name, o.started.0, s1.0, s2.0
                );
                self.ledger.reg.locked_unheld.push(Stray { at: now, what });
            }
        }
        // No other acknowledged claim may have held the name on a node
        // synced with this one from before this registration started
        // until now.
        for a in &self.ledger.reg.locked_acks {
            if a.table != o.table || a.name != o.name || a.pid == pid || a.acked >= o.started {
                continue;
            }
            if !self.ledger.is_alive(&a.pid) {
                continue;
            }
            let key = (a.table.clone(), a.name.clone(), a.pid.clone());
            if self
                .ledger
                .reg
                .retracted
                .get(&key)
                .is_some_and(|&t| t >= a.started)
            {
                continue;
            }
            let j = a.node;
            if j == i || !self.same_group(i, j) {
                continue;
            }
            let since = |x: NodeIdx, y: NodeIdx| self.ledger.reg.synced.get(&(x, y)).copied();
            let (Some(s1), Some(s2)) = (since(i, j), since(j, i)) else {
                continue;
            };
            // The effects of one input are recorded in order, so the
            // session may already have ended in the core (a node leaving
            // mid-registration releases its part of the lock, as in OTP).
            let peer = self.nodes[j].name.clone();
            let still = self.nodes[i]
                .core()
                .and_then(|c| c.cluster().peer_creation(&peer))
                == Some(self.nodes[j].creation);
            if !still {
                continue;
            }
            if s1 <= o.started && s2 <= o.started && !o.replace {
                let what = format!(
                    "locked {}/{} acknowledged to {pid} on n{i} (started at {}us) while {} (acked at {}us on n{j}) held it; n{i} and n{j} synced since {}us/{}us",
                    o.table, o.name, o.started.0, a.pid, a.acked.0, s1.0, s2.0
                );
                self.ledger.reg.locked_doubles.push(Stray { at: now, what });
                break;
            }
        }
        self.ledger.reg.locked_acks.push(LockedAck {
            table: o.table,
            name: o.name,
            pid,
            node: i,
            started: o.started,
            acked: now,
        });
    }

    // ---- global groups ---------------------------------------------------

    /// Node `i` asks node `to` who holds `name` in its default table.
    pub fn groups_whereis(&mut self, i: NodeIdx, to: NodeIdx, name: &str) {
        let req = self.next_req(i);
        let creation = self.nodes[i].creation;
        let node = self.nodes[to].name.clone();
        self.trace.event(
            self.now(),
            format_args!("op n{i}.{creation} groups-ask {node} whereis {name} req={req}"),
        );
        self.ledger.reg.asks.insert((i, creation, req), to);
        let q = Query::Whereis(name.to_string());
        self.input(i, |c, now| c.groups_ask(&node, q, req, now));
        self.count("groups: ask");
    }

    // ---- effects ---------------------------------------------------------

    /// Records a process-group, name or global-group effect of node `i`.
    pub(crate) fn registry_effect(&mut self, i: NodeIdx, effect: Effect) {
        let creation = self.nodes[i].creation;
        match effect {
            Effect::Pg(PgEffect::Event { sub, event }) => self.pg_event(i, sub, event),
            Effect::Names(NamesEffect::Reply { op, result }) => self.name_reply(i, op, result),
            Effect::Names(NamesEffect::Event { table, event }) => {
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
                            self.ledger
                                .reg
                                .retracted
                                .insert((table.to_string(), name, pid), now);
                        }
                    }
                    NameEvent::ConflictResolved { .. } => self.count("names: conflict resolved"),
                    NameEvent::Registered { .. } => {}
                }
            }
            Effect::Names(NamesEffect::View {
                table,
                name,
                entry: None,
            }) => {
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
            Effect::Names(NamesEffect::View { .. }) => {}
            Effect::Groups(GlobalGroupsEffect::Node { node, up }) => {
                if let Some(b) = self.index_of(&node) {
                    if up {
                        let now = self.now();
                        self.ledger.reg.synced.insert((i, b), now);
                    } else {
                        self.ledger.reg.synced.remove(&(i, b));
                    }
                }
            }
            Effect::Groups(GlobalGroupsEffect::Answered { req, answer }) => {
                let Some(to) = self.ledger.reg.asks.remove(&(i, creation, req)) else {
                    return;
                };
                self.count(if answer.is_some() {
                    "groups: answered"
                } else {
                    "groups: unanswered"
                });
                if let Some(Answer::Whereis(Some(pid))) = answer {
                    let owner = self.index_of(pid.node());
                    if owner.is_none_or(|o| !self.same_group(o, to)) {
                        let now = self.now();
                        let what = format!(
                            "n{to} answered n{i}'s whereis with {pid}, owned outside its group"
                        );
                        self.ledger.reg.crossings.push(Stray { at: now, what });
                    }
                }
            }
            Effect::Groups(GlobalGroupsEffect::Synced { .. }) => {}
            _ => {}
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
