//! A worker pool over a process group: two worker nodes each run two
//! workers in group "pool" of scope "jobs"; a dispatcher node picks a
//! worker for each job with `select` (a local read, no round trip) and
//! collects the answers. When a worker node shuts down, its workers leave
//! the group everywhere and the next jobs go to the workers that remain.
//!
//! ```sh
//! cargo run -p cohort-registry --example worker_pool
//! ```
//!
//! `cargo test -p cohort-registry --example worker_pool` runs it as a test.

use std::collections::BTreeMap;
use std::time::Duration;

use cohort_registry::{Message, Node, PgEventKind, Pid, Process, Select};
use tokio::time::timeout;

/// How long any one step may take before the example gives up.
const STEP: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dispatcher = start("dispatcher@127.0.0.1").await?;
    let w1 = start("w1@127.0.0.1").await?;
    let w2 = start("w2@127.0.0.1").await?;
    w1.connect(&dispatcher.local_addr()).await?;
    w2.connect(&dispatcher.local_addr()).await?;

    // The dispatcher watches the pool before any worker joins.
    let jobs = dispatcher.scope("jobs");
    let (mut pool, _) = jobs.monitor("pool")?;
    for node in [&w1, &w2] {
        for _ in 0..2 {
            let worker = node.spawn();
            node.scope("jobs").join("pool", worker.pid())?;
            tokio::spawn(work(worker));
        }
    }
    wait_members(&mut pool, &jobs, 4).await?;
    println!("pool: {} workers", jobs.members("pool").len());

    let mut me = dispatcher.spawn();
    let done = run_jobs(&jobs, &mut me, 0..20).await?;
    println!("jobs 0..20 by worker: {done:?}");
    assert_eq!(done.values().sum::<usize>(), 20);

    // w2 goes away: its workers leave the group on every node.
    w2.shutdown().await;
    wait_members(&mut pool, &jobs, 2).await?;
    println!("w2 gone, pool: {} workers", jobs.members("pool").len());
    let done = run_jobs(&jobs, &mut me, 20..30).await?;
    println!("jobs 20..30 by worker: {done:?}");
    assert!(done.keys().all(|pid| pid.node() == w1.name()));

    dispatcher.shutdown().await;
    w1.shutdown().await;
    Ok(())
}

async fn start(name: &str) -> Result<Node, Box<dyn std::error::Error>> {
    Ok(Node::builder().name(name).cookie("pool").start().await?)
}

/// A worker: answers each job "N" with "N squared" to the sender.
async fn work(mut me: Process) {
    while let Some(msg) = me.recv().await {
        if let Message::Data {
            from: Some(from),
            payload,
        } = msg
        {
            let n: u64 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
            me.send(&from, (n * n).to_string());
        }
    }
}

/// Follows the pool's changes until it has `n` members.
async fn wait_members(
    pool: &mut cohort_registry::PgMonitor,
    jobs: &cohort_registry::Scope,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    while jobs.members("pool").len() != n {
        // A monitor that lagged (missed changes) still ends here: the loop
        // reads the members again after every item.
        let Ok(change) = timeout(STEP, pool.recv()).await?.ok_or("monitor ended")? else {
            continue;
        };
        assert!(matches!(
            change.kind,
            PgEventKind::Join | PgEventKind::Leave
        ));
    }
    Ok(())
}

/// Sends each job to a worker chosen by `select` and counts who answered.
async fn run_jobs(
    jobs: &cohort_registry::Scope,
    me: &mut Process,
    range: std::ops::Range<u64>,
) -> Result<BTreeMap<Pid, usize>, Box<dyn std::error::Error>> {
    let mut by = BTreeMap::new();
    for n in range {
        let worker = jobs
            .select("pool", Select::Random, None)
            .ok_or("empty pool")?;
        me.send(&worker, n.to_string());
        match timeout(STEP, me.recv()).await? {
            Some(Message::Data {
                from: Some(from),
                payload,
            }) => {
                assert_eq!(std::str::from_utf8(&payload)?, (n * n).to_string());
                *by.entry(from).or_default() += 1;
            }
            other => return Err(format!("expected an answer, got {other:?}").into()),
        }
    }
    Ok(by)
}

#[cfg(test)]
#[test]
fn example_runs() {
    main().expect("the worker pool example runs to the end");
}
