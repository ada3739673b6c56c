//! `cohort demo`: five nodes in two global groups on loopback, shown phase
//! by phase: meshing, process groups, names, a netsplit with a name clash,
//! the heal and how the clash was settled. Exits 0 only if every check holds.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cohort::{ExitReason, Message, Node, NodeName, Pid, Process, Where};
use cohort::{GlobalGroupDef, GlobalGroupsConfig, Publish};

const COOKIE: &str = "cohort-demo-cookie";
const DEADLINE: Duration = Duration::from_secs(15);

fn n(s: &str) -> NodeName {
    NodeName::new(s).expect("valid name")
}

fn groups() -> GlobalGroupsConfig {
    let at = |names: &[&str]| {
        names
            .iter()
            .map(|x| n(&format!("{x}@127.0.0.1")))
            .collect::<Vec<_>>()
    };
    GlobalGroupsConfig::new([
        GlobalGroupDef::new("g1", Publish::Normal, at(&["a", "b", "c"])),
        GlobalGroupDef::new("g2", Publish::Normal, at(&["d", "e"])),
    ])
}

async fn start(name: &str) -> Result<Node> {
    Node::builder()
        .name(format!("{name}@127.0.0.1"))
        .listen("127.0.0.1:0")
        .cookie(COOKIE)
        .tick_interval(Duration::from_millis(200))
        .peer_timeout(Duration::from_millis(1000))
        .global_groups(groups())
        .start()
        .await
        .with_context(|| format!("starting {name}"))
}

/// Polls `probe` until it holds, for at most [`DEADLINE`]: every check of
/// the demo waits for its condition (replication reaches peers after the
/// call that caused it returns). `probe` says what it saw when it fails.
async fn wait(what: &str, mut probe: impl FnMut() -> Result<(), String>) -> Result<()> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(saw) if start.elapsed() >= DEADLINE => {
                bail!("timed out after {DEADLINE:?} waiting for {what}; last seen: {saw}")
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// A check of the demo: waits for `probe` like [`wait`], prints `[ok]` or
/// `[FAILED]` with what it saw.
async fn check(what: &str, probe: impl FnMut() -> Result<(), String>) -> Result<()> {
    match wait(what, probe).await {
        Ok(()) => {
            crate::out::out!("  [ok] {what}");
            Ok(())
        }
        Err(e) => {
            crate::out::out!("  [FAILED] {what}: {e:#}");
            Err(e.context(format!("check failed: {what}")))
        }
    }
}

/// Ok when `got` is `want`, else what was seen instead.
fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got:?} (expected {want:?})"))
    }
}

/// Ok when every probe is.
fn all(probes: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    probes
        .into_iter()
        .collect::<Result<Vec<()>, String>>()
        .map(|_| ())
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(DEADLINE, f)
        .await
        .with_context(|| format!("timed out after {DEADLINE:?} waiting for {what}"))
}

