//! Measurements from the simulator: how fast a cluster forms a full mesh,
//! how fast it heals after a netsplit, and what it costs on the wire.
//!
//! All times are simulated (the default cluster settings: 1 s ticks, 5 s
//! peer timeout, 100 ms to 5 s reconnect backoff, 0.1 to 2 ms latency).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cohort_proto::time::Time;

use crate::config::{FaultSet, SimConfig};
use crate::net::NodeIdx;
use crate::registry::{SCOPES, TABLES};
use crate::sim::{Sim, Traffic};

/// How long the split lasts: well past the peer timeout, so every session
/// across it goes down.
pub const SPLIT: Duration = Duration::from_secs(15);

/// Longest wait for a full mesh before giving up.
const PATIENCE: Duration = Duration::from_secs(300);

/// Time left after the mesh formed (and the registries loaded) before the
/// idle window: the last syncs and digests of the formation end within
/// about a second.
const SETTLE: Duration = Duration::from_secs(2);

/// Window over which the steady-state (idle) traffic is measured, after
/// [`SETTLE`]: two tick intervals. A node's idle traffic is its ticks,
/// the same every interval (the measurement shows it by kind); a longer
/// window gives the same figure and costs the simulator ~1 M frames per
/// simulated second at 1,000 nodes.
const IDLE: Duration = Duration::from_secs(2);

/// The figures for one cluster size.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Number of nodes.
    pub nodes: usize,
    /// From start (each node asked to connect to one earlier node) to full mesh.
    pub form: Option<Duration>,
    /// From the heal of a half/half split to full mesh again.
    pub heal: Option<Duration>,
    /// Traffic per node while the mesh formed.
    pub form_traffic: Traffic,
    /// Traffic per node per second in the idle full mesh.
    pub idle_traffic: Traffic,
    /// Frames per node per second in the idle full mesh, by kind.
    pub idle_by_kind: BTreeMap<&'static str, u64>,
    /// Traffic per node from the heal to full mesh, the registries' frames
    /// (pg and names) left out: those are in their own rows.
    pub heal_traffic: Traffic,
    /// Traffic by frame kind over the whole measurement, per node.
    pub by_kind: BTreeMap<&'static str, Traffic>,
    /// Wall time the simulator spent in each phase of the run, in order.
    pub phases: Vec<(&'static str, Duration)>,
}

fn totals(sim: &Sim) -> Traffic {
    sim.nodes().iter().fold(Traffic::default(), |t, n| Traffic {
        frames: t.frames + n.sent_frames,
        bytes: t.bytes + n.sent_bytes,
    })
}

/// Frames per node per second of each kind sent since `before` (a copy of
/// [`Sim::traffic`]), over an [`IDLE`] window; kinds not sent are left out.
fn idle_kinds(
    sim: &Sim,
    before: &BTreeMap<&'static str, Traffic>,
    nodes: usize,
) -> BTreeMap<&'static str, u64> {
    sim.traffic()
        .iter()
        .filter_map(|(&k, t)| {
            let was = before.get(k).map_or(0, |b| b.frames);
            let per = (t.frames - was) as f64 / (nodes as f64 * IDLE.as_secs_f64());
            (t.frames > was).then_some((k, per.round() as u64))
        })
        .collect()
}

/// [`totals`] without the registries' frames (pg and names): the mesh's
/// own traffic, when the registries load the same world.
fn mesh_totals(sim: &Sim) -> Traffic {
    let all = totals(sim);
    let (pg, names) = (kind_traffic(sim, "pg"), kind_traffic(sim, "names"));
    Traffic {
        frames: all.frames - pg.frames - names.frames,
        bytes: all.bytes - pg.bytes - names.bytes,
    }
}

/// Wall time of the phases of a run, as they end.
struct Phases {
    since: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            since: Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Phases {
    /// Ends the phase `name`, begun when the last one ended.
    fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - self.since));
        self.since = now;
    }
}

