//! A registration still waiting for peers when its node shuts down gets an
//! answer instead of hanging: the peers' departure completes it, or the
//! stop answers `Stopped`.

mod common;

use std::time::Duration;

use cohort_registry::core::names::NamesError;
use cohort_registry::transport::mem::MemNetwork;
use common::*;

#[tokio::test(start_paused = true)]
async fn a_waiting_locked_registration_answers_stopped_at_shutdown() {
    let net = MemNetwork::default();
    let slow = |name: &str, host: &str| {
        builder(name)
            .listen(format!("{host}:0"))
            .transport(net.host(host))
            .peer_timeout(Duration::from_secs(3600))
    };
    let a = slow("a@mem", "a").start().await.unwrap();
    let b = slow("b@mem", "b").start().await.unwrap();
    b.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b]).await;
    // b stops hearing a but nobody notices for an hour: a's lock request waits.
    net.partition(&["a"], &["b"]);
    let p = a.spawn();
    let names = a.names();
    let pid = p.pid().clone();
    let pending = tokio::spawn(async move { names.register("x", &pid).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pending.is_finished(), "the registration waits for b");
    a.shutdown().await;
    let answer = within("the answer", pending).await.unwrap();
    assert!(
        matches!(answer, Ok(()) | Err(NamesError::Stopped)),
        "{answer:?}"
    );
}
