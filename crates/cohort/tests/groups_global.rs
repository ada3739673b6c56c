//! Global groups over loopback TCP: global_group_SUITE's no config,
//! one_grp, one_grp_x, two_grp, hidden_groups, config mismatch, and a
//! partition inside one group healing while another group is untouched;
//! and, on sans-IO cores, a node whose definition lists nodes that do not
//! count it (never left in limbo).

mod common;

use std::io::Write;

use cohort_registry::core::auth::Cookie;
use cohort_registry::core::cluster::ClusterConfig;
use cohort_registry::core::global_group::{
    GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsInfo, Publish,
};
use cohort_registry::core::time::Time;
use cohort_registry::core::{CoreConfig, NodeCore};
use cohort_registry::{GroupNodeEvent, Message, Node, NodeName, StartError, Where};
use common::corenet::CoreNet;
use common::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn n(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}

fn config(groups: &[(&str, Publish, &[&str])]) -> GlobalGroupsConfig {
    GlobalGroupsConfig::new(
        groups
            .iter()
            .map(|(name, p, nodes)| GlobalGroupDef::new(*name, *p, nodes.iter().map(|s| n(s)))),
    )
}

async fn start_in(name: &str, cfg: &GlobalGroupsConfig) -> Node {
    builder(name)
        .global_groups(cfg.clone())
        .start()
        .await
        .expect("node starts")
}

async fn next_group_event(rx: &mut cohort_registry::EventStream<GroupNodeEvent>) -> GroupNodeEvent {
    within("a monitor_nodes event", rx.recv())
        .await
        .expect("stream open")
        .expect("no events missed")
}

#[tokio::test]
async fn no_config_is_one_group_of_every_node() {
    let mut nodes = Vec::new();
    for i in 0..7 {
        nodes.push(start(&format!("n{i}@127.0.0.1")).await);
    }
    let mut mon = nodes[0].monitor_nodes();
    for node in &nodes[1..] {
        node.connect(&nodes[0].local_addr()).await.unwrap();
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_full_mesh(&refs).await;
    let mut all: Vec<NodeName> = nodes.iter().map(|x| x.name().clone()).collect();
    all.sort();
    for node in &nodes {
        assert_eq!(node.own_nodes(), all);
        assert_eq!(node.global_groups(), None);
        assert_eq!(node.global_group_info().state, "no_conf");
    }
    let mut ups = Vec::new();
    for _ in 1..7 {
        match next_group_event(&mut mon).await {
            GroupNodeEvent::Up(x) => ups.push(x),
            other => panic!("unexpected {other:?}"),
        }
    }
    ups.sort();
    assert_eq!(ups, all[1..].to_vec());
    // Stop and restart one node: down, then up again.
    let six = nodes.pop().unwrap();
    let name = six.name().clone();
    six.shutdown().await;
    assert_eq!(
        next_group_event(&mut mon).await,
        GroupNodeEvent::Down(name.clone())
    );
    let again = start(name.as_str()).await;
    again.connect(&nodes[0].local_addr()).await.unwrap();
    assert_eq!(next_group_event(&mut mon).await, GroupNodeEvent::Up(name));
    assert_eq!(nodes[0].global_group_monitors(), 1);
}

#[tokio::test]
async fn bad_configurations_stop_the_node_with_a_message() {
    let twice = config(&[
        ("g1", Publish::Normal, &["a@127.0.0.1", "b@127.0.0.1"]),
        ("g2", Publish::Normal, &["b@127.0.0.1"]),
    ]);
    let err = builder("a@127.0.0.1")
        .global_groups(twice)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Groups(_)));
    assert!(
        err.to_string().contains("b@127.0.0.1") && err.to_string().contains("g2"),
        "{err}"
    );
    let dup = config(&[
        ("g1", Publish::Normal, &["a@127.0.0.1"]),
        ("g1", Publish::Hidden, &[]),
    ]);
    let err = builder("a@127.0.0.1")
        .global_groups(dup)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("g1"), "{err}");
    let outside = config(&[("g1", Publish::Normal, &["x@127.0.0.1"])]);
    let err = builder("a@127.0.0.1")
        .global_groups(outside)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in any group"), "{err}");
    assert_eq!(
        "weird".parse::<Publish>().unwrap_err(),
        "unknown publish type \"weird\" (expected \"normal\" or \"hidden\")"
    );
}