fn per_node(after: Traffic, before: Traffic, nodes: usize, secs: f64) -> Traffic {
    let d = (nodes as f64) * secs.max(1e-9);
    Traffic {
        frames: ((after.frames - before.frames) as f64 / d).round() as u64,
        bytes: ((after.bytes - before.bytes) as f64 / d).round() as u64,
    }
}

/// Measures a cluster of `nodes` nodes from `seed` (the mesh alone).
pub fn measure(nodes: usize, seed: u64) -> Measurement {
    measure_with(nodes, None, seed).0
}

/// Measures a cluster of `nodes` nodes from `seed` and, with `entries`,
/// its registries in the same world: one formation and one split give the
/// mesh row and a pg row and a names row of `entries` entries each.
///
/// The run: the mesh forms (measured as by [`measure`]); with `entries`,
/// `entries` pg memberships and `entries` names are loaded and awaited;
/// the idle window; with `entries`, a window of single pg joins and
/// eventual registrations and one of locked registrations (see
/// [`RegistryMeasurement::per_op`]); the half/half split of [`SPLIT`];
/// the heal, until the mesh and (with `entries`) both registries have
/// converged again, each timed and its traffic counted separately.
pub fn measure_with(
    nodes: usize,
    entries: Option<usize>,
    seed: u64,
) -> (Measurement, Option<[RegistryMeasurement; 2]>) {
    let mut cfg = SimConfig::new(seed);
    cfg.nodes = Some(nodes);
    cfg.steps = 0;
    cfg.faults = FaultSet::none();
    cfg.hash_trace = false;
    let mut sim = Sim::new(cfg);
    let mut phases = Phases::default();

    let t0 = sim.now();
    let c0 = totals(&sim);
    let form = sim
        .run_until_or(t0 + PATIENCE, Sim::full_mesh)
        .map(|t| t - t0);
    let formed = totals(&sim);
    phases.end("form");

    // The registries: loaded into the formed mesh, before the idle window.
    let mut reg = entries.map(|e| load(&mut sim, nodes, e));
    if reg.is_some() {
        phases.end("load");
    }
    let settled = sim.now() + SETTLE;
    sim.run_until(settled);

    // The idle window; the registries' traffic in it is subtracted from
    // that of the windows of single operations, as long.
    let c1 = totals(&sim);
    let kinds1 = sim.traffic();
    let pg_idle0 = kind_traffic(&sim, "pg");
    let names_idle0 = kind_traffic(&sim, "names");
    let idle_from = sim.now();
    sim.run_until(idle_from + IDLE);
    let c2 = totals(&sim);
    let idle_by_kind = idle_kinds(&sim, &kinds1, nodes);
    phases.end("idle");
    if let Some([pg, names]) = reg.as_mut() {
        let idle = |now: Traffic, then: Traffic| {
            (
                (now.frames - then.frames) as f64,
                (now.bytes - then.bytes) as f64,
            )
        };
        let pg_idle = idle(kind_traffic(&sim, "pg"), pg_idle0);
        let names_idle = idle(kind_traffic(&sim, "names"), names_idle0);
        let mut undo = Vec::new();
        let (pg_op, names_op) = cost_window(&mut sim, nodes, &[None, Some(TABLES[1])], &mut undo);
        let (_, locked) = cost_window(&mut sim, nodes, &[Some(TABLES[0])], &mut undo);
        let less = |(f, b): (f64, f64), (fi, bi): (f64, f64)| {
            let d = (COST_OPS * nodes) as f64;
            ((f - fi) / d, (b - bi) / d)
        };
        pg.m.per_op = less(pg_op, pg_idle);
        names.m.per_op = less(names_op, names_idle);
        names.m.per_locked = Some(less(locked, names_idle));
        // The single operations are undone before the split, so that the
        // heal carries the loaded entries only.
        for (i, table, name, serial) in undo {
            match table {
                None => {
                    sim.pg_leave(i, SCOPES[0], "cost", serial);
                }
                Some(t) => sim.name_unregister(i, t, &name),
            }
        }
        let t = sim.now();
        let undone = |sim: &Sim| {
            (0..nodes).all(|i| {
                shown(sim, Entries::Pg, i) == pg.want
                    && shown(sim, Entries::Names, i) == names.want
                    && sim.nodes()[i]
                        .core()
                        .is_some_and(|c| c.names().name_count(TABLES[0]) == 0)
            })
        };
        // Probed every PROBE: counting every node's entries after every
        // event would cost more than the run.
        while !undone(&sim) && sim.now() < t + PATIENCE {
            let next = sim.now() + PROBE;
            sim.run_until(next);
        }
        phases.end("single operations");
    }

    let half = nodes / 2;
    let mut cuts: Vec<(NodeIdx, NodeIdx)> = Vec::new();
    for a in 0..half {
        for b in half..nodes {
            cuts.push((a, b));
            cuts.push((b, a));
        }
    }
    sim.partition(cuts);
    let split_end = sim.now() + SPLIT;
    sim.run_until(split_end);
    phases.end("split");
    sim.heal(0);
    let t1 = sim.now();
    let c3 = mesh_totals(&sim);
    let mut c4 = c3;
    let mut heal = None;
    if let Some(regs) = reg.as_mut() {
        for r in regs.iter_mut() {
            r.before = kind_traffic(&sim, r.kind());
        }
    }
    // The mesh is checked after every event, the registries every PROBE.
    let mut next = t1;
    loop {
        if let Some(regs) = reg.as_mut() {
            for r in regs.iter_mut().filter(|r| r.m.heal.is_none()) {
                if converged(&sim, r.what, r.want) {
                    r.m.heal = Some(sim.now() - t1);
                    let after = kind_traffic(&sim, r.kind());
                    r.m.heal_traffic = per_node(after, r.before, nodes, 1.0);
                }
            }
        }
        let regs_done = reg
            .as_ref()
            .is_none_or(|regs| regs.iter().all(|r| r.m.heal.is_some()));
        if (heal.is_some() && regs_done) || sim.now() >= t1 + PATIENCE {
            break;
        }
        next = if regs_done {
            t1 + PATIENCE
        } else {
            next + PROBE
        };
        if heal.is_none() {
            if let Some(t) = sim.run_until_or(next, Sim::full_mesh) {
                heal = Some(t - t1);
                c4 = mesh_totals(&sim);
                if regs_done {
                    break;
                }
            }
        }
        sim.run_until(next);
    }
    phases.end("heal");

    let by_kind = sim
        .traffic()
        .iter()
        .map(|(&k, t)| {
            (
                k,
                Traffic {
                    frames: t.frames / nodes as u64,
                    bytes: t.bytes / nodes as u64,
                },
            )
        })
        .collect();
    let mesh = Measurement {
        nodes,
        form,
        heal,
        form_traffic: per_node(formed, c0, nodes, 1.0),
        idle_traffic: per_node(c2, c1, nodes, IDLE.as_secs_f64()),
        heal_traffic: per_node(c4, c3, nodes, 1.0),
        by_kind,
        idle_by_kind,
        phases: phases.done,
    };
    (mesh, reg.map(|[pg, names]| [pg.m, names.m]))
}

