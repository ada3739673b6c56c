//! A netsplit with a name clash, settled by a custom rank.
//!
//! Two nodes share table "leaders". The link between them is cut (each
//! node blocks the other), and on each side a process registers "leader" —
//! both succeed, each side sees only its own. When the link heals, the two
//! claims clash. By default the earliest claim wins; this table ranks by a
//! priority carried in the claim's metadata instead, so the
//! higher-priority claim wins wherever it was made, and the loser (policy
//! `Notify`) is told who kept the name.
//!
//! ```sh
//! cargo run -p cohort-registry --example netsplit
//! ```
//!
//! `cargo test -p cohort-registry --example netsplit` runs it as a test.

use std::cmp::Ordering;
use std::time::Duration;

use cohort_registry::{Claim, LossPolicy, Message, NamesConfig, Node, NodeEvent, TableConfig};
use tokio::time::timeout;

/// How long any one step may take before the example gives up.
const STEP: Duration = Duration::from_secs(10);

/// The priority in a claim's metadata (`prio=N`); 0 without one.
fn priority(c: &Claim) -> u32 {
    std::str::from_utf8(&c.meta)
        .ok()
        .and_then(|m| m.strip_prefix("prio="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The higher priority ranks first (`Less` = the first claim wins); equal
/// priorities fall back to the default rank. Every node of the table must
/// use the same function.
fn by_priority(x: &Claim, y: &Claim) -> Ordering {
    priority(y).cmp(&priority(x))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names = NamesConfig::empty().table(
        TableConfig::new("leaders")
            .policy(LossPolicy::Notify)
            .rank(by_priority),
    );
    let start = |name: &'static str| {
        Node::builder()
            .name(name)
            .cookie("netsplit")
            .names(names.clone())
            .start()
    };
    let a = start("a@127.0.0.1").await?;
    let b = start("b@127.0.0.1").await?;
    b.connect(&a.local_addr()).await?;

    // The netsplit: each side drops and refuses the other's traffic.
    let mut events = a.subscribe();
    a.block(b.name()).await;
    b.block(a.name()).await;
    loop {
        match timeout(STEP, events.recv()).await? {
            Some(Ok(NodeEvent::Down { node, .. })) if node == *b.name() => break,
            Some(_) => continue,
            None => return Err("node a stopped".into()),
        }
    }
    println!("split: a sees {:?}, b sees {:?}", a.nodes(), b.nodes());

    // Both sides elect a leader. a's claim is made first and a's node name
    // is lower, so the default rank would keep it; b's has the higher priority.
    let mut leader_a = a.spawn();
    let leader_b = b.spawn();
    let (ta, tb) = (a.names(), b.names());
    ta.register_with("leader", leader_a.pid(), "prio=1", None)
        .await?;
    tb.register_with("leader", leader_b.pid(), "prio=9", None)
        .await?;
    println!("during the split: a says {:?}", ta.whereis("leader"));
    println!("                  b says {:?}", tb.whereis("leader"));

    // The heal: both sides reconnect, exchange claims, and settle the clash.
    let mut on_a = ta.subscribe();
    a.unblock(b.name()).await;
    b.unblock(a.name()).await;
    while ta.whereis("leader").as_ref() != Some(leader_b.pid()) {
        // Any event may settle it; a lag only means we look again.
        let _ = timeout(STEP, on_a.recv()).await?.ok_or("node a stopped")?;
    }
    assert_eq!(tb.whereis("leader").as_ref(), Some(leader_b.pid()));
    // The loser is told (policy Notify: told, not killed).
    match timeout(STEP, leader_a.recv()).await? {
        Some(Message::NameConflict { name, winner, .. }) => {
            println!("a's leader lost {name:?} to {winner:?}");
            assert_eq!(winner.as_ref(), Some(leader_b.pid()));
        }
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    println!(
        "after the heal: both say {:?}",
        ta.whereis("leader").unwrap()
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

#[cfg(test)]
#[test]
fn example_runs() {
    main().expect("the netsplit example runs to the end");
}
