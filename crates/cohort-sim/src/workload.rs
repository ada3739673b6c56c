//! One step of a run: let some time pass, then do one random thing to the
//! cluster: an application operation or, now and then, a fault.

use std::time::Duration;

use cohort_proto::pid::{ExitReason, Pid};
use cohort_proto::process::MonitorRef;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use crate::config::FaultKind;
use crate::net::NodeIdx;
use crate::registry::{runs_scope, GROUPS, NAMES, SCOPES, TABLES};
use crate::sim::Sim;

/// Share of steps that inject a fault (when any is enabled).
const FAULT_SHARE: f64 = 0.12;

/// Runs one step.
pub fn step(sim: &mut Sim) {
    // Mostly short pauses, so operations race with each other; sometimes
    // long ones, so timeouts, backoffs and reconnects happen mid-run.
    let pause = if sim.rng.random_bool(0.05) {
        Duration::from_millis(sim.rng.random_range(1000..8000))
    } else {
        Duration::from_micros(sim.rng.random_range(0..400_000))
    };
    let until = sim.now() + pause;
    sim.run_until(until);

    let faults = fault_choices(sim);
    if !faults.is_empty() && sim.rng.random_bool(FAULT_SHARE) {
        let f = *faults.choose(&mut sim.rng).expect("not empty");
        fault(sim, f);
    } else {
        operation(sim);
    }
}

/// A fault step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultStep {
    Inject(FaultKind),
    Heal,
}

fn running(sim: &Sim) -> Vec<NodeIdx> {
    (0..sim.nodes().len())
        .filter(|&i| sim.nodes()[i].is_running())
        .collect()
}

fn down(sim: &Sim) -> Vec<NodeIdx> {
    (0..sim.nodes().len())
        .filter(|&i| !sim.nodes()[i].is_running())
        .collect()
}

/// Established connections: both ends open, not reset.
fn live_links(sim: &Sim) -> Vec<u64> {
    sim.net()
        .links
        .iter()
        .filter(|(_, l)| !l.broken && l.ends[0].open && l.ends[1].open)
        .map(|(id, _)| id)
        .collect()
}

fn fault_choices(sim: &Sim) -> Vec<FaultStep> {
    let mut out = Vec::new();
    let n = sim.nodes().len();
    let up = running(sim).len();
    let partitions = sim.net().partitions.len();
    let overlap = sim.fault_enabled(FaultKind::Overlap);
    for kind in sim.config().faults.iter() {
        let ok = match kind {
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Overlap => {
                n >= 2 && (partitions == 0 || overlap)
            }
            FaultKind::Reset | FaultKind::Loss => !live_links(sim).is_empty(),
            FaultKind::Delay => true,
            FaultKind::Crash | FaultKind::Stop => up >= 2,
            FaultKind::Restart => up < n,
        };
        if ok {
            out.push(FaultStep::Inject(kind));
        }
    }
    // Partitions should not outlive most of the run: healing is as likely
    // as all other faults together.
    for _ in 0..partitions.min(1) * out.len().max(1) {
        out.push(FaultStep::Heal);
    }
    out
}

fn fault(sim: &mut Sim, f: FaultStep) {
    let n = sim.nodes().len();
    sim.count(match f {
        FaultStep::Inject(kind) => kind.name(),
        FaultStep::Heal => "heal",
    });
    match f {
        FaultStep::Heal => {
            let i = sim.rng.random_range(0..sim.net().partitions.len());
            sim.heal(i);
        }
        FaultStep::Inject(
            kind @ (FaultKind::Partition | FaultKind::OneWay | FaultKind::Overlap),
        ) => {
            let mut order: Vec<NodeIdx> = (0..n).collect();
            order.shuffle(&mut sim.rng);
            let k = sim.rng.random_range(1..n);
            let (side, rest) = order.split_at(k);
            let one_way = kind == FaultKind::OneWay
                || (kind == FaultKind::Overlap
                    && sim.fault_enabled(FaultKind::OneWay)
                    && sim.rng.random_bool(0.5));
            let mut cuts = Vec::new();
            for &s in side {
                for &r in rest {
                    cuts.push((s, r));
                    if !one_way {
                        cuts.push((r, s));
                    }
                }
            }
            sim.partition(cuts);
        }
        FaultStep::Inject(FaultKind::Reset) => {
            let links = live_links(sim);
            let id = *links.choose(&mut sim.rng).expect("checked");
            sim.reset(id, &[0, 1], "fault");
        }
        FaultStep::Inject(FaultKind::Loss) => {
            let links = live_links(sim);
            let id = *links.choose(&mut sim.rng).expect("checked");
            let dir = sim.rng.random_range(0..2);
            sim.blackhole(id, dir);
        }
        FaultStep::Inject(FaultKind::Delay) => sim.toggle_delay(),
        FaultStep::Inject(FaultKind::Crash) => {
            let i = *running(sim).choose(&mut sim.rng).expect("checked");
            sim.crash(i);
        }
        FaultStep::Inject(FaultKind::Stop) => {
            let i = *running(sim).choose(&mut sim.rng).expect("checked");
            sim.stop(i);
        }
        FaultStep::Inject(FaultKind::Restart) => {
            let i = *down(sim).choose(&mut sim.rng).expect("checked");
            let own: Vec<NodeIdx> = running(sim)
                .into_iter()
                .filter(|&j| sim.related(i, j))
                .collect();
            let seed = own.choose(&mut sim.rng).copied();
            sim.restart(i, seed);
        }
    }
}