/// Formats a measured duration, or "no mesh" when it never converged.
pub fn show(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.3}s", d.as_secs_f64()),
        None => format!("no mesh in {}s", PATIENCE.as_secs()),
    }
}

/// The clock value `t` as seconds, for reports.
pub fn secs(t: Time) -> f64 {
    t.0 as f64 / 1e6
}

/// What is measured by [`measure_registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Process-group memberships in the default scope (batched joins).
    Pg,
    /// Names in the eventual table (one process per name).
    Names,
}

/// Convergence of a registry after a netsplit, for one size.
#[derive(Debug, Clone)]
pub struct RegistryMeasurement {
    /// Nodes.
    pub nodes: usize,
    /// Entries in the whole cluster.
    pub entries: usize,
    /// From the end of loading to every node showing every entry.
    pub load: Option<Duration>,
    /// From the heal of a half/half split to every node showing every entry.
    pub heal: Option<Duration>,
    /// Traffic of the registry's frames per node from heal to convergence.
    pub heal_traffic: Traffic,
    /// Per single operation (join or eventual registration), per node:
    /// frames and bytes of the registry's frames, idle traffic subtracted
    /// (the registry's traffic in the idle window, scaled to the cost
    /// window). Pg joins and eventual registrations share one window,
    /// each counted by its own frames.
    pub per_op: (f64, f64),
    /// Per locked registration, per node (names only).
    pub per_locked: Option<(f64, f64)>,
}

