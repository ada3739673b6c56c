//! Hostile or broken peers over real TCP: wrong cookies, garbage, oversized
//! frames, frames out of order, unsupported versions. Each is refused with
//! no change of state, and the node keeps serving everyone else.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cohort_registry::core::proto::{Frame, Hello, RefuseReason, PROTOCOL_VERSION};
use cohort_registry::{ConnectError, Node, NodeName};
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The node still accepts a well-behaved peer and exchanges a message.
async fn still_serves(a: &Node) {
    let b = start("healthy@127.0.0.1").await;
    b.connect(&a.local_addr())
        .await
        .expect("a still accepts good peers");
    let mut pa = a.spawn();
    let pb = b.spawn();
    pb.send(pa.pid(), "ok");
    next(&mut pa).await;
    b.shutdown().await;
}

/// Reads until the node closes the socket; returns the bytes it sent.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    within("the node to close the connection", async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    all
}

fn framed(s: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    Framed::new(s, LengthDelimitedCodec::new())
}

fn hello(name: &str, version: u16) -> Frame {
    Frame::Hello(Hello {
        version,
        name: NodeName::new(name).unwrap(),
        creation: 1,
        listen: None,
        nonce: [7; 32],
    })
}

async fn expect_refusal(f: &mut Framed<TcpStream, LengthDelimitedCodec>, want: RefuseReason) {
    let got = within("a refusal", f.next())
        .await
        .expect("a frame")
        .expect("readable");
    assert_eq!(Frame::decode(&got).unwrap(), Frame::Refuse { reason: want });
    assert!(
        within("close", f.next()).await.is_none(),
        "connection must close after a refusal"
    );
}

#[tokio::test]
async fn wrong_cookie_is_refused_and_nothing_registered() {
    let a = start("a@127.0.0.1").await;
    let intruder = builder("c@127.0.0.1")
        .cookie("not-the-cookie")
        .start()
        .await
        .unwrap();
    let mut ev = a.subscribe();
    let err = intruder.connect(&a.local_addr()).await.unwrap_err();
    assert_eq!(err, ConnectError::Refused(RefuseReason::BadCookie));
    assert!(a.nodes().is_empty());
    assert!(intruder.nodes().is_empty());
    // The other direction fails too: c cannot prove a's cookie back.
    let err = a.connect(&intruder.local_addr()).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Refused(RefuseReason::BadCookie)),
        "{err:?}"
    );
    assert!(a.nodes().is_empty());
    still_serves(&a).await;
    // The only event a saw is the healthy node coming and going.
    assert!(
        matches!(next_event(&mut ev).await, cohort_registry::NodeEvent::Up { node, .. } if node.as_str() == "healthy@127.0.0.1")
    );
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_only() {
    let a = start("a@127.0.0.1").await;
    let mut s = TcpStream::connect(a.local_addr()).await.unwrap();
    let mut junk = BytesMut::new();
    junk.put_u32(12);
    junk.put_slice(b"\xff\xfe\xfd not a frame");
    s.write_all(&junk).await.unwrap();
    read_until_closed(&mut s).await;
    assert!(a.nodes().is_empty());
    still_serves(&a).await;
}

#[tokio::test]
async fn oversized_frames_close_the_connection_only() {
    let a = builder("a@127.0.0.1")
        .max_frame(64 * 1024)
        .start()
        .await
        .unwrap();
    let mut s = TcpStream::connect(a.local_addr()).await.unwrap();
    // A length prefix of 1 GiB: refused from the header alone.
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    read_until_closed(&mut s).await;
    still_serves(&a).await;
}

#[tokio::test]
async fn session_frames_before_the_handshake_are_refused() {
    let a = start("a@127.0.0.1").await;
    let mut f = framed(TcpStream::connect(a.local_addr()).await.unwrap());
    f.send(Frame::Tick.encode()).await.unwrap();
    expect_refusal(&mut f, RefuseReason::Protocol).await;
    still_serves(&a).await;
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let a = start("a@127.0.0.1").await;
    let mut f = framed(TcpStream::connect(a.local_addr()).await.unwrap());
    f.send(hello("x@127.0.0.1", PROTOCOL_VERSION + 98).encode())
        .await
        .unwrap();
    expect_refusal(&mut f, RefuseReason::Version(PROTOCOL_VERSION)).await;
    still_serves(&a).await;
}

