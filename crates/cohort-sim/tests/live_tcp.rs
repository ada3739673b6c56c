//! The simulator's registry invariants on real nodes: five `cohort::Node`s
//! over loopback TCP in one runtime join groups and register names, are
//! split in two with `block`, change things on both sides, heal, and must
//! converge to exactly the expected views. Every wait has a deadline;
//! nothing sleeps to settle and nothing asserts on timing.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use cohort::{Node, NodeBuilder, PgEventKind, Pid, Process};

const DEADLINE: Duration = Duration::from_secs(20);

fn builder(name: &str) -> NodeBuilder {
    Node::builder()
        .name(name)
        .listen("127.0.0.1:0")
        .cookie("live-tcp")
        .tick_interval(Duration::from_millis(100))
        .peer_timeout(Duration::from_millis(600))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

fn sorted(mut v: Vec<Pid>) -> Vec<Pid> {
    v.sort();
    v
}

/// Every node in `side` sees exactly `want` in `group` and the others.
fn views_are(side: &[&Node], group: &str, want: &[Pid]) -> bool {
    let want = sorted(want.to_vec());
    side.iter()
        .all(|n| sorted(n.pg().members(group).to_vec()) == want)
}

fn meshed(side: &[&Node]) -> bool {
    side.iter().all(|n| {
        let mut want: Vec<_> = side
            .iter()
            .filter(|m| m.name() != n.name())
            .map(|m| m.name().clone())
            .collect();
        want.sort();
        let mut have = n.nodes();
        have.sort();
        have == want
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_heal_keeps_registry_invariants() {
    let mut nodes = Vec::new();
    for name in ["a@live", "b@live", "c@live", "d@live", "e@live"] {
        nodes.push(builder(name).start().await.expect("node starts"));
    }
    let addr0 = nodes[0].local_addr();
    for n in &nodes[1..] {
        within("connect", n.connect(&addr0))
            .await
            .expect("connects");
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_for("full mesh", || meshed(&all)).await;

    // Two processes per node in "g", the first also in "h"; the first
    // registers "name-<i>".
    let mut procs: Vec<Vec<Process>> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let ps = vec![n.spawn(), n.spawn()];
        let pids: Vec<Pid> = ps.iter().map(|p| p.pid().clone()).collect();
        n.pg().join_many("g", &pids).expect("local join");
        n.pg().join("h", &pids[0]).expect("local join");
        within("register", n.register(format!("name-{i}"), &pids[0]))
            .await
            .expect("free name");
        procs.push(ps);
    }
    let g_all: Vec<Pid> = procs.iter().flatten().map(|p| p.pid().clone()).collect();
    wait_for("every node sees every member", || {
        views_are(&all, "g", &g_all)
    })
    .await;
    wait_for("every node sees every name", || {
        all.iter().all(|n| {
            (0..5).all(|i| n.whereis(&format!("name-{i}")).as_ref() == Some(procs[i][0].pid()))
        })
    })
    .await;

    // A monitor on e: snapshot plus events must replay to e's view.
    let (mut mon, snap) = nodes[4].pg().monitor("g").expect("scope runs");
    let mut replay: BTreeMap<Pid, u32> = BTreeMap::new();
    for p in snap {
        *replay.entry(p).or_default() += 1;
    }

    // Split {a, b} | {c, d, e}.
    let (left, right) = nodes.split_at(2);
    for x in left {
        for y in right {
            x.block(y.name()).await;
            y.block(x.name()).await;
        }
    }
    let l: Vec<&Node> = left.iter().collect();
    let r: Vec<&Node> = right.iter().collect();
    let pids_of = |range: std::ops::Range<usize>, procs: &Vec<Vec<Process>>| -> Vec<Pid> {
        procs[range]
            .iter()
            .flatten()
            .map(|p| p.pid().clone())
            .collect()
    };
    // Detection: once each side processed the node-down, it shows only
    // its own side's members and names.
    wait_for("left sees only left", || {
        views_are(&l, "g", &pids_of(0..2, &procs))
    })
    .await;
    wait_for("right sees only right", || {
        views_are(&r, "g", &pids_of(2..5, &procs))
    })
    .await;
    wait_for("names split", || {
        l.iter().all(|n| n.whereis("name-3").is_none())
            && r.iter().all(|n| n.whereis("name-0").is_none())
    })
    .await;

    // Both sides change things: a clashing locked registration on each
    // side (both succeed: different partitions), and a process of d exits.
    let la = nodes[0].spawn();
    let rc = nodes[2].spawn();
    within("left claim", nodes[0].register("contested", la.pid()))
        .await
        .expect("free on the left");
    within("right claim", nodes[2].register("contested", rc.pid()))
        .await
        .expect("free on the right");
    let gone = procs[3].pop().expect("two processes").pid().clone();
    wait_for("exit seen on the right", || {
        r.iter()
            .all(|n| !n.pg().members("g").to_vec().contains(&gone))
    })
    .await;

    // Heal.
    for x in left {
        for y in right {
            x.unblock(y.name()).await;
            y.unblock(x.name()).await;
        }
    }
    wait_for("full mesh again", || meshed(&all)).await;
    let g_live: Vec<Pid> = procs.iter().flatten().map(|p| p.pid().clone()).collect();
    assert_eq!(g_live.len(), 9);
    wait_for("views are the union of live memberships", || {
        views_are(&all, "g", &g_live)
    })
    .await;
    let h_live: Vec<Pid> = procs.iter().map(|ps| ps[0].pid().clone()).collect();
    wait_for("h converges", || views_are(&all, "h", &h_live)).await;

    // Names: one owner of "contested", the same everywhere, alive; the
    // loser's own node killed it (default policy). Others unchanged.
    wait_for("contested settles", || {
        let owners: Vec<Option<Pid>> = all.iter().map(|n| n.whereis("contested")).collect();
        owners[0].is_some() && owners.iter().all(|o| o == &owners[0])
    })
    .await;
    let owner = nodes[0].whereis("contested").expect("settled");
    let (winner, loser, loser_node) = if &owner == la.pid() {
        (&la, &rc, &nodes[2])
    } else {
        assert_eq!(&owner, rc.pid(), "the owner is one of the claimants");
        (&rc, &la, &nodes[0])
    };
    let winner_node = if &owner == la.pid() {
        &nodes[0]
    } else {
        &nodes[2]
    };
    assert!(winner_node.is_alive(winner.pid()));
    wait_for("the loser is killed", || !loser_node.is_alive(loser.pid())).await;
    // The other names reach every node once the heal's exchange is done
    // (the contested one settling first says nothing about the rest).
    wait_for("every name on every node", || {
        all.iter().all(|n| {
            n.registered_names().len() == 6
                && procs
                    .iter()
                    .enumerate()
                    .all(|(i, ps)| n.whereis(&format!("name-{i}")).as_ref() == Some(ps[0].pid()))
        })
    })
    .await;
    for n in &all {
        for (i, ps) in procs.iter().enumerate() {
            assert_eq!(
                n.whereis(&format!("name-{i}")).as_ref(),
                Some(ps[0].pid()),
                "name-{i} on {}",
                n.name()
            );
        }
        // One name per live holder: five plus the contested one.
        assert_eq!(n.registered_names().len(), 6, "on {}", n.name());
    }

    // The monitor on e saw every change exactly once: replaying the
    // snapshot and the events gives e's view.
    let e_view = sorted(nodes[4].pg().members("g").to_vec());
    wait_for("monitor replay matches the view", || {
        while let Some(ev) = mon.try_recv() {
            let ev = ev.expect("the monitor missed no events");
            for p in ev.pids {
                match ev.kind {
                    PgEventKind::Join => *replay.entry(p).or_default() += 1,
                    PgEventKind::Leave => {
                        let c = replay.get_mut(&p).expect("a leave follows a join");
                        *c -= 1;
                        if *c == 0 {
                            replay.remove(&p);
                        }
                    }
                    PgEventKind::Meta => {}
                    other => panic!("a group event kind this test does not know: {other:?}"),
                }
            }
        }
        let flat: Vec<Pid> = replay
            .iter()
            .flat_map(|(p, &c)| std::iter::repeat_n(p.clone(), c as usize))
            .collect();
        flat == e_view
    })
    .await;

    for n in &nodes {
        n.shutdown().await;
    }
}