fn names(v: &[NodeName]) -> String {
    v.iter()
        .map(|x| x.as_str().split('@').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted(mut v: Vec<Pid>) -> Vec<Pid> {
    v.sort();
    v
}

/// Runs the demo; fails if any check fails.
pub async fn run() -> Result<()> {
    crate::out::out!(
        "== 1/6 starting five nodes on loopback in two global groups: g1 = a, b, c; g2 = d, e"
    );
    let a = start("a").await?;
    let b = start("b").await?;
    let c = start("c").await?;
    let d = start("d").await?;
    let e = start("e").await?;
    for x in [&a, &b, &c, &d, &e] {
        crate::out::out!(
            "  {} on {} (creation {})",
            x.name(),
            x.local_addr(),
            x.creation()
        );
    }

    crate::out::out!("== 2/6 connecting b, c to a and e to d; each group meshes only with itself");
    b.connect(&a.local_addr()).await?;
    c.connect(&b.local_addr()).await?;
    e.connect(&d.local_addr()).await?;
    wait("g1 synced", || {
        all([&a, &b, &c].iter().map(|x| {
            let synced = x.global_group_info().synced_nodes;
            same(synced.len(), 2)
                .map_err(|_| format!("{} synced with [{}]", x.name(), names(&synced)))
        }))
    })
    .await?;
    wait("g2 synced", || {
        same(d.global_group_info().synced_nodes, vec![n("e@127.0.0.1")])
    })
    .await?;
    for x in [&a, &b, &c, &d, &e] {
        let info = x.global_group_info();
        crate::out::out!(
            "  {} in {}: synced with {}",
            x.name(),
            info.own_group_name.as_deref().unwrap_or("-"),
            names(&info.synced_nodes)
        );
    }
    check("a is connected to its own group only", || {
        same(a.nodes(), vec![n("b@127.0.0.1"), n("c@127.0.0.1")])
    })
    .await?;

    crate::out::out!("== 3/6 processes join the group `workers` and register names");
    let (w1, w2, w3) = (a.spawn(), c.spawn(), d.spawn());
    a.pg().join("workers", w1.pid())?;
    c.pg().join("workers", w2.pid())?;
    d.pg().join("workers", w3.pid())?;
    let db1 = b.spawn();
    b.names().register("db", db1.pid()).await?;
    let mut db2 = d.spawn();
    d.names().register("db", db2.pid()).await?;
    let g1_workers = sorted(vec![w1.pid().clone(), w2.pid().clone()]);
    check("each group has its own members and its own `db`", || {
        all([
            same(
                sorted(b.pg().members("workers").to_vec()),
                g1_workers.clone(),
            ),
            same(e.pg().members("workers").to_vec(), vec![w3.pid().clone()]),
            same(c.names().whereis("db").as_ref(), Some(db1.pid())),
            same(e.names().whereis("db").as_ref(), Some(db2.pid())),
        ])
    })
    .await?;
    crate::out::out!("  workers on b: {:?}", b.pg().members("workers").to_vec());
    crate::out::out!("  workers on e: {:?}", e.pg().members("workers").to_vec());
    crate::out::out!("  `db` is {} in g1 and {} in g2", db1.pid(), db2.pid());
    // Groups do not mesh; one explicit connection tells a where g2 is.
    a.connect(&d.local_addr()).await?;
    let g2 = Where::Group("g2".into());
    let found = a.whereis_at(Some(&g2), "db").await;
    crate::out::out!(
        "  a asks g2 for `db`: {}",
        found
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or("none".into())
    );
    check("a cross-group lookup finds g2's `db`", || {
        same(found.as_ref(), Some(db2.pid()))
    })
    .await?;
    let sent = a.send_at(Some(&g2), "db", "hello from g1").await;
    let got = within("the message on d", db2.recv()).await?;
    check("a cross-group send reaches g2's `db`", || {
        all([
            same(sent.as_ref(), Some(db2.pid())),
            match &got {
                Some(Message::Data { .. }) => Ok(()),
                other => Err(format!("d received {other:?}")),
            },
        ])
    })
    .await?;

    crate::out::out!(
        "== 4/6 netsplit: c is cut off from a and b; both sides claim the name `leader`"
    );
    c.block(a.name()).await;
    c.block(b.name()).await;
    check("a and b dropped c's entries; c dropped theirs", || {
        all([
            same(a.nodes().contains(c.name()), false)
                .map_err(|_| format!("a still connected to c: {}", names(&a.nodes()))),
            same(b.nodes().contains(c.name()), false)
                .map_err(|_| format!("b still connected to c: {}", names(&b.nodes()))),
            same(c.nodes(), vec![]),
            same(a.pg().members("workers").to_vec(), vec![w1.pid().clone()]),
            same(c.pg().members("workers").to_vec(), vec![w2.pid().clone()]),
        ])
    })
    .await?;
    let mut leader_ab = b.spawn();
    let mut leader_c = c.spawn();
    b.names().register("leader", leader_ab.pid()).await?;
    c.names().register("leader", leader_c.pid()).await?;
    let late = c.spawn();
    c.pg().join("workers", late.pid())?;
    crate::out::out!(
        "  b registered `leader` as {}; c registered it as {}",
        leader_ab.pid(),
        leader_c.pid()
    );
    check("each side holds its own `leader` while split", || {
        all([
            same(a.names().whereis("leader").as_ref(), Some(leader_ab.pid())),
            same(b.names().whereis("leader").as_ref(), Some(leader_ab.pid())),
            same(c.names().whereis("leader").as_ref(), Some(leader_c.pid())),
        ])
    })
    .await?;

    crate::out::out!("== 5/6 healing: c lifts the block; the nodes reconnect by themselves");
    c.unblock(a.name()).await;
    c.unblock(b.name()).await;
    wait("g1 meshed again", || {
        all([
            same(a.nodes().contains(c.name()), true),
            same(b.nodes().contains(c.name()), true),
            same(c.nodes(), vec![n("a@127.0.0.1"), n("b@127.0.0.1")]),
        ])
    })
    .await?;
    wait("one `leader` on every g1 node", || {
        let w = a.names().whereis("leader");
        all([
            w.as_ref().map(|_| ()).ok_or("no leader on a".to_string()),
            same(b.names().whereis("leader"), w.clone()),
            same(c.names().whereis("leader"), w.clone()),
        ])
    })
    .await?;
    let winner = a.names().whereis("leader").expect("checked");
    let (kept, lost): (&mut Process, &mut Process) = if &winner == leader_ab.pid() {
        (&mut leader_ab, &mut leader_c)
    } else {
        (&mut leader_c, &mut leader_ab)
    };
    crate::out::out!("  every g1 node agrees: `leader` is {}", kept.pid());
    let loser_pid = lost.pid().clone();
    let fate = within("the loser's exit", lost.recv()).await?;
    match &fate {
        Some(Message::Exit {
            reason: ExitReason::Killed(why),
        }) => crate::out::out!("  the losing claim {loser_pid} was killed on its own node: {why}"),
        other => bail!("the losing claim got {other:?} instead of being killed"),
    }
    check(
        "the clash was settled the same way on every node, and only the loser's node acted",
        || {
            all([
                same(a.names().whereis("leader").as_ref(), Some(kept.pid())),
                same(b.names().whereis("leader").as_ref(), Some(kept.pid())),
                same(c.names().whereis("leader").as_ref(), Some(kept.pid())),
            ])
        },
    )
    .await?;
    let all_workers = sorted(vec![w1.pid().clone(), w2.pid().clone(), late.pid().clone()]);
    check(
        "g1's `workers` hold the union of both sides, on every g1 node",
        || {
            all([&a, &b, &c].iter().map(|x| {
                same(
                    sorted(x.pg().members("workers").to_vec()),
                    all_workers.clone(),
                )
                .map_err(|saw| format!("on {}: {saw}", x.name()))
            }))
        },
    )
    .await?;

    crate::out::out!("== 6/6 g2 was never touched");
    check(
        "g2 has no `leader`: names never crossed the boundary",
        || same(e.names().whereis("leader"), None),
    )
    .await?;
    check("g2's `workers` still hold only g2's worker", || {
        same(e.pg().members("workers").to_vec(), vec![w3.pid().clone()])
    })
    .await?;
    check("g2's `db` is unchanged", || {
        same(d.names().whereis("db").as_ref(), Some(db2.pid()))
    })
    .await?;
    for x in [&a, &b, &c, &d, &e] {
        x.shutdown().await;
    }
    crate::out::out!("== all checks passed");
    Ok(())
}