#[tokio::test]
async fn a_peer_claiming_our_own_name_is_refused() {
    let a = start("a@127.0.0.1").await;
    let mut f = framed(TcpStream::connect(a.local_addr()).await.unwrap());
    f.send(hello("a@127.0.0.1", PROTOCOL_VERSION).encode())
        .await
        .unwrap();
    expect_refusal(&mut f, RefuseReason::SameName).await;
}

#[tokio::test]
async fn a_forged_proof_is_refused() {
    let a = start("a@127.0.0.1").await;
    let mut f = framed(TcpStream::connect(a.local_addr()).await.unwrap());
    f.send(hello("x@127.0.0.1", PROTOCOL_VERSION).encode())
        .await
        .unwrap();
    let challenge = within("challenge", f.next()).await.unwrap().unwrap();
    assert!(matches!(
        Frame::decode(&challenge).unwrap(),
        Frame::Challenge(_)
    ));
    f.send(Frame::Response { proof: [0; 32] }.encode())
        .await
        .unwrap();
    expect_refusal(&mut f, RefuseReason::BadCookie).await;
    assert!(a.nodes().is_empty());
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let a = builder("a@127.0.0.1")
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut s = TcpStream::connect(a.local_addr()).await.unwrap();
    read_until_closed(&mut s).await;
    still_serves(&a).await;
}

#[tokio::test]
async fn random_frames_never_take_the_node_down() {
    // Many connections of random bytes, each a well-formed length prefix
    // around garbage, then a healthy peer.
    let a = start("a@127.0.0.1").await;
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..50 {
        let mut f = framed(TcpStream::connect(a.local_addr()).await.unwrap());
        let len = (seed % 200) as usize + 1;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = f.send(Bytes::from(body)).await;
        let _ = SinkExt::<Bytes>::close(&mut f).await;
    }
    assert_eq!(a.nodes(), Vec::<NodeName>::new());
    still_serves(&a).await;
}

/// A peer of another protocol version listening on loopback: it reads the
/// node's Hello and answers with `answer` (a refusal or a challenge of its
/// own version); returns its address and what it received next.
async fn other_version_peer(answer: Frame) -> (String, tokio::task::JoinHandle<Option<Frame>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut f = framed(s);
        let got = Frame::decode(&f.next().await?.ok()?).ok()?;
        assert!(matches!(got, Frame::Hello(ref h) if h.version == PROTOCOL_VERSION));
        f.send(answer.encode()).await.ok()?;
        Frame::decode(&f.next().await?.ok()?).ok()
    });
    (addr, task)
}

#[tokio::test]
async fn a_refusal_for_another_version_names_both_versions() {
    let a = start("a@127.0.0.1").await;
    let old = PROTOCOL_VERSION - 1;
    let (addr, peer) = other_version_peer(Frame::Refuse {
        reason: RefuseReason::Version(old),
    })
    .await;
    let err = within("connect", a.connect(&addr)).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::Version {
            ours: PROTOCOL_VERSION,
            theirs: old
        }
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {PROTOCOL_VERSION}"))
            && text.contains(&format!("version {old}")),
        "{text}"
    );
    assert_eq!(
        peer.await.unwrap(),
        None,
        "the node hangs up after a refusal"
    );
    still_serves(&a).await;
}

#[tokio::test]
async fn a_challenge_of_another_version_is_refused_naming_both_versions() {
    let a = start("a@127.0.0.1").await;
    let newer = PROTOCOL_VERSION + 1;
    let Frame::Hello(h) = hello("future@127.0.0.1", newer) else {
        unreachable!()
    };
    let (addr, peer) = other_version_peer(Frame::Challenge(h)).await;
    let err = within("connect", a.connect(&addr)).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::Version {
            ours: PROTOCOL_VERSION,
            theirs: newer
        }
    );
    // The other side is told this node's version, in a frame any version reads.
    assert_eq!(
        peer.await.unwrap(),
        Some(Frame::Refuse {
            reason: RefuseReason::Version(PROTOCOL_VERSION)
        })
    );
    still_serves(&a).await;
}
