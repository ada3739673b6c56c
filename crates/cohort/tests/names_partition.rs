//! Netsplits: OTP global_SUITE's basic_partition, basic_name_partition,
//! advanced_partition (every loss policy and a custom rank) and
//! simple_disconnect, each in locked and eventual mode.

mod common;
mod names_util;

use std::cmp::Ordering;

use cohort_registry::core::names::{LossPolicy, Mode, NameEvent, NamesConfig, TableConfig};
use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{ExitReason, Message, Node, Process};
use common::*;
use names_util::*;

const MODES: [Mode; 2] = [Mode::Locked, Mode::Eventual];

async fn heal(net: &MemNetwork, nodes: &[Node]) {
    net.heal();
    wait_full_mesh(&nodes.iter().collect::<Vec<_>>()).await;
}

fn killed(name: &str) -> Message {
    Message::Exit {
        reason: ExitReason::Killed(format!("name conflict: {name}")),
    }
}

/// Registers and waits until the node's side has seen it, so Lamport
/// stamps follow the test's order on both sides alike.
async fn reg(n: &Node, name: &str, p: &Process) {
    n.register(name, p.pid()).await.unwrap();
    n.names().sync().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn basic_partition_unites_both_sides_after_heal() {
    for mode in MODES {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem", "d@mem"], cfg(mode)).await;
        let all: Vec<_> = nodes.iter().collect();
        let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
        let p1 = a.spawn();
        reg(a, "n1", &p1).await;
        split(&net, &[a, b], &[c, d]).await;
        let (p2, p3) = (b.spawn(), c.spawn());
        reg(b, "n2", &p2).await;
        reg(c, "n3", &p3).await;
        wait_views(&[a, b], &[("n1", p1.pid()), ("n2", p2.pid())]).await;
        wait_views(&[c, d], &[("n3", p3.pid())]).await;
        heal(&net, &nodes).await;
        wait_views(
            &all,
            &[("n1", p1.pid()), ("n2", p2.pid()), ("n3", p3.pid())],
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn basic_name_partition_keeps_one_winner_per_name_everywhere() {
    for mode in MODES {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem", "d@mem"], cfg(mode)).await;
        let all: Vec<_> = nodes.iter().collect();
        let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
        split(&net, &[a, b], &[c, d]).await;
        let mut ps: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
        // The same names on both sides, in the same order: equal stamps,
        // so the lower node name (a < c, b < d) wins.
        reg(a, "x", &ps[0]).await;
        reg(c, "x", &ps[2]).await;
        reg(b, "y", &ps[1]).await;
        reg(d, "y", &ps[3]).await;
        wait_views(&[a, b], &[("x", ps[0].pid()), ("y", ps[1].pid())]).await;
        wait_views(&[c, d], &[("x", ps[2].pid()), ("y", ps[3].pid())]).await;
        heal(&net, &nodes).await;
        wait_views(&all, &[("x", ps[0].pid()), ("y", ps[1].pid())]).await;
        assert_eq!(next(&mut ps[2]).await, killed("x"), "{mode:?}");
        assert_eq!(next(&mut ps[3]).await, killed("y"), "{mode:?}");
        assert!(a.is_alive(ps[0].pid()) && b.is_alive(ps[1].pid()));
    }
}

#[tokio::test(start_paused = true)]
async fn the_earliest_claim_wins_after_heal() {
    for mode in MODES {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem"], cfg(mode)).await;
        let all: Vec<_> = nodes.iter().collect();
        let (a, b) = (&nodes[0], &nodes[1]);
        split(&net, &[a], &[b]).await;
        let mut pa = a.spawn();
        let pb = b.spawn();
        // b claims first; a claims after three claims of its own, so its
        // claim is later although a's name ranks lower.
        reg(b, "x", &pb).await;
        bump_clock(a, 3).await;
        reg(a, "x", &pa).await;
        heal(&net, &nodes).await;
        wait_views(&all, &[("x", pb.pid())]).await;
        assert_eq!(next(&mut pa).await, killed("x"), "{mode:?}");
    }
}

/// Highest node name first: the opposite of the default tie-break.
fn by_node_desc(
    x: &cohort_registry::core::names::Claim,
    y: &cohort_registry::core::names::Claim,
) -> Ordering {
    y.pid.node().cmp(x.pid.node())
}

#[tokio::test(start_paused = true)]
async fn advanced_partition_applies_each_policy_and_a_custom_rank() {
    for mode in MODES {
        let net = MemNetwork::default();
        let cfg = NamesConfig::empty()
            .table(TableConfig::new("global").mode(mode))
            .table(TableConfig::new("ranked").mode(mode).rank(by_node_desc));
        let hosts = [
            "a@mem", "b@mem", "c@mem", "d@mem", "e@mem", "f@mem", "g@mem", "h@mem",
        ];
        let nodes = mem_cluster(&net, &hosts, cfg).await;
        let all: Vec<_> = nodes.iter().collect();
        let mut events: Vec<_> = nodes.iter().map(|n| n.names().subscribe()).collect();
        split(&net, &all[..4], &all[4..]).await;
        let mut ps: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
        // Side 1 on a..d and side 2 on e..h do the same, in the same order.
        for side in [0, 4] {
            let n = |i: usize| &nodes[side + i];
            let p = |i: usize| ps[side + i].pid();
            n(0).register("kill", p(0)).await.unwrap();
            n(0).names().sync().await.unwrap();
            n(1).names()
                .register_with("notify", p(1), "", Some(LossPolicy::Notify))
                .await
                .unwrap();
            n(1).names().sync().await.unwrap();
            n(2).names()
                .register_with("drop", p(2), "", Some(LossPolicy::DropBoth))
                .await
                .unwrap();
            n(2).names().sync().await.unwrap();
            let ranked = n(3).names_table("ranked").unwrap();
            ranked.register("ranked", p(3)).await.unwrap();
            ranked.sync().await.unwrap();
        }
        heal(&net, &nodes).await;
        // kill and notify: side 1 (lower names) wins; drop: nobody.
        wait_views(&all, &[("kill", ps[0].pid()), ("notify", ps[1].pid())]).await;
        for n in &nodes {
            let ranked = n.names_table("ranked").unwrap();
            wait_for("the ranked name", || {
                ranked.whereis("ranked").as_ref() == Some(ps[7].pid())
                    && ranked.registered_names() == vec!["ranked".to_string()]
            })
            .await;
        }
        assert_eq!(next(&mut ps[4]).await, killed("kill"), "{mode:?}");
        assert_eq!(
            next(&mut ps[5]).await,
            Message::NameConflict {
                table: "global".into(),
                name: "notify".into(),
                winner: Some(ps[1].pid().clone())
            }
        );
        for i in [2, 6] {
            assert_eq!(
                next(&mut ps[i]).await,
                Message::NameConflict {
                    table: "global".into(),
                    name: "drop".into(),
                    winner: None
                }
            );
        }
        assert_eq!(next(&mut ps[3]).await, killed("ranked"), "{mode:?}");
        for i in [0, 1, 2, 5, 6, 7] {
            assert!(
                nodes[i].is_alive(ps[i].pid()),
                "{} runs ({mode:?})",
                ps[i].pid()
            );
        }
        for i in [3, 4] {
            assert!(!nodes[i].is_alive(ps[i].pid()));
        }
        // The claimants' nodes report their clash; others report what they
        // saw of it (a loser may retract before they meet it): a subset.
        let want = [
            (
                "drop".to_string(),
                None,
                ps[2].pid().clone(),
                LossPolicy::DropBoth,
            ),
            (
                "drop".to_string(),
                None,
                ps[6].pid().clone(),
                LossPolicy::DropBoth,
            ),
            (
                "kill".to_string(),
                Some(ps[0].pid().clone()),
                ps[4].pid().clone(),
                LossPolicy::Kill,
            ),
            (
                "notify".to_string(),
                Some(ps[1].pid().clone()),
                ps[5].pid().clone(),
                LossPolicy::Notify,
            ),
        ];
        let mine = |k: usize| -> Vec<_> {
            let me = nodes[k].name();
            want.iter()
                .filter(|(_, w, l, _)| l.node() == me || w.as_ref().is_some_and(|w| w.node() == me))
                .cloned()
                .collect()
        };
        for (k, ev) in events.iter_mut().enumerate() {
            let got: Vec<_> =
                std::iter::from_fn(|| ev.try_recv().map(|r| r.expect("no events missed")))
                    .filter_map(|e| match e {
                        NameEvent::ConflictResolved {
                            name,
                            winner,
                            loser,
                            action,
                        } => Some((name, winner, loser, action)),
                        _ => None,
                    })
                    .collect();
            for e in &got {
                assert!(
                    want.contains(e),
                    "{} reported {e:?} ({mode:?})",
                    nodes[k].name()
                );
            }
            let mut expected = mine(k);
            if [2, 6].contains(&k) {
                // Both drops are this node's clash.
                expected = want[..2].to_vec();
            }
            for e in &expected {
                assert!(
                    got.contains(e),
                    "{} missed {e:?} ({mode:?})",
                    nodes[k].name()
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn simple_disconnect_same_pid_on_both_sides_is_no_clash() {
    for mode in MODES {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(mode)).await;
        let all: Vec<_> = nodes.iter().collect();
        let mut events: Vec<_> = nodes.iter().map(|n| n.names().subscribe()).collect();
        let p = nodes[0].spawn();
        reg(&nodes[0], "x", &p).await;
        // One link drops; b loses a (and its names) while c keeps both.
        net.block_one_way("a", "b");
        net.block_one_way("b", "a");
        wait_for("a and b apart", || {
            nodes[1].nodes() == vec![nodes[2].name().clone()]
        })
        .await;
        wait_for("b forgets a's name", || nodes[1].whereis("x").is_none()).await;
        assert_eq!(nodes[2].whereis("x").as_ref(), Some(p.pid()));
        heal(&net, &nodes).await;
        wait_views(&all, &[("x", p.pid())]).await;
        assert!(nodes[0].is_alive(p.pid()));
        for ev in &mut events {
            let clashes =
                std::iter::from_fn(|| ev.try_recv().map(|r| r.expect("no events missed")))
                    .filter(|e| matches!(e, NameEvent::ConflictResolved { .. }))
                    .count();
            assert_eq!(clashes, 0, "{mode:?}");
        }
    }
}

/// An `unregister` of a name held on another node answers `Ok` only when
/// the holder's node says it retracted the claim. When the request or the
/// answer is lost on the way (here a one-way cut that the peer timeout has
/// not noticed yet), the caller is told the outcome is unknown, not `Ok`:
/// with the request lost the name stays, with the answer lost it went.
#[tokio::test(start_paused = true)]
async fn a_forwarded_unregister_without_an_answer_has_an_unknown_outcome() {
    for (from, to, applied) in [("b", "a", false), ("a", "b", true)] {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem"], cfg(Mode::Eventual)).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let p = a.spawn();
        reg(a, "svc", &p).await;
        wait_views(&[a, b], &[("svc", p.pid())]).await;
        net.block_one_way(from, to);
        let unknown = cohort_registry::NamesError::OutcomeUnknown { name: "svc".into() };
        assert_eq!(b.unregister("svc").await, Err(unknown), "{from}->{to} cut");
        let held = a.whereis("svc");
        assert_eq!(held.is_none(), applied, "{from}->{to} cut");
        heal(&net, &nodes).await;
        // The name stands where it stood on its node, now on both.
        match held {
            Some(pid) => wait_views(&[a, b], &[("svc", &pid)]).await,
            None => wait_views(&[a, b], &[]).await,
        }
    }
}