/// How often convergence is checked (simulated time).
const PROBE: Duration = Duration::from_millis(20);

fn kind_traffic(sim: &Sim, kind: &str) -> Traffic {
    sim.traffic().get(kind).copied().unwrap_or_default()
}

fn shown(sim: &Sim, what: Entries, i: NodeIdx) -> usize {
    let Some(core) = sim.nodes()[i].core() else {
        return 0;
    };
    // Counted without listing (probed every 20 ms on every node).
    match what {
        Entries::Pg => core
            .pg()
            .view(SCOPES[0])
            .map_or(0, |v| v.membership_count()),
        Entries::Names => core.names().name_count(TABLES[1]),
    }
}

fn converged(sim: &Sim, what: Entries, want: usize) -> bool {
    (0..sim.nodes().len()).all(|i| shown(sim, what, i) == want)
}

fn spawn_many(sim: &mut Sim, i: NodeIdx, k: usize) -> Vec<u64> {
    (0..k)
        .filter_map(|_| sim.spawn(i).map(|p| p.serial()))
        .collect()
}

/// Window of single operations, and the idle traffic subtracted from it.
const COST_WINDOW: Duration = IDLE;

/// Single operations per cost window (each kind).
const COST_OPS: usize = 200;

/// One registry measured in [`measure_with`], while it runs.
struct RegRun {
    what: Entries,
    m: RegistryMeasurement,
    /// Entries every node shows once converged.
    want: usize,
    /// The registry's traffic at the heal.
    before: Traffic,
}

impl RegRun {
    fn kind(&self) -> &'static str {
        match self.what {
            Entries::Pg => "pg",
            Entries::Names => "names",
        }
    }
}

/// Loads `entries` pg memberships and `entries` names spread over the
/// nodes, and waits until every node shows every entry of each.
fn load(sim: &mut Sim, nodes: usize, entries: usize) -> [RegRun; 2] {
    let per = entries / nodes;
    let mut total = 0;
    for i in 0..nodes {
        let k = if i == nodes - 1 { entries - total } else { per };
        total += k;
        let serials = spawn_many(sim, i, k);
        for (j, chunk) in serials.chunks(1000).enumerate() {
            let g = format!("g{}", (i * 7 + j) % 100);
            sim.pg_join(i, SCOPES[0], &g, chunk);
        }
        for s in spawn_many(sim, i, k) {
            sim.name_register(i, TABLES[1], &format!("n{i}-{s}"), s, false);
        }
    }
    let run = |what| RegRun {
        what,
        m: RegistryMeasurement {
            nodes,
            entries,
            load: None,
            heal: None,
            heal_traffic: Traffic::default(),
            per_op: (0.0, 0.0),
            per_locked: None,
        },
        want: entries,
        before: Traffic::default(),
    };
    let mut regs = [run(Entries::Pg), run(Entries::Names)];
    let t0 = sim.now();
    loop {
        for r in regs.iter_mut().filter(|r| r.m.load.is_none()) {
            if converged(sim, r.what, r.want) {
                r.m.load = Some(sim.now() - t0);
            }
        }
        if regs.iter().all(|r| r.m.load.is_some()) || sim.now() >= t0 + PATIENCE {
            return regs;
        }
        let next = sim.now() + PROBE;
        sim.run_until(next);
    }
}

