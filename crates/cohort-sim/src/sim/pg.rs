//! Process groups in the simulation: the operations the workload calls
//! (join, leave, metadata, monitors) and the bookkeeping the `pg_views`
//! and `pg_monitor_order` invariants read: each node's own memberships,
//! every origin's history of membership counts, and a replay of every
//! monitor subscription.

use std::collections::BTreeMap;

use bytes::Bytes;
use cohort_proto::pg::{PgEvent, PgEventKind};
use cohort_proto::pid::Pid;

use super::Sim;
use crate::ledger::{PgMonRecord, PidCounts, Stray};
use crate::net::NodeIdx;
use crate::registry::{runs_scope, SCOPES};

/// A saved piece of the membership model, to undo a refused operation.
type SavedPg = (
    Option<BTreeMap<String, BTreeMap<u64, u32>>>,
    Vec<((String, String, Pid), Option<Vec<u32>>)>,
);

impl Sim {
    /// Starts the scopes node `i` runs.
    pub(super) fn start_scopes(&mut self, i: NodeIdx) {
        for scope in SCOPES {
            if runs_scope(i, scope) {
                self.input(i, |c, now| {
                    c.pg_start_scope(scope, now);
                });
            }
        }
    }

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
            self.restore_pg(i, scope, saved);
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
            self.restore_pg(i, scope, saved);
        }
        ok
    }

    /// The part of the membership model a join or leave of `pids` in
    /// `group` changes.
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

    /// Puts back what [`Sim::save_pg`] saved: the operation was refused.
    fn restore_pg(&mut self, i: NodeIdx, scope: &str, saved: SavedPg) {
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
        let sub = self.bump_req(i);
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

    /// Replays a monitor event of node `i`'s subscription `sub` onto what
    /// the subscriber believes, recording events that contradict the
    /// origin's history.
    pub(super) fn pg_event(&mut self, i: NodeIdx, sub: u64, event: PgEvent) {
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
            other => unreachable!("a new group event kind, check it: {other:?}"),
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
}
