//! `cohort demo`: a three-node cluster on loopback, shown step by step.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cohort::{ExitReason, Message, Node, NodeEvent};

const COOKIE: &str = "cohort-demo-cookie";

async fn start(name: &str) -> Result<Node> {
    Node::builder()
        .name(name)
        .listen("127.0.0.1:0")
        .cookie(COOKIE)
        .start()
        .await
        .with_context(|| format!("starting {name}"))
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .with_context(|| format!("timed out waiting for {what}"))
}

fn check(ok: bool, what: &str) -> Result<()> {
    println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
    ensure!(ok, "check failed: {what}");
    Ok(())
}

/// Runs the demo; fails if any check fails.
pub async fn run() -> Result<()> {
    println!("== starting three nodes on loopback");
    let a = start("a@127.0.0.1").await?;
    let b = start("b@127.0.0.1").await?;
    let c = start("c@127.0.0.1").await?;
    for n in [&a, &b, &c] {
        println!(
            "  {} listening on {} (creation {})",
            n.name(),
            n.local_addr(),
            n.creation()
        );
    }

    println!("== connecting b -> a and c -> b; the mesh adds a <-> c by itself");
    let mut events = a.subscribe();
    b.connect(&a.local_addr()).await?;
    c.connect(&b.local_addr()).await?;
    within("the full mesh", async {
        while !(a.nodes().len() == 2 && b.nodes().len() == 2 && c.nodes().len() == 2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    for n in [&a, &b, &c] {
        let peers: Vec<String> = n.nodes().iter().map(|p| p.to_string()).collect();
        println!("  {} sees {}", n.name(), peers.join(", "));
    }
    check(
        a.nodes() == vec![b.name().clone(), c.name().clone()],
        "a is connected to b and c",
    )?;

    println!("== processes exchange messages across nodes");
    let mut pa = a.spawn();
    let mut pc = c.spawn();
    pc.send(pa.pid(), "hello from c");
    let got = within("a message on a", pa.recv()).await?;
    match &got {
        Some(Message::Data { from, payload }) => {
            println!(
                "  {} got {:?} from {}",
                pa.pid(),
                String::from_utf8_lossy(payload),
                from.as_ref().map(|p| p.to_string()).unwrap_or_default()
            );
            check(
                from.as_ref() == Some(pc.pid()),
                "the reply address is c's process",
            )?;
        }
        other => bail!("unexpected message {other:?}"),
    }
    pa.send_typed(pc.pid(), &("pong", 42u32))?;
    let reply = within("a reply on c", pc.recv())
        .await?
        .context("mailbox closed")?;
    let decoded: (String, u32) = reply.decode().context("not a data message")??;
    println!("  {} got {:?}", pc.pid(), decoded);
    check(
        decoded == ("pong".to_string(), 42),
        "typed message decoded on c",
    )?;

    println!("== a monitors a process on b, which then exits");
    let mut pb = b.spawn();
    let target = pb.pid().clone();
    let mref = pa.monitor(&target);
    // Signals between two processes stay in order: once b's process has
    // this message, b has the monitor too.
    pa.send(&target, "are you there?");
    within("the message on b", pb.recv()).await?;
    pb.exit(ExitReason::Other("work done".into()));
    match within("a down notice", pa.recv()).await? {
        Some(Message::Down {
            mref: m,
            pid,
            reason,
        }) => {
            println!("  {} saw {} go down: {}", pa.pid(), pid, reason);
            check(
                m == mref && pid == target,
                "the monitor fired for b's process",
            )?;
            check(
                reason == ExitReason::Other("work done".into()),
                "with its exit reason",
            )?;
        }
        other => bail!("unexpected message {other:?}"),
    }

    println!("== c leaves the cluster");
    c.shutdown().await;
    let down = within("c's node-down event on a", async {
        loop {
            match events.recv().await {
                Some(NodeEvent::Down { node, reason, .. }) => break Some((node, reason)),
                Some(_) => continue,
                None => break None,
            }
        }
    })
    .await?
    .context("event stream ended")?;
    println!("  a saw {} go down: {}", down.0, down.1);
    check(a.nodes() == vec![b.name().clone()], "a is left with b only")?;
    a.shutdown().await;
    b.shutdown().await;
    println!("== all checks passed");
    Ok(())
}
