//! Measurements from the simulator: how fast a cluster forms a full mesh,
//! how fast it heals after a netsplit, and what it costs on the wire.
//!
//! All times are simulated (the default cluster settings: 1 s ticks, 5 s
//! peer timeout, 100 ms to 5 s reconnect backoff, 0.1 to 2 ms latency).

use std::collections::BTreeMap;
use std::time::Duration;

use cohort::core::time::Time;

use crate::config::{FaultSet, SimConfig};
use crate::net::NodeIdx;
use crate::sim::{Sim, Traffic};

/// How long the split lasts: well past the peer timeout, so every session
/// across it goes down.
const SPLIT: Duration = Duration::from_secs(15);

/// Longest wait for a full mesh before giving up.
const PATIENCE: Duration = Duration::from_secs(300);

/// Window over which the steady-state (idle) traffic is measured.
const IDLE: Duration = Duration::from_secs(10);

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
    /// Traffic per node from the heal to full mesh.
    pub heal_traffic: Traffic,
    /// Traffic by frame kind over the whole measurement, per node.
    pub by_kind: BTreeMap<&'static str, Traffic>,
}

fn totals(sim: &Sim) -> Traffic {
    sim.nodes().iter().fold(Traffic::default(), |t, n| Traffic {
        frames: t.frames + n.sent_frames,
        bytes: t.bytes + n.sent_bytes,
    })
}

fn per_node(after: Traffic, before: Traffic, nodes: usize, secs: f64) -> Traffic {
    let d = (nodes as f64) * secs.max(1e-9);
    Traffic {
        frames: ((after.frames - before.frames) as f64 / d).round() as u64,
        bytes: ((after.bytes - before.bytes) as f64 / d).round() as u64,
    }
}

/// Measures a cluster of `nodes` nodes from `seed`.
pub fn measure(nodes: usize, seed: u64) -> Measurement {
    let mut cfg = SimConfig::new(seed);
    cfg.nodes = Some(nodes);
    cfg.steps = 0;
    cfg.faults = FaultSet::none();
    let mut sim = Sim::new(cfg);

    let t0 = sim.now();
    let c0 = totals(&sim);
    let form = sim
        .run_until_or(t0 + PATIENCE, Sim::full_mesh)
        .map(|t| t - t0);
    let c1 = totals(&sim);

    let idle_from = sim.now();
    sim.run_until(idle_from + IDLE);
    let c2 = totals(&sim);

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
    sim.heal(0);
    let t1 = sim.now();
    let c3 = totals(&sim);
    let heal = sim
        .run_until_or(t1 + PATIENCE, Sim::full_mesh)
        .map(|t| t - t1);
    let c4 = totals(&sim);

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
    Measurement {
        nodes,
        form,
        heal,
        form_traffic: per_node(c1, c0, nodes, 1.0),
        idle_traffic: per_node(c2, c1, nodes, IDLE.as_secs_f64()),
        heal_traffic: per_node(c4, c3, nodes, 1.0),
        by_kind,
    }
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