#[tokio::test]
async fn one_group_names_behave_as_global() {
    let cfg = config(&[(
        "g1",
        Publish::Normal,
        &["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"],
    )]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let b = start_in("b@127.0.0.1", &cfg).await;
    let c = start_in("c@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    wait_for("synced", || {
        a.global_group_info().synced_nodes == vec![n("b@127.0.0.1"), n("c@127.0.0.1")]
    })
    .await;
    let mut p = a.spawn();
    a.names().register("test", p.pid()).await.unwrap();
    let other = b.spawn();
    assert!(
        b.names().register("test", other.pid()).await.is_err(),
        "duplicate refused"
    );
    wait_for("c sees it", || {
        c.names().whereis("test") == Some(p.pid().clone())
    })
    .await;
    assert_eq!(
        c.send_at(None, "test", "hello").await,
        Some(p.pid().clone())
    );
    assert!(matches!(next(&mut p).await, Message::Data { .. }));
    b.names().re_register("test", other.pid()).await.unwrap();
    wait_for("re_register seen", || {
        c.names().whereis("test") == Some(other.pid().clone())
    })
    .await;
    b.names().unregister("test").await.unwrap();
    wait_for("unregistered", || {
        a.names().whereis("test").is_none() && c.names().whereis("test").is_none()
    })
    .await;
    let q = c.spawn();
    c.names().register("on_c", q.pid()).await.unwrap();
    wait_for("a sees on_c", || a.names().whereis("on_c").is_some()).await;
    std::mem::forget(q);
    c.shutdown().await;
    wait_for("node stop releases names", || {
        a.names().whereis("on_c").is_none()
    })
    .await;
    let info = a.global_group_info();
    assert_eq!(info.state, "synced");
    assert_eq!(info.own_group_name.as_deref(), Some("g1"));
    assert_eq!(info.no_contact, vec![n("c@127.0.0.1")]);
}

#[tokio::test]
async fn staggered_start_names_reach_late_joiners() {
    let cfg = config(&[(
        "g1",
        Publish::Normal,
        &["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"],
    )]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let p = a.spawn();
    a.names().register("early", p.pid()).await.unwrap();
    let b = start_in("b@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_for("b learns early", || {
        b.names().whereis("early") == Some(p.pid().clone())
    })
    .await;
    let c = start_in("c@127.0.0.1", &cfg).await;
    c.connect(&b.local_addr()).await.unwrap();
    wait_for("c learns early", || {
        c.names().whereis("early") == Some(p.pid().clone())
    })
    .await;
}