/// Runs [`COST_OPS`] single operations of each of `tables` (`None`: a pg
/// join; a table: a registration in it), spread over the nodes, and a
/// [`COST_WINDOW`] for them; returns the frames and bytes of pg and of
/// names frames sent meanwhile, in the whole cluster.
fn cost_window<'a>(
    sim: &mut Sim,
    nodes: usize,
    tables: &[Option<&'a str>],
    undo: &mut Vec<(NodeIdx, Option<&'a str>, String, u64)>,
) -> ((f64, f64), (f64, f64)) {
    let pg0 = kind_traffic(sim, "pg");
    let names0 = kind_traffic(sim, "names");
    for table in tables {
        for k in 0..COST_OPS {
            let i = k % nodes;
            let Some(p) = sim.spawn(i) else { continue };
            match table {
                None => {
                    sim.pg_join(i, SCOPES[0], "cost", &[p.serial()]);
                }
                Some(t) => sim.name_register(i, t, &format!("c-{t}-{k}"), p.serial(), false),
            }
            undo.push((
                i,
                *table,
                format!("c-{}-{k}", table.unwrap_or("")),
                p.serial(),
            ));
        }
    }
    let end = sim.now() + COST_WINDOW;
    sim.run_until(end);
    let d = |now: Traffic, then: Traffic| {
        (
            (now.frames - then.frames) as f64,
            (now.bytes - then.bytes) as f64,
        )
    };
    (
        d(kind_traffic(sim, "pg"), pg0),
        d(kind_traffic(sim, "names"), names0),
    )
}

/// Measures pg memberships and names at `entries` entries each in a
/// cluster of `nodes` nodes: [`measure_with`] without the mesh row.
pub fn measure_registry(nodes: usize, entries: usize, seed: u64) -> [RegistryMeasurement; 2] {
    measure_with(nodes, Some(entries), seed)
        .1
        .expect("registries measured")
}

/// Traffic of one cluster split into global groups (see
/// [`measure_groups`]).
#[derive(Debug, Clone)]
pub struct GroupsMeasurement {
    /// Nodes.
    pub nodes: usize,
    /// Global groups (even-numbered normal, odd-numbered hidden).
    pub groups: usize,
    /// Nodes per group (the smallest group).
    pub group_size: usize,
    /// From start to every group a full mesh (probed every 20 ms).
    pub form: Option<Duration>,
    /// Traffic per node while the groups formed.
    pub form_traffic: Traffic,
    /// Traffic per node while the groups formed, by frame kind.
    pub form_by_kind: BTreeMap<&'static str, Traffic>,
    /// Traffic per node per second once formed.
    pub idle_traffic: Traffic,
    /// Sessions between nodes of different groups once formed.
    pub cross_sessions: usize,
    /// One eventual name registration: (frames, bytes) of names frames in
    /// the whole cluster, idle traffic subtracted.
    pub register: (f64, f64),
    /// One locked name registration, likewise.
    pub register_locked: (f64, f64),
    /// One process-group join: (frames, bytes) of pg frames in the whole
    /// cluster, idle traffic subtracted.
    pub join: (f64, f64),
}

/// Whether every pair of nodes in the same group has a session up both
/// ways.
fn groups_meshed(sim: &Sim, members: &[Vec<NodeIdx>]) -> bool {
    members.iter().all(|g| {
        g.iter().all(|&a| {
            g.iter().all(|&b| {
                a == b || sim.ledger().sessions.get(&(a, b)) == Some(&sim.nodes()[b].creation)
            })
        })
    })
}

/// Starts `nodes` nodes in `groups` global groups (even-numbered normal,
/// odd-numbered hidden), lets every group form its mesh, and measures what
/// one name registration and one process-group join cost in the whole
/// cluster: with groups, a registry spans its own group only, so the cost
/// follows the group's size, not the cluster's.
pub fn measure_groups(nodes: usize, groups: usize, seed: u64) -> GroupsMeasurement {
    let mut cfg = SimConfig::new(seed);
    cfg.nodes = Some(nodes);
    cfg.steps = 0;
    cfg.faults = FaultSet::none();
    cfg.hash_trace = false;
    cfg.groups = true;
    cfg.groups_per_seed = false;
    cfg.group_count = groups;
    let mut sim = Sim::new(cfg);
    let mut members: BTreeMap<usize, Vec<NodeIdx>> = BTreeMap::new();
    for i in 0..nodes {
        members.entry(sim.group_of(i)).or_default().push(i);
    }
    let members: Vec<Vec<NodeIdx>> = members.into_values().collect();
    let group_size = members.iter().map(Vec::len).min().unwrap_or(0);

    let t0 = sim.now();
    let c0 = totals(&sim);
    let k0 = sim.traffic().clone();
    let mut form = None;
    while sim.now() < t0 + PATIENCE {
        if groups_meshed(&sim, &members) {
            form = Some(sim.now() - t0);
            break;
        }
        let next = sim.now() + PROBE;
        sim.run_until(next);
    }
    let c1 = totals(&sim);
    let form_by_kind = sim
        .traffic()
        .iter()
        .map(|(&k, t)| {
            let before = k0.get(k).copied().unwrap_or_default();
            (
                k,
                Traffic {
                    frames: (t.frames - before.frames) / nodes as u64,
                    bytes: (t.bytes - before.bytes) / nodes as u64,
                },
            )
        })
        .filter(|(_, t)| t.frames > 0)
        .collect();
    let formed = sim.now();
    let settle = formed + Duration::from_secs(5);
    sim.run_until(settle);
    let c2 = totals(&sim);
    let idle_traffic = per_node(c2, c1, nodes, (sim.now() - formed).as_secs_f64());
    let cross_sessions = sim
        .ledger()
        .sessions
        .keys()
        .filter(|&&(a, b)| !sim.same_group(a, b))
        .count();

    // One operation at a time from nodes of the first group, each in a
    // window of its own; the same window without an operation is the
    // idle traffic subtracted.
    let window = Duration::from_secs(2);
    let ops = 10usize;
    let first = &members[0];
    let idle = |sim: &mut Sim, kind: &str| -> Traffic {
        let a = kind_traffic(sim, kind);
        let end = sim.now() + window;
        sim.run_until(end);
        let b = kind_traffic(sim, kind);
        Traffic {
            frames: b.frames - a.frames,
            bytes: b.bytes - a.bytes,
        }
    };
    let cost = |sim: &mut Sim, kind: &str, op: &dyn Fn(&mut Sim, NodeIdx, u64, usize)| {
        let quiet = idle(sim, kind);
        let mut frames = 0.0;
        let mut bytes = 0.0;
        for k in 0..ops {
            let i = first[k % first.len()];
            let Some(p) = sim.spawn(i) else { continue };
            let a = kind_traffic(sim, kind);
            op(sim, i, p.serial(), k);
            let end = sim.now() + window;
            sim.run_until(end);
            let b = kind_traffic(sim, kind);
            frames += (b.frames - a.frames) as f64 - quiet.frames as f64;
            bytes += (b.bytes - a.bytes) as f64 - quiet.bytes as f64;
        }
        (frames / ops as f64, bytes / ops as f64)
    };
    let register = cost(&mut sim, "names", &|sim, i, s, k| {
        sim.name_register(i, TABLES[1], &format!("e{k}"), s, false)
    });
    let register_locked = cost(&mut sim, "names", &|sim, i, s, k| {
        sim.name_register(i, TABLES[0], &format!("l{k}"), s, false)
    });
    let join = cost(&mut sim, "pg", &|sim, i, s, _| {
        sim.pg_join(i, SCOPES[0], "cost", &[s]);
    });
    GroupsMeasurement {
        nodes,
        groups,
        group_size,
        form,
        form_traffic: per_node(c1, c0, nodes, 1.0),
        form_by_kind,
        idle_traffic,
        cross_sessions,
        register,
        register_locked,
        join,
    }
}
