//! Helpers shared by the `names_*` tests.
#![allow(dead_code)]

use cohort_registry::core::names::{Mode, NamesConfig, TableConfig};
use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{Node, Pid};

use crate::common::*;

/// One table, `global`, in `mode`.
pub fn cfg(mode: Mode) -> NamesConfig {
    NamesConfig::empty().table(TableConfig::new("global").mode(mode))
}

/// Starts a node on the in-memory network (host = the part before `@`).
pub async fn mem_node(net: &MemNetwork, name: &str, names: NamesConfig, reconnect: bool) -> Node {
    builder(name)
        .listen(format!("{}:0", host_of(name)))
        .transport(net.host(host_of(name)))
        .names(names)
        .reconnect(reconnect)
        .start()
        .await
        .expect("node starts")
}

/// Starts a full mesh of nodes on the in-memory network.
pub async fn mem_cluster(net: &MemNetwork, names: &[&str], cfg: NamesConfig) -> Vec<Node> {
    mem_cluster_with(net, names, cfg, true).await
}

/// As [`mem_cluster`], choosing whether nodes reconnect on their own.
pub async fn mem_cluster_with(
    net: &MemNetwork,
    names: &[&str],
    cfg: NamesConfig,
    reconnect: bool,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for n in names {
        nodes.push(mem_node(net, n, cfg.clone(), reconnect).await);
    }
    for n in &nodes[1..] {
        n.connect(&nodes[0].local_addr()).await.expect("connects");
    }
    wait_full_mesh(&nodes.iter().collect::<Vec<_>>()).await;
    nodes
}

/// Starts a full mesh of nodes over loopback TCP.
pub async fn tcp_cluster(names: &[&str], cfg: NamesConfig) -> Vec<Node> {
    let mut nodes = Vec::new();
    for n in names {
        nodes.push(
            builder(n)
                .names(cfg.clone())
                .start()
                .await
                .expect("node starts"),
        );
    }
    for n in &nodes[1..] {
        n.connect(&nodes[0].local_addr()).await.expect("connects");
    }
    wait_full_mesh(&nodes.iter().collect::<Vec<_>>()).await;
    nodes
}

/// A node's view of its default table: (name, pid), sorted by name.
pub fn view(n: &Node) -> Vec<(String, Pid)> {
    n.registered_names()
        .into_iter()
        .filter_map(|k| n.whereis(&k).map(|p| (k, p)))
        .collect()
}

/// Waits until every node's view is exactly `expected`.
pub async fn wait_views(nodes: &[&Node], expected: &[(&str, &Pid)]) {
    let mut want: Vec<(String, Pid)> = expected
        .iter()
        .map(|(k, p)| (k.to_string(), (*p).clone()))
        .collect();
    want.sort();
    let what = format!("views {want:?}");
    within(&what, async {
        while !nodes.iter().all(|n| view(n) == want) {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await;
}

/// Cuts `left` from `right` and waits until each side sees only itself.
pub async fn split(net: &MemNetwork, left: &[&Node], right: &[&Node]) {
    let hosts = |ns: &[&Node]| -> Vec<String> {
        ns.iter()
            .map(|n| host_of(n.name().as_str()).to_string())
            .collect()
    };
    let (l, r) = (hosts(left), hosts(right));
    net.partition(
        &l.iter().map(String::as_str).collect::<Vec<_>>(),
        &r.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_sides(&[left, right]).await;
}

/// Waits until each group of nodes sees exactly the other members of its group.
pub async fn wait_sides(sides: &[&[&Node]]) {
    wait_for("the sides to see only themselves", || {
        sides.iter().all(|side| {
            side.iter().all(|n| {
                let mut want: Vec<_> = side
                    .iter()
                    .filter(|m| m.name() != n.name())
                    .map(|m| m.name().clone())
                    .collect();
                want.sort();
                n.nodes() == want
            })
        })
    })
    .await;
}

/// Advances `node`'s Lamport clock by `k` claims, leaving no name behind:
/// its later claims rank after those of a node that did not.
pub async fn bump_clock(node: &Node, k: usize) {
    let p = node.spawn();
    for i in 0..k {
        let n = format!("tmp-{}-{i}", node.name());
        node.names()
            .register(n.clone(), p.pid())
            .await
            .expect("tmp name");
        node.names().unregister(&n).await.expect("tmp name goes");
    }
}
