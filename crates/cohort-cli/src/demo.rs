//! `cohort demo`: five nodes in two global groups on loopback, shown phase
//! by phase: meshing, process groups, names, a netsplit with a name clash,
//! the heal and how the clash was settled. Exits 0 only if every check holds.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cohort::core::groups::{GroupDef, GroupsConfig, Publish};
use cohort::{ExitReason, Message, Node, NodeName, Pid, Process, Where};

const COOKIE: &str = "cohort-demo-cookie";
const DEADLINE: Duration = Duration::from_secs(15);

fn n(s: &str) -> NodeName {
    NodeName::new(s).expect("valid name")
}

fn groups() -> GroupsConfig {
    let at = |names: &[&str]| {
        names
            .iter()
            .map(|x| n(&format!("{x}@127.0.0.1")))
            .collect::<Vec<_>>()
    };
    GroupsConfig {
        groups: vec![
            GroupDef::new("g1", Publish::Normal, at(&["a", "b", "c"])),
            GroupDef::new("g2", Publish::Normal, at(&["d", "e"])),
        ],
    }
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

async fn until(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let t = tokio::time::Instant::now();
    while !cond() {
        if t.elapsed() > DEADLINE {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(DEADLINE, f)
        .await
        .with_context(|| format!("timed out waiting for {what}"))
}

fn check(ok: bool, what: &str) -> Result<()> {
    println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
    ensure!(ok, "check failed: {what}");
    Ok(())
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
    println!(
        "== 1/6 starting five nodes on loopback in two global groups: g1 = a, b, c; g2 = d, e"
    );
    let a = start("a").await?;
    let b = start("b").await?;
    let c = start("c").await?;
    let d = start("d").await?;
    let e = start("e").await?;
    for x in [&a, &b, &c, &d, &e] {
        println!(
            "  {} on {} (creation {})",
            x.name(),
            x.local_addr(),
            x.creation()
        );
    }

    println!("== 2/6 connecting b, c to a and e to d; each group meshes only with itself");
    b.connect(&a.local_addr()).await?;
    c.connect(&b.local_addr()).await?;
    e.connect(&d.local_addr()).await?;
    until("g1 synced", || {
        [&a, &b, &c]
            .iter()
            .all(|x| x.global_group_info().synced_nodes.len() == 2)
    })
    .await?;
    until("g2 synced", || {
        d.global_group_info().synced_nodes == vec![n("e@127.0.0.1")]
    })
    .await?;
    for x in [&a, &b, &c, &d, &e] {
        let info = x.global_group_info();
        println!(
            "  {} in {}: synced with {}",
            x.name(),
            info.own_group_name.as_deref().unwrap_or("-"),
            names(&info.synced_nodes)
        );
    }
    check(
        a.nodes() == vec![n("b@127.0.0.1"), n("c@127.0.0.1")],
        "a is connected to its own group only",
    )?;

    println!("== 3/6 processes join the group `workers` and register names");
    let (w1, w2, w3) = (a.spawn(), c.spawn(), d.spawn());
    a.pg().join("workers", w1.pid())?;
    c.pg().join("workers", w2.pid())?;
    d.pg().join("workers", w3.pid())?;
    let db1 = b.spawn();
    b.names().register("db", db1.pid()).await?;
    let mut db2 = d.spawn();
    d.names().register("db", db2.pid()).await?;
    let g1_workers = sorted(vec![w1.pid().clone(), w2.pid().clone()]);
    until("g1 sees its workers", || {
        sorted(b.pg().members("workers").to_vec()) == g1_workers
    })
    .await?;
    until("e sees g2's worker", || {
        e.pg().members("workers").to_vec() == vec![w3.pid().clone()]
    })
    .await?;
    until("db known in g1", || {
        c.names().whereis("db").as_ref() == Some(db1.pid())
    })
    .await?;
    until("db known in g2", || {
        e.names().whereis("db").as_ref() == Some(db2.pid())
    })
    .await?;
    println!("  workers on b: {:?}", b.pg().members("workers").to_vec());
    println!("  workers on e: {:?}", e.pg().members("workers").to_vec());
    println!("  `db` is {} in g1 and {} in g2", db1.pid(), db2.pid());
    check(true, "each group has its own members and its own `db`")?;
    // Groups do not mesh; one explicit connection tells a where g2 is.
    a.connect(&d.local_addr()).await?;
    let found = a.whereis_at(Some(&Where::Group("g2".into())), "db").await;
    println!(
        "  a asks g2 for `db`: {}",
        found
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or("none".into())
    );
    check(
        found.as_ref() == Some(db2.pid()),
        "a cross-group lookup finds g2's `db`",
    )?;
    let sent = a
        .send_at(Some(&Where::Group("g2".into())), "db", "hello from g1")
        .await;
    let got = within("the message on d", db2.recv()).await?;
    check(
        sent.as_ref() == Some(db2.pid()) && matches!(got, Some(Message::Data { .. })),
        "a cross-group send reaches g2's `db`",
    )?;

    println!("== 4/6 netsplit: c is cut off from a and b; both sides claim the name `leader`");
    c.block(a.name()).await;
    c.block(b.name()).await;
    until("the split", || {
        !a.nodes().contains(c.name()) && c.nodes().is_empty()
    })
    .await?;
    until("c's worker gone from a", || {
        a.pg().members("workers").to_vec() == vec![w1.pid().clone()]
    })
    .await?;
    check(true, "a and b dropped c's entries; c dropped theirs")?;
    let mut leader_ab = b.spawn();
    let mut leader_c = c.spawn();
    b.names().register("leader", leader_ab.pid()).await?;
    c.names().register("leader", leader_c.pid()).await?;
    let late = c.spawn();
    c.pg().join("workers", late.pid())?;
    println!(
        "  b registered `leader` as {}; c registered it as {}",
        leader_ab.pid(),
        leader_c.pid()
    );
    check(
        a.names().whereis("leader").as_ref() == Some(leader_ab.pid())
            && c.names().whereis("leader").as_ref() == Some(leader_c.pid()),
        "each side holds its own `leader` while split",
    )?;

    println!("== 5/6 healing: c lifts the block; the nodes reconnect by themselves");
    c.unblock(a.name()).await;
    c.unblock(b.name()).await;
    until("g1 meshed again", || {
        a.nodes().contains(c.name()) && b.nodes().contains(c.name()) && c.nodes().len() == 2
    })
    .await?;
    until("one `leader` on every g1 node", || {
        let w = a.names().whereis("leader");
        w.is_some() && b.names().whereis("leader") == w && c.names().whereis("leader") == w
    })
    .await?;
    let winner = a.names().whereis("leader").expect("checked");
    let (kept, lost): (&mut Process, &mut Process) = if &winner == leader_ab.pid() {
        (&mut leader_ab, &mut leader_c)
    } else {
        (&mut leader_c, &mut leader_ab)
    };
    println!("  every g1 node agrees: `leader` is {}", kept.pid());
    let loser_pid = lost.pid().clone();
    let fate = within("the loser's exit", lost.recv()).await?;
    match &fate {
        Some(Message::Exit {
            reason: ExitReason::Killed(why),
        }) => println!("  the losing claim {loser_pid} was killed on its own node: {why}"),
        other => bail!("the losing claim got {other:?} instead of being killed"),
    }
    check(
        true,
        "the clash was settled the same way on every node, and only the loser's node acted",
    )?;
    let all_workers = sorted(vec![w1.pid().clone(), w2.pid().clone(), late.pid().clone()]);
    until("workers merged", || {
        [&a, &b, &c]
            .iter()
            .all(|x| sorted(x.pg().members("workers").to_vec()) == all_workers)
    })
    .await?;
    check(
        true,
        "g1's `workers` hold the union of both sides, on every g1 node",
    )?;

    println!("== 6/6 g2 was never touched");
    check(
        e.names().whereis("leader").is_none(),
        "g2 has no `leader`: names never crossed the boundary",
    )?;
    check(
        e.pg().members("workers").to_vec() == vec![w3.pid().clone()],
        "g2's `workers` still hold only g2's worker",
    )?;
    check(
        d.names().whereis("db").as_ref() == Some(db2.pid()),
        "g2's `db` is unchanged",
    )?;
    for x in [&a, &b, &c, &d, &e] {
        x.shutdown().await;
    }
    println!("== all checks passed");
    Ok(())
}
