//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "../../../cohort-proto/tests/common/corenet.rs"]
pub mod corenet;
pub mod counting;

use std::future::Future;
use std::time::Duration;

use cohort_registry::transport::Transport;
use cohort_registry::{Message, Node, NodeBuilder, NodeEvent, Process};

pub const COOKIE: &str = "test-cookie";

/// How long any awaited condition may take before the test fails: a bound
/// on a hang, not a speed goal (the whole suite runs in parallel on a
/// 2-core CI machine; a 10 s deadline was missed there under load).
pub const DEADLINE: Duration = Duration::from_secs(60);

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
pub async fn next_event(rx: &mut cohort_registry::EventStream<NodeEvent>) -> NodeEvent {
    within("a node event", rx.recv())
        .await
        .expect("event stream open")
        .expect("no events missed")
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

/// A hand-made peer on a real TCP connection: completes the handshake with
/// the node at `addr` as `name` (creation 5), then is the test's to drive.
pub async fn raw_peer(
    addr: &str,
    name: &str,
) -> tokio_util::codec::Framed<tokio::net::TcpStream, tokio_util::codec::LengthDelimitedCodec> {
    use cohort_registry::core::auth::{prove, Cookie, Role, Transcript};
    use cohort_registry::core::proto::{Frame, Hello, PROTOCOL_VERSION};
    use futures::{SinkExt, StreamExt};
    let mut f = tokio_util::codec::Framed::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio_util::codec::LengthDelimitedCodec::new(),
    );
    let me = cohort_registry::NodeName::new(name).unwrap();
    let nonce = [9u8; 32];
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: me.clone(),
        creation: 5,
        listen: None,
        nonce,
    };
    f.send(Frame::Hello(hello).encode()).await.unwrap();
    let Frame::Challenge(ch) = Frame::decode(&f.next().await.unwrap().unwrap()).unwrap() else {
        panic!("expected a challenge")
    };
    let t = Transcript {
        dialer: &me,
        dialer_creation: 5,
        dialer_nonce: &nonce,
        acceptor: &ch.name,
        acceptor_creation: ch.creation,
        acceptor_nonce: &ch.nonce,
    };
    let cookie = Cookie::new(COOKIE);
    f.send(
        Frame::Response {
            proof: prove(&cookie, Role::Dialer, &t),
        }
        .encode(),
    )
    .await
    .unwrap();
    let Frame::Ack { proof } = Frame::decode(&f.next().await.unwrap().unwrap()).unwrap() else {
        panic!("expected an ack")
    };
    assert_eq!(
        proof,
        prove(&cookie, Role::Acceptor, &t),
        "the node proves the cookie back"
    );
    f
}