/// An application operation on a random running node.
#[derive(Debug, Clone, Copy)]
enum Op {
    Spawn,
    Exit,
    Kill,
    Monitor,
    Demonitor,
    Send,
    Connect,
    Disconnect,
    PgJoin,
    PgLeave,
    PgMeta,
    PgMonitor,
    Register,
    ReRegister,
    Unregister,
    Lock,
    Unlock,
    GroupsAsk,
}

const OPS: [(Op, u32); 18] = [
    (Op::Spawn, 20),
    (Op::Exit, 8),
    (Op::Kill, 6),
    (Op::Monitor, 14),
    (Op::Demonitor, 5),
    (Op::Send, 12),
    (Op::Connect, 10),
    (Op::Disconnect, 2),
    (Op::PgJoin, 16),
    (Op::PgLeave, 8),
    (Op::PgMeta, 3),
    (Op::PgMonitor, 4),
    (Op::Register, 10),
    (Op::ReRegister, 2),
    (Op::Unregister, 4),
    (Op::Lock, 2),
    (Op::Unlock, 2),
    (Op::GroupsAsk, 3),
];

fn operation(sim: &mut Sim) {
    let Some(&i) = running(sim).choose(&mut sim.rng) else {
        return;
    };
    let total: u32 = OPS.iter().map(|(_, w)| w).sum();
    let mut pick = sim.rng.random_range(0..total);
    let names_on = sim.config().names;
    let op = OPS
        .iter()
        .find(|(_, w)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|(op, _)| *op)
        .expect("weights cover the range");
    let op = match op {
        Op::Register | Op::ReRegister | Op::Unregister | Op::Lock | Op::Unlock if !names_on => {
            Op::Send
        }
        op => op,
    };
    let local: Vec<u64> = sim.nodes()[i].alive.iter().copied().collect();
    match op {
        Op::Spawn => {
            sim.spawn(i);
        }
        Op::Exit => {
            if let Some(&s) = local.choose(&mut sim.rng) {
                let reason = match sim.rng.random_range(0..3) {
                    0 => ExitReason::Normal,
                    1 => ExitReason::Other("crashed".into()),
                    _ => ExitReason::Shutdown,
                };
                sim.exit(i, s, reason);
            }
        }
        Op::Kill => {
            if let Some(pid) = some_pid(sim) {
                sim.kill(i, &pid);
            }
        }
        Op::Monitor => match (local.choose(&mut sim.rng).copied(), some_pid(sim)) {
            (Some(w), Some(target))
                if sim.config().self_monitors || target != sim.nodes()[i].pid(w) =>
            {
                sim.monitor(i, w, &target);
            }
            (None, _) => {
                sim.spawn(i);
            }
            _ => {}
        },
        Op::Demonitor => {
            let me = &sim.nodes()[i];
            let mine: Vec<(u64, MonitorRef)> = sim
                .ledger()
                .monitors
                .iter()
                .filter(|((w, _), m)| {
                    w.node() == &me.name
                        && w.creation() == me.creation
                        && me.alive.contains(&w.serial())
                        && !m.demonitored
                })
                .map(|((w, r), _)| (w.serial(), *r))
                .collect();
            if let Some(&(w, mref)) = mine.choose(&mut sim.rng) {
                sim.demonitor(i, w, mref);
            }
        }
        Op::Send => {
            if let Some(to) = some_pid(sim) {
                let from = local.choose(&mut sim.rng).copied();
                let size = sim.rng.random_range(0..64);
                sim.send_msg(i, from, &to, size);
            }
        }
        Op::Connect => {
            // Mostly nodes it is not connected to: stops and disconnects
            // split the cluster, and the workload should mend it.
            let peers = sim.nodes()[i].core().map(|c| c.nodes()).unwrap_or_default();
            let strangers: Vec<NodeIdx> = (0..sim.nodes().len())
                .filter(|&b| b != i && !peers.contains(&sim.nodes()[b].name))
                .collect();
            let b = match strangers.choose(&mut sim.rng) {
                Some(&b) if sim.rng.random_bool(0.8) => b,
                _ => sim.rng.random_range(0..sim.nodes().len()),
            };
            if b != i {
                sim.connect(i, b);
            }
        }
        Op::Disconnect => {
            let peers: Vec<NodeIdx> = sim.nodes()[i]
                .core()
                .map(|c| c.nodes())
                .unwrap_or_default()
                .iter()
                .filter_map(|name| sim.index_of(name))
                .collect();
            if let Some(&b) = peers.choose(&mut sim.rng) {
                sim.disconnect(i, b);
            }
        }
        Op::PgJoin => {
            let scope = pick_scope(sim, i);
            let group = *GROUPS.choose(&mut sim.rng).expect("not empty");
            let mut pids: Vec<u64> = local.choose_multiple(&mut sim.rng, 3).copied().collect();
            pids.truncate(sim.rng.random_range(1..=3));
            if pids.is_empty() {
                sim.spawn(i);
            } else {
                sim.pg_join(i, scope, group, &pids);
            }
        }
        Op::PgLeave | Op::PgMeta => {
            let scope = pick_scope(sim, i);
            let joined: Vec<(String, u64)> = sim
                .ledger()
                .reg
                .pg_local
                .get(&(i, scope.to_string()))
                .map(|gs| {
                    gs.iter()
                        .flat_map(|(g, m)| m.keys().map(move |&s| (g.clone(), s)))
                        .collect()
                })
                .unwrap_or_default();
            // Now and then a leave of something not joined (NotJoined).
            let target = match joined.choose(&mut sim.rng) {
                Some(t) if sim.rng.random_bool(0.9) => Some(t.clone()),
                _ => local
                    .choose(&mut sim.rng)
                    .map(|&s| (GROUPS[0].to_string(), s)),
            };
            if let Some((g, s)) = target {
                if matches!(op, Op::PgLeave) {
                    sim.pg_leave(i, scope, &g, s);
                } else {
                    sim.pg_meta(i, scope, &g, s);
                }
            }
        }
        Op::PgMonitor => {
            let scope = pick_scope(sim, i);
            let group = if sim.rng.random_bool(0.5) {
                Some(*GROUPS.choose(&mut sim.rng).expect("not empty"))
            } else {
                None
            };
            sim.pg_monitor(i, scope, group);
        }
        Op::Register | Op::ReRegister => {
            let table = *TABLES.choose(&mut sim.rng).expect("not empty");
            let name = *NAMES.choose(&mut sim.rng).expect("not empty");
            match local.choose(&mut sim.rng) {
                Some(&s) => sim.name_register(i, table, name, s, matches!(op, Op::ReRegister)),
                None => {
                    sim.spawn(i);
                }
            }
        }
        Op::Unregister => {
            let table = *TABLES.choose(&mut sim.rng).expect("not empty");
            let name = *NAMES.choose(&mut sim.rng).expect("not empty");
            sim.name_unregister(i, table, name);
        }
        Op::Lock | Op::Unlock => {
            let res = *["r1", "r2"].choose(&mut sim.rng).expect("not empty");
            if let Some(&s) = local.choose(&mut sim.rng) {
                if matches!(op, Op::Lock) {
                    sim.name_lock(i, res, s);
                } else {
                    sim.name_unlock(i, res, s);
                }
            }
        }
        Op::GroupsAsk => {
            let n = sim.nodes().len();
            let others: Vec<NodeIdx> = (0..n).filter(|&b| !sim.same_group(i, b)).collect();
            let to = match others.choose(&mut sim.rng) {
                Some(&b) => b,
                None => sim.rng.random_range(0..n),
            };
            if to != i {
                let name = *NAMES.choose(&mut sim.rng).expect("not empty");
                sim.groups_whereis(i, to, name);
            }
        }
    }
}

/// A scope node `i` runs (mostly the default one).
fn pick_scope(sim: &mut Sim, i: NodeIdx) -> &'static str {
    if runs_scope(i, SCOPES[1]) && sim.rng.random_bool(0.4) {
        SCOPES[1]
    } else {
        SCOPES[0]
    }
}

/// A pid to aim at: mostly a live process anywhere, sometimes any pid ever
/// seen (dead ones, old incarnations), to exercise `NoProc` paths.
fn some_pid(sim: &mut Sim) -> Option<Pid> {
    if sim.rng.random_bool(0.75) {
        let live: Vec<Pid> = sim
            .nodes()
            .iter()
            .flat_map(|n| n.alive.iter().map(|&s| n.pid(s)))
            .collect();
        if let Some(p) = live.choose(&mut sim.rng) {
            return Some(p.clone());
        }
    }
    let count = sim.ledger().procs.len();
    if count == 0 {
        return None;
    }
    let k = sim.rng.random_range(0..count);
    sim.ledger().procs.keys().nth(k).cloned()
}
