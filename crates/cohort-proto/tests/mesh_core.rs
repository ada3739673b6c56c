//! The transitive mesh on sans-IO cores: nodes that join through a seed
//! meet every other node, hearing of each about once (not from every peer),
//! and views that a lost or raced announcement left different are
//! reconciled by the digests sent in place of ticks.

mod common;

use cohort_proto::proto::{Frame, PeerInfo};
use common::corenet::CoreNet;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}@h")).collect()
}

fn net(n: usize) -> CoreNet {
    let names = names(n);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    CoreNet::new(&refs)
}

fn full_mesh(net: &CoreNet) -> bool {
    let n = net.nodes.len();
    net.nodes.iter().all(|c| c.nodes().len() == n - 1)
}

/// Node entries carried by mesh gossip frames sent so far.
fn gossip_entries(net: &CoreNet) -> usize {
    net.sent
        .iter()
        .map(|(_, f)| match f {
            Frame::Peers(l) | Frame::Introduce(l) | Frame::Welcome(l) => l.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn nodes_joining_one_after_another_hear_of_each_node_about_once() {
    const N: usize = 40;
    let mut net = net(N);
    // A tree of seeds: node i joins through node (i - 1) / 2.
    for i in 1..N {
        net.connect(i, (i - 1) / 2);
    }
    net.settle();
    assert!(full_mesh(&net), "no full mesh");
    // Every node must hear of the N - 1 others at least once; sending
    // each node every peer list (as a full list per session does) costs
    // about N^3 / 2 entries, here ~32,000.
    let entries = gossip_entries(&net);
    assert!(
        entries <= 3 * N * N,
        "{entries} gossip entries for {N} nodes: more than 3 per node and node"
    );
}

#[test]
fn nodes_joining_at_once_through_different_seeds_form_a_full_mesh() {
    const N: usize = 40;
    let mut net = net(N);
    let now = net.now;
    for i in 1..N {
        // Everyone dials at the same moment: the introductions race.
        let seed = (i * 7) % i;
        let addr = net.nodes[seed].name().to_string();
        net.nodes[i].connect(addr, None, now);
    }
    net.settle();
    assert!(full_mesh(&net), "introductions alone left gaps");
    let entries = gossip_entries(&net);
    assert!(
        entries <= 3 * N * N,
        "{entries} gossip entries for {N} nodes"
    );
}

#[test]
fn a_lost_announcement_is_made_good_by_the_digests() {
    let mut net = net(3);
    net.connect(1, 0);
    // n2 joins through n0, but n0's news of it never reaches n1.
    let addr = net.nodes[0].name().to_string();
    let now = net.now;
    net.nodes[2].connect(addr, None, now);
    while net.step() {
        let lost = net.sent.iter().any(|(from, f)| {
            *from == 0
                && matches!(f, Frame::Peers(l) if l.iter().any(|p: &PeerInfo| p.name.as_str() == "n2@h"))
        });
        if lost {
            net.drop_queued_from(0);
            break;
        }
    }
    net.settle();
    assert!(!full_mesh(&net), "the announcement was not lost");
    // A tick later the views are compared; n0 sends its list to n1.
    for _ in 0..3 {
        net.advance(1000);
    }
    assert!(full_mesh(&net), "views never reconciled");
    // Once views agree, ticks are plain again.
    let before = net.sent.len();
    net.advance(1000);
    net.advance(1000);
    let digests = net.sent[before..]
        .iter()
        .filter(|(_, f)| matches!(f, Frame::Digest { .. }))
        .count();
    assert_eq!(digests, 0, "digests go on after views agreed");
}