/// Three groups (g3 empty): the same name in two groups; Where by group or
/// node; monitor_nodes sees own-group nodes only.
#[tokio::test]
async fn two_groups_have_separate_name_spaces() {
    let cfg = config(&[
        ("g1", Publish::Normal, &["a@127.0.0.1", "b@127.0.0.1"]),
        ("g2", Publish::Normal, &["c@127.0.0.1", "d@127.0.0.1"]),
        ("g3", Publish::Normal, &[]),
    ]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let mut mon = a.monitor_nodes();
    let b = start_in("b@127.0.0.1", &cfg).await;
    let c = start_in("c@127.0.0.1", &cfg).await;
    let d = start_in("d@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    d.connect(&c.local_addr()).await.unwrap();
    // A cross-group connection, as a seed for queries.
    a.connect(&c.local_addr()).await.unwrap();
    assert_eq!(
        next_group_event(&mut mon).await,
        GroupNodeEvent::Up(n("b@127.0.0.1"))
    );
    assert_eq!(
        a.global_groups(),
        Some(("g1".to_string(), vec!["g2".to_string(), "g3".to_string()]))
    );
    assert_eq!(a.own_nodes(), vec![n("a@127.0.0.1"), n("b@127.0.0.1")]);
    let (pa, pc) = (a.spawn(), c.spawn());
    a.names().register("same", pa.pid()).await.unwrap();
    c.names().register("same", pc.pid()).await.unwrap();
    let mut pd = d.spawn();
    d.names().register("only_g2", pd.pid()).await.unwrap();
    wait_for("b sees g1's", || {
        b.names().whereis("same") == Some(pa.pid().clone())
    })
    .await;
    wait_for("d sees g2's", || {
        d.names().whereis("same") == Some(pc.pid().clone())
    })
    .await;
    wait_for("c sees only_g2", || c.names().whereis("only_g2").is_some()).await;
    assert_eq!(
        a.names().whereis("only_g2"),
        None,
        "g2's names never replicate into g1"
    );
    // Own-group meshing only: b never connected to c or d by itself.
    assert_eq!(b.nodes(), vec![n("a@127.0.0.1")]);
    // Where-scoped lookups (they connect to the other group as needed).
    assert_eq!(
        a.whereis_at(Some(&Where::Group("g2".into())), "same").await,
        Some(pc.pid().clone())
    );
    assert_eq!(
        a.whereis_at(Some(&Where::Node(n("d@127.0.0.1"))), "same")
            .await,
        Some(pc.pid().clone())
    );
    assert_eq!(
        a.whereis_at(None, "same").await,
        Some(pa.pid().clone()),
        "own group first"
    );
    assert_eq!(
        b.whereis_at(None, "only_g2").await,
        Some(pd.pid().clone()),
        "then other groups"
    );
    assert_eq!(
        a.whereis_at(Some(&Where::Group("g3".into())), "same").await,
        None
    );
    assert_eq!(
        a.registered_names_at(&Where::Group("g2".into())).await,
        vec!["only_g2".to_string(), "same".to_string()]
    );
    assert_eq!(
        a.registered_names_at(&Where::Node(n("a@127.0.0.1"))).await,
        vec!["same".to_string()]
    );
    assert_eq!(
        a.send_at(Some(&Where::Group("g2".into())), "only_g2", "hi")
            .await,
        Some(pd.pid().clone())
    );
    assert!(matches!(next(&mut pd).await, Message::Data { .. }));
    // Sessions with the other group's nodes raise no monitor_nodes event.
    assert!(mon.try_recv().is_none());
}

#[tokio::test]
async fn hidden_group_connections_are_not_listed() {
    let cfg = config(&[
        ("visible", Publish::Normal, &["a@127.0.0.1", "b@127.0.0.1"]),
        ("shadow", Publish::Hidden, &["h@127.0.0.1"]),
    ]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let b = start_in("b@127.0.0.1", &cfg).await;
    let h = start_in("h@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    h.connect(&a.local_addr()).await.unwrap();
    let pb = b.spawn();
    b.names().register("svc", pb.pid()).await.unwrap();
    wait_for("a sees svc", || a.names().whereis("svc").is_some()).await;
    // Cross-group traffic from the hidden node.
    assert_eq!(
        h.whereis_at(Some(&Where::Group("visible".into())), "svc")
            .await,
        Some(pb.pid().clone())
    );
    assert_eq!(
        a.nodes(),
        vec![n("b@127.0.0.1")],
        "the hidden node is not listed"
    );
    assert_eq!(a.nodes_hidden(), vec![n("h@127.0.0.1")]);
    assert!(h.nodes().is_empty());
    assert_eq!(h.nodes_hidden(), vec![n("a@127.0.0.1")]);
    assert_eq!(h.names().whereis("svc"), None, "never synced");
    assert!(
        !b.nodes().contains(&n("h@127.0.0.1")) && b.nodes_hidden().is_empty(),
        "never meshed"
    );
}

#[tokio::test]
async fn a_node_with_another_definition_ends_in_sync_error() {
    let good = config(&[(
        "g1",
        Publish::Normal,
        &["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"],
    )]);
    let other = config(&[(
        "g1",
        Publish::Normal,
        &["a@127.0.0.1", "c@127.0.0.1", "x@127.0.0.1"],
    )]);
    let a = start_in("a@127.0.0.1", &good).await;
    let b = start_in("b@127.0.0.1", &good).await;
    let c = start_in("c@127.0.0.1", &other).await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    let pc = c.spawn();
    c.names().register("from_c", pc.pid()).await.unwrap();
    let pa = a.spawn();
    a.names().register("from_a", pa.pid()).await.unwrap();
    a.global_group_sync().await;
    let info = a.global_group_info();
    assert_eq!(info.synced_nodes, vec![n("b@127.0.0.1")]);
    assert_eq!(info.sync_error, vec![n("c@127.0.0.1")]);
    wait_for("b has a's name", || b.names().whereis("from_a").is_some()).await;
    assert_eq!(a.names().whereis("from_c"), None, "never merged");
    assert_eq!(c.names().whereis("from_a"), None, "never merged");
    assert_eq!(a.own_nodes(), vec![n("a@127.0.0.1"), n("b@127.0.0.1")]);
}

#[tokio::test]
async fn a_partition_inside_one_group_heals_while_another_is_untouched() {
    let cfg = config(&[
        (
            "g1",
            Publish::Normal,
            &["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"],
        ),
        ("g2", Publish::Normal, &["d@127.0.0.1", "e@127.0.0.1"]),
    ]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let b = start_in("b@127.0.0.1", &cfg).await;
    let c = start_in("c@127.0.0.1", &cfg).await;
    let d = start_in("d@127.0.0.1", &cfg).await;
    let e = start_in("e@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    e.connect(&d.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    wait_full_mesh(&[&d, &e]).await;
    let pd = d.spawn();
    d.names().register("g2_name", pd.pid()).await.unwrap();
    wait_for("e sees g2_name", || e.names().whereis("g2_name").is_some()).await;
    // c is cut off from a and b.
    c.block(a.name()).await;
    c.block(b.name()).await;
    wait_for("split", || {
        a.nodes() == vec![n("b@127.0.0.1")] && c.nodes().is_empty()
    })
    .await;
    let (pa, pc) = (a.spawn(), c.spawn());
    a.names().register("ab_side", pa.pid()).await.unwrap();
    c.names().register("c_side", pc.pid()).await.unwrap();
    c.unblock(a.name()).await;
    c.unblock(b.name()).await;
    wait_full_mesh(&[&a, &b, &c]).await;
    for x in [&a, &b, &c] {
        wait_for("names merged in g1", || {
            x.names().whereis("ab_side").is_some() && x.names().whereis("c_side").is_some()
        })
        .await;
        assert_eq!(x.names().whereis("g2_name"), None);
    }
    assert_eq!(d.nodes(), vec![n("e@127.0.0.1")]);
    assert_eq!(e.names().whereis("g2_name"), Some(pd.pid().clone()));
    assert_eq!(e.names().whereis("ab_side"), None);
}

#[tokio::test]
async fn scopes_stay_in_the_own_group_unless_configured_cluster_wide() {
    let cfg = config(&[
        ("g1", Publish::Normal, &["a@127.0.0.1"]),
        ("g2", Publish::Normal, &["b@127.0.0.1"]),
        ("g3", Publish::Hidden, &["h@127.0.0.1"]),
    ]);
    let a = start_in("a@127.0.0.1", &cfg).await;
    let b = start_in("b@127.0.0.1", &cfg).await;
    let h = start_in("h@127.0.0.1", &cfg).await;
    b.connect(&a.local_addr()).await.unwrap();
    h.connect(&a.local_addr()).await.unwrap();
    let (wide_a, wide_b, wide_h) = (
        a.scope_with("wide", cohort_registry::Span::Cluster),
        b.scope_with("wide", cohort_registry::Span::Cluster),
        h.scope_with("wide", cohort_registry::Span::Cluster),
    );
    let (pa, pb, ph) = (a.spawn(), b.spawn(), h.spawn());
    wide_a.join("g", pa.pid()).unwrap();
    wide_b.join("g", pb.pid()).unwrap();
    wide_h.join("g", ph.pid()).unwrap();
    a.pg().join("g", pa.pid()).unwrap();
    b.pg().join("g", pb.pid()).unwrap();
    let mut both = vec![pa.pid().clone(), pb.pid().clone()];
    both.sort();
    wait_for("the cluster-wide scope crosses groups", || {
        let mut v = b.scope("wide").members("g").to_vec();
        v.sort();
        v == both
    })
    .await;
    let mut on_a = wide_a.members("g").to_vec();
    on_a.sort();
    assert_eq!(on_a, both, "the hidden node's member never replicates");
    assert_eq!(wide_h.members("g").to_vec(), vec![ph.pid().clone()]);
    assert_eq!(
        a.pg().members("g").to_vec(),
        vec![pa.pid().clone()],
        "default scopes stay in the own group"
    );
    assert_eq!(b.pg().members("g").to_vec(), vec![pb.pid().clone()]);
    // Losing the session drops the other group's members from the wide scope.
    b.shutdown().await;
    wait_for("b's member gone", || {
        wide_a.members("g").to_vec() == vec![pa.pid().clone()]
    })
    .await;
}

/// Sans-IO cores named `names`, node `i` configured with `cfgs[i]`.
fn core_net(names: &[&str], cfgs: &[&GlobalGroupsConfig]) -> CoreNet {
    let mut net = CoreNet::new(names);
    for (i, (name, cfg)) in names.iter().zip(cfgs).enumerate() {
        net.nodes[i] = NodeCore::new(
            CoreConfig {
                name: n(name),
                creation: 100 + i as u32,
                listen: Some(name.to_string()),
                cookie: Cookie::new("c"),
                cluster: ClusterConfig {
                    groups: (*cfg).clone(),
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

fn core_info(net: &CoreNet, i: usize) -> GlobalGroupsInfo {
    net.nodes[i].groups().info(&[])
}

/// Every node of `info`'s own group other than `me` is in exactly one of
/// synced_nodes, sync_error, no_contact.
fn assert_partitioned(me: &str, info: &GlobalGroupsInfo) {
    for x in &info.own_group_nodes {
        if x.as_str() == me {
            continue;
        }
        let k = [&info.synced_nodes, &info.sync_error, &info.no_contact]
            .iter()
            .filter(|l| l.contains(x))
            .count();
        assert_eq!(k, 1, "{me}: {x} is in {k} of the three lists: {info:?}");
    }
}

thread_local! {
    /// The log lines of this thread while [`with_logs`] runs.
    static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Writes into this thread's [`CAPTURED`] buffer, if one is open.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| {
            if let Some(v) = c.borrow_mut().as_mut() {
                v.extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The warnings of `logs` saying a peer's group definition differs.
fn definition_warnings(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("WARN") && l.contains("differs from ours"))
        .collect()
}

fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    // One process-wide subscriber, set once, writing to the calling thread's
    // buffer. A thread-local `with_default` subscriber lost events: tracing
    // caches each call site's interest process-wide, and a test thread
    // without a subscriber that reaches the call site first caches "never"
    // (seen in CI: no warning captured).
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let sub = tracing_subscriber::fmt()
            .with_writer(|| ThreadCapture)
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("no other global subscriber");
    });
    // A call site registered by another thread while the global subscriber
    // was being set may still hold the interest it had before.
    tracing::callsite::rebuild_interest_cache();
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let bytes = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, String::from_utf8(bytes).unwrap())
}

/// The case: `e` lists `g1 = [a, b, e]`, `a` and `b` list
/// `g1 = [a, b]`. `a` and `b` do not count `e` in their group, yet answer
/// its check (OTP: `config_error`), so `e` lists both under `sync_error`
/// instead of in none of the three lists.
#[test]
fn a_node_listing_nodes_that_do_not_count_it_puts_them_in_sync_error() {
    let ab = config(&[("g1", Publish::Normal, &["a@h", "b@h"])]);
    let abe = config(&[("g1", Publish::Normal, &["a@h", "b@h", "e@h"])]);
    let mut net = core_net(&["a@h", "b@h", "e@h"], &[&ab, &ab, &abe]);
    let ((), logs) = with_logs(|| {
        net.connect(1, 0);
        // e connects to a and, through a's peer list, to b.
        net.connect(2, 0);
        for i in 0..3 {
            assert_partitioned(net.nodes[i].name().as_str(), &core_info(&net, i));
        }
    });
    let e = core_info(&net, 2);
    assert_eq!(e.own_group_name.as_deref(), Some("g1"));
    assert_eq!(e.sync_error, vec![n("a@h"), n("b@h")], "{e:?}");
    assert!(
        e.synced_nodes.is_empty() && e.no_contact.is_empty(),
        "{e:?}"
    );
    // a and b stay synced with each other; e is not in their group at all.
    assert_eq!(core_info(&net, 0).synced_nodes, vec![n("b@h")]);
    assert_eq!(core_info(&net, 1).synced_nodes, vec![n("a@h")]);
    assert!(core_info(&net, 0).sync_error.is_empty());
    // One warning on e per peer, naming both definitions' group names.
    let warns = definition_warnings(&logs);
    assert_eq!(warns.len(), 2, "{logs}");
    for w in &warns {
        assert!(
            w.contains("ours=\"g1\"") && w.contains("theirs=\"g1\""),
            "{w}"
        );
        assert!(w.contains("e@h"), "{w}");
    }
    // A sync is answered at once, and changes nothing.
    let frames = net.sent.len();
    net.nodes[2].groups_sync(1 << 62, net.now);
    net.settle();
    assert!(net.sent.len() > frames);
    assert_eq!(core_info(&net, 2).sync_error, vec![n("a@h"), n("b@h")]);
    assert!(
        net.seen[2].iter().any(|fx| matches!(
            fx,
            cohort_registry::core::Effect::Groups(
                cohort_registry::core::global_group::GlobalGroupsEffect::Synced { .. }
            )
        )),
        "the sync completed"
    );
}

/// A node without configuration answers a check too (OTP: `config_error`
/// from a node with no `global_groups`): the asker lists it under
/// `sync_error`, and the answer is never answered again.
#[test]
fn a_node_without_configuration_answers_a_check_with_a_mismatch() {
    let ab = config(&[("g1", Publish::Normal, &["a@h", "b@h"])]);
    let none = GlobalGroupsConfig::default();
    let mut net = core_net(&["a@h", "b@h"], &[&ab, &none]);
    let ((), logs) = with_logs(|| net.connect(1, 0));
    let a = core_info(&net, 0);
    assert_eq!(a.sync_error, vec![n("b@h")], "{a:?}");
    assert_partitioned("a@h", &a);
    assert!(
        logs.contains("ours=\"g1\"") && logs.contains("theirs=\"none"),
        "{logs}"
    );
    let checks = net
        .sent
        .iter()
        .filter(|(_, f)| matches!(f, cohort_registry::core::proto::Frame::GlobalGroup(_)))
        .count();
    assert_eq!(checks, 2, "one check, one answer");
}

/// The same case over loopback TCP, through the runtime's `info`.
#[tokio::test]
async fn a_node_listing_nodes_that_do_not_count_it_over_tcp() {
    let ab = config(&[("g1", Publish::Normal, &["a@127.0.0.1", "b@127.0.0.1"])]);
    let abe = config(&[(
        "g1",
        Publish::Normal,
        &["a@127.0.0.1", "b@127.0.0.1", "e@127.0.0.1"],
    )]);
    let a = start_in("a@127.0.0.1", &ab).await;
    let b = start_in("b@127.0.0.1", &ab).await;
    let e = start_in("e@127.0.0.1", &abe).await;
    b.connect(&a.local_addr()).await.unwrap();
    e.connect(&a.local_addr()).await.unwrap();
    wait_for("e lists a and b under sync_error", || {
        e.global_group_info().sync_error == vec![n("a@127.0.0.1"), n("b@127.0.0.1")]
    })
    .await;
    let info = e.global_group_info();
    assert!(info.synced_nodes.is_empty() && info.no_contact.is_empty());
    e.global_group_sync().await;
    assert_eq!(
        e.global_group_info().sync_error,
        vec![n("a@127.0.0.1"), n("b@127.0.0.1")]
    );
    assert_eq!(e.own_nodes(), vec![n("e@127.0.0.1")]);
    assert_eq!(a.global_group_info().synced_nodes, vec![n("b@127.0.0.1")]);
}

/// Two nodes that count each other but hold different definitions compare
/// digests, then send each other their definitions: each logs one
/// warning naming both definitions' nodes, and lists the other under
/// `sync_error`.
#[test]
fn differing_definitions_are_named_in_one_warning_on_each_side() {
    let ab = config(&[("g1", Publish::Normal, &["a@h", "b@h"])]);
    let abx = config(&[("g1", Publish::Normal, &["a@h", "b@h", "x@h"])]);
    let mut net = core_net(&["a@h", "b@h"], &[&ab, &abx]);
    let ((), logs) = with_logs(|| net.connect(1, 0));
    assert_eq!(core_info(&net, 0).sync_error, vec![n("b@h")]);
    assert_eq!(core_info(&net, 1).sync_error, vec![n("a@h")]);
    let warns = definition_warnings(&logs);
    assert_eq!(warns.len(), 2, "{logs}");
    for w in &warns {
        assert!(w.contains("x@h"), "the warning names both node lists: {w}");
    }
}
