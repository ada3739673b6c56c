//! Three nodes that find each other through a seeds file alone: each one
//! starts, adds its own address to the file, and discovers the others when
//! its next read of the file lists them (no `connect` call anywhere).
//!
//! ```sh
//! cargo run -p cohort-registry --example discovery_file
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use cohort_registry::discovery::Strategy;
use cohort_registry::Node;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = std::env::temp_dir().join(format!("cohort-seeds-example-{}", std::process::id()));
    std::fs::write(
        &seeds,
        "# one HOST:PORT a line; a node's own line is skipped\n",
    )?;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let node = Node::builder()
            .name(format!("{name}@127.0.0.1"))
            .cookie("discovery-example")
            .start()
            .await?;
        node.discover(Strategy::file(&seeds).interval(Duration::from_millis(200)))?;
        writeln!(
            std::fs::OpenOptions::new().append(true).open(&seeds)?,
            "{}",
            node.local_addr()
        )?;
        println!(
            "{} listening on {}, added to {}",
            node.name(),
            node.local_addr(),
            seeds.display()
        );
        nodes.push(node);
    }
    let start = Instant::now();
    while nodes.iter().any(|n| n.nodes().len() < 2) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("the nodes did not find each other within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &nodes {
        let s = &n.discovery()[0];
        let peers: Vec<String> = n.nodes().iter().map(|p| p.to_string()).collect();
        println!(
            "{}: connected to {} ({}: {} lookups, found {})",
            n.name(),
            peers.join(", "),
            s.strategy,
            s.lookups,
            s.last_result.join(", ")
        );
    }
    for n in &nodes {
        n.shutdown().await;
    }
    std::fs::remove_file(&seeds)?;
    Ok(())
}
