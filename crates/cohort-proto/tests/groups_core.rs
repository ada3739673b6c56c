//! Global-group definition checks on sans-IO cores: nodes that agree
//! compare digests of a fixed size, whatever the size of their group; the
//! definitions themselves cross only between nodes that disagree, once
//! each way, so that each can say how they differ.

mod common;

use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::global_group::{
    GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsFrame, GlobalGroupsInfo, Publish,
};
use cohort_proto::pid::NodeName;
use cohort_proto::proto::Frame;
use cohort_proto::time::Time;
use cohort_proto::{CoreConfig, NodeCore};
use common::corenet::CoreNet;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn n(s: &str) -> NodeName {
    NodeName::new(s).expect("valid node name")
}

fn group(nodes: &[String]) -> GlobalGroupsConfig {
    GlobalGroupsConfig::new([GlobalGroupDef::new(
        "g1",
        Publish::Normal,
        nodes.iter().map(|s| n(s)),
    )])
}

/// Sans-IO cores named `names`, node `i` configured with `cfgs[i]`.
fn core_net(names: &[String], cfgs: &[GlobalGroupsConfig]) -> CoreNet {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut net = CoreNet::new(&refs);
    for (i, (name, cfg)) in names.iter().zip(cfgs).enumerate() {
        net.nodes[i] = NodeCore::new(
            CoreConfig {
                name: n(name),
                creation: 100 + i as u32,
                listen: Some(name.clone()),
                cookie: Cookie::new("c"),
                cluster: ClusterConfig {
                    groups: cfg.clone(),
                    ..ClusterConfig::default()
                },
                names: Default::default(),
            },
            StdRng::seed_from_u64(i as u64),
            Time::ZERO,
        );
    }
    net
}

fn info(net: &CoreNet, i: usize) -> GlobalGroupsInfo {
    net.nodes[i].groups().info(&[])
}

/// The global-group frames sent so far, with their encoded sizes.
fn group_frames(net: &CoreNet) -> Vec<(GlobalGroupsFrame, usize)> {
    net.sent
        .iter()
        .filter_map(|(_, f)| match f {
            Frame::GlobalGroup(g) => Some((g.clone(), f.encode().len())),
            _ => None,
        })
        .collect()
}

/// `size` nodes of one group join through node 0 and mesh by gossip;
/// returns the global-group frames they sent.
fn form(size: usize) -> Vec<(GlobalGroupsFrame, usize)> {
    let names: Vec<String> = (0..size).map(|i| format!("n{i}@h")).collect();
    let cfg = group(&names);
    let mut net = core_net(&names, &vec![cfg; size]);
    for i in 1..size {
        net.connect(i, 0);
    }
    for i in 0..size {
        let info = info(&net, i);
        assert_eq!(info.synced_nodes.len(), size - 1, "n{i}: {info:?}");
        assert!(info.sync_error.is_empty() && info.no_contact.is_empty());
    }
    group_frames(&net)
}

#[test]
fn a_group_forms_with_checks_whose_size_does_not_grow_with_the_group() {
    let small = form(4);
    let large = form(40);
    // One check each way per session, and nothing else.
    assert_eq!(small.len(), 4 * 3);
    assert_eq!(large.len(), 40 * 39);
    for (f, _) in small.iter().chain(&large) {
        assert!(
            matches!(f, GlobalGroupsFrame::Check { ask: false, .. }),
            "agreeing nodes sent {f:?}"
        );
    }
    // Every check has the same size, whether the group lists 4 nodes or
    // 40: a group's formation costs each node O(n) bytes, not O(n²).
    let largest = |v: &[(GlobalGroupsFrame, usize)]| v.iter().map(|(_, b)| *b).max().unwrap();
    let smallest = |v: &[(GlobalGroupsFrame, usize)]| v.iter().map(|(_, b)| *b).min().unwrap();
    assert_eq!(
        largest(&small),
        smallest(&large),
        "check size grew with the group"
    );
    assert_eq!(largest(&large), smallest(&small));
    assert!(largest(&large) < 64, "a check is {} bytes", largest(&large));
}

#[test]
fn differing_definitions_cross_once_each_way() {
    let names: Vec<String> = ["a@h", "b@h"].map(String::from).to_vec();
    let ab = group(&names);
    let abx = group(&["a@h", "b@h", "x@h"].map(String::from));
    let mut net = core_net(&names, &[ab.clone(), abx.clone()]);
    net.connect(1, 0);
    assert_eq!(info(&net, 0).sync_error, vec![n("b@h")]);
    assert_eq!(info(&net, 1).sync_error, vec![n("a@h")]);
    let frames = group_frames(&net);
    let defs: Vec<(usize, &GlobalGroupDef)> = net
        .sent
        .iter()
        .filter_map(|(from, f)| match f {
            Frame::GlobalGroup(GlobalGroupsFrame::Definition { def: Some(d) }) => Some((*from, d)),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames.len(),
        4,
        "a check and a definition each way: {frames:?}"
    );
    assert_eq!(defs.len(), 2, "{frames:?}");
    assert!(defs.contains(&(0, &ab.groups[0])), "{defs:?}");
    assert!(defs.contains(&(1, &abx.groups[0])), "{defs:?}");

    // A sync re-checks with a digest; the disagreement is told again,
    // and nothing is answered twice.
    let before = net.sent.len();
    net.nodes[0].groups_sync(1 << 62, net.now);
    net.settle();
    let again = group_frames(&net).len() - frames.len();
    assert_eq!(again, 4, "check(ask), check, and a definition each way");
    assert!(net.sent.len() > before);
    assert_eq!(info(&net, 0).sync_error, vec![n("b@h")]);
}

#[test]
fn a_definition_from_outside_the_group_changes_nothing() {
    let names: Vec<String> = ["a@h", "b@h", "c@h"].map(String::from).to_vec();
    let ab = GlobalGroupsConfig::new([
        GlobalGroupDef::new("g1", Publish::Normal, [n("a@h"), n("b@h")]),
        GlobalGroupDef::new("g2", Publish::Normal, [n("c@h")]),
    ]);
    let mut net = core_net(&names, &[ab.clone(), ab.clone(), ab.clone()]);
    net.connect(1, 0);
    net.connect(2, 0);
    assert_eq!(info(&net, 0).synced_nodes, vec![n("b@h")]);
    let sent = net.sent.len();
    // c is not in a's group: its definition (even one naming a) is not
    // answered and does not make it an own-group node.
    let forged = GlobalGroupDef::new("g1", Publish::Normal, [n("a@h"), n("b@h"), n("c@h")]);
    net.inject(
        2,
        0,
        Frame::GlobalGroup(GlobalGroupsFrame::Definition { def: Some(forged) }),
    );
    assert_eq!(net.sent.len(), sent, "{:?}", &net.sent[sent..]);
    let a = info(&net, 0);
    assert_eq!(a.synced_nodes, vec![n("b@h")]);
    assert!(a.sync_error.is_empty(), "{a:?}");
}
