//! A two-node chat over global names: alice lives on one node, bob on
//! another, and each addresses the other only by name (`names().send`),
//! never by pid. Registration is cluster-wide: once `register` returns, no
//! one else can be "alice".
//!
//! ```sh
//! cargo run -p cohort-registry --example chat
//! ```
//!
//! `cargo test -p cohort-registry --example chat` runs it as a test.

use std::time::Duration;

use cohort_registry::{Message, NameEvent, Node, Process};
use tokio::time::timeout;

/// How long any one step may take before the example gives up.
const STEP: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Node::builder()
        .name("alice@127.0.0.1")
        .cookie("chat")
        .start()
        .await?;
    let b = Node::builder()
        .name("bob@127.0.0.1")
        .cookie("chat")
        .start()
        .await?;
    b.connect(&a.local_addr()).await?;
    println!("{} and {} are connected", a.name(), b.name());

    // Each user is a process registered under its own name. alice's node
    // follows the table so she knows when bob is there.
    let mut table_on_a = a.names().subscribe();
    let mut alice = a.spawn();
    let mut bob = b.spawn();
    a.names().register("alice", alice.pid()).await?;
    b.names().register("bob", bob.pid()).await?;
    loop {
        match timeout(STEP, table_on_a.recv()).await? {
            Some(Ok(NameEvent::Registered { name, .. })) if name == "bob" => break,
            Some(_) => continue,
            None => return Err("alice's node stopped".into()),
        }
    }
    println!("alice sees bob at {:?}", a.names().whereis("bob").unwrap());

    let lines = ["hi bob", "is the cluster up?", "bye"];
    for line in lines {
        a.names().send("bob", line)?;
        let heard = text(&mut bob).await?;
        println!("bob   <- {heard}");
        b.names().send("alice", format!("re: {heard}"))?;
        let answer = text(&mut alice).await?;
        println!("alice <- {answer}");
        assert_eq!(answer, format!("re: {line}"));
    }

    // bob leaves: his name goes away everywhere, and alice's node says so.
    drop(bob);
    loop {
        match timeout(STEP, table_on_a.recv()).await? {
            Some(Ok(NameEvent::Unregistered { name, reason, .. })) if name == "bob" => {
                println!("bob left ({reason:?})");
                break;
            }
            Some(_) => continue,
            None => return Err("alice's node stopped".into()),
        }
    }
    assert_eq!(a.names().whereis("bob"), None);
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

/// The next data message of `p` as text.
async fn text(p: &mut Process) -> Result<String, Box<dyn std::error::Error>> {
    match timeout(STEP, p.recv()).await? {
        Some(Message::Data { payload, .. }) => Ok(String::from_utf8(payload.to_vec())?),
        other => Err(format!("expected a message, got {other:?}").into()),
    }
}

#[cfg(test)]
#[test]
fn example_runs() {
    main().expect("the chat example runs to the end");
}
