//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod corenet;

use std::future::Future;
use std::time::Duration;

use cohort::transport::Transport;
use cohort::{Message, Node, NodeBuilder, NodeEvent, Process};

pub const COOKIE: &str = "test-cookie";

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A builder with fast ticks so liveness tests finish quickly.
pub fn builder(name: &str) -> NodeBuilder {
    Node::builder()
        .name(name)
        .listen("127.0.0.1:0")
        .cookie(COOKIE)
        .tick_interval(Duration::from_millis(100))
        .peer_timeout(Duration::from_millis(600))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

pub async fn start(name: &str) -> Node {
    builder(name).start().await.expect("node starts")
}

pub async fn start_on(name: &str, t: impl Transport) -> Node {
    builder(name)
        .listen(format!("{}:0", host_of(name)))
        .transport(t)
        .start()
        .await
        .expect("node starts")
}

pub fn host_of(name: &str) -> &str {
    name.split('@').next().unwrap()
}

/// Awaits `f`, failing the test after [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` until it holds, failing the test after [`DEADLINE`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// The next message of `p`, failing after [`DEADLINE`].
pub async fn next(p: &mut Process) -> Message {
    within("a message", p.recv()).await.expect("mailbox open")
}

/// The next node event, failing after [`DEADLINE`].
pub async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<NodeEvent>) -> NodeEvent {
    within("a node event", rx.recv())
        .await
        .expect("event stream open")
}

/// Waits until every node sees exactly the others.
pub async fn wait_full_mesh(nodes: &[&Node]) {
    wait_for("full mesh", || {
        nodes.iter().all(|n| {
            let mut want: Vec<_> = nodes
                .iter()
                .filter(|m| m.name() != n.name())
                .map(|m| m.name().clone())
                .collect();
            want.sort();
            n.nodes() == want
        })
    })
    .await
}
