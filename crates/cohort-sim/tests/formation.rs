//! What it costs a cluster to form its full mesh: every node learns of all
//! the others at about the same time, and each pair of nodes should need
//! about one handshake, not one from each side plus refused retries.

use std::time::Duration;

use cohort_sim::config::{FaultSet, SimConfig};
use cohort_sim::sim::Sim;

/// Forms the mesh of `nodes` simulated nodes (each dials one earlier node
/// and learns of the others from peer lists) and returns the `hello` and
/// `refuse` frames sent meanwhile, summed over the nodes.
fn form(nodes: usize, seed: u64) -> (u64, u64) {
    let mut cfg = SimConfig::new(seed);
    cfg.nodes = Some(nodes);
    cfg.steps = 0;
    cfg.faults = FaultSet::none();
    cfg.hash_trace = false;
    let mut sim = Sim::new(cfg);
    let t0 = sim.now();
    let formed = sim.run_until_or(t0 + Duration::from_secs(60), Sim::full_mesh);
    assert!(
        formed.is_some(),
        "{nodes} nodes formed no full mesh in 60 s"
    );
    let traffic = sim.traffic();
    let frames = |kind: &str| traffic.get(kind).map_or(0, |t| t.frames);
    (frames("hello"), frames("refuse"))
}

/// With 150 nodes learning of each other at once, a node that dialed every
/// node it heard of at once sent about two hellos per pair (both sides of
/// each pair dial) and overran the acceptors' `max_handshakes` (64), which
/// refused the excess busy; paced dials (`max_dials` at once, in random
/// order, skipping a node that reached us first) keep the handshakes near
/// one per pair and the refusals near none.
#[test]
fn a_forming_mesh_needs_about_one_handshake_per_pair() {
    let nodes = 150;
    let pairs = (nodes * (nodes - 1) / 2) as u64;
    let (hello, refuse) = form(nodes, 7);
    eprintln!("{nodes} nodes: {pairs} pairs, {hello} hello frames, {refuse} refuse frames");
    assert!(
        hello <= pairs * 3 / 2,
        "{hello} hello frames for {pairs} pairs: more than 1.5 per pair"
    );
    assert!(
        refuse <= nodes as u64 * 2,
        "{refuse} handshakes refused while {nodes} nodes formed a mesh"
    );
}
