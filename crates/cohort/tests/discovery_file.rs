//! Discovery in the library, over real TCP on loopback, with a seeds file:
//! the node's own address is skipped, an emptied file changes nothing, a
//! line removed for a node that died makes it forgotten, and
//! [`Node::forget`] never touches a connected node.

mod common;

use std::time::Duration;

use cohort_registry::discovery::Strategy;
use common::*;

fn write(path: &std::path::Path, text: &str) {
    // Renamed into place: a lookup never reads half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_seeds_file_adds_nodes_and_a_removed_dead_node_is_forgotten() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let c = start("c@127.0.0.1").await;
    let path = std::env::temp_dir().join(format!("cohort-seeds-{}", std::process::id()));
    write(
        &path,
        &format!(
            "# a lists itself too\n{}\n{}\n{}\n",
            a.local_addr(),
            b.local_addr(),
            c.local_addr()
        ),
    );
    a.discover(
        Strategy::file(&path)
            .interval(Duration::from_millis(50))
            .forget_after(Duration::from_millis(300)),
    )
    .unwrap();
    wait_for("a to reach b and c", || {
        let s = &a.discovery()[0];
        s.discovered.len() == 2 && s.discovered.iter().all(|d| d.connected)
    })
    .await;
    let s = &a.discovery()[0];
    assert!(
        s.discovered.iter().all(|d| d.addr != a.local_addr()),
        "own address: {s:?}"
    );
    assert_eq!(s.last_result.len(), 2, "{s:?}");
    // A connected node is never forgotten.
    assert!(!a.forget(b.name()));

    // An emptied file changes nothing: c dies and stays redialed.
    write(&path, "# nothing\n");
    c.abort().await;
    wait_for("a to see c down", || a.nodes() == vec![b.name().clone()]).await;
    let lookups = a.discovery()[0].lookups;
    wait_for("more lookups", || a.discovery()[0].lookups >= lookups + 10).await;
    let s = &a.discovery()[0];
    assert!(s.last_result.is_empty());
    assert!(s.discovered.iter().all(|d| d.listed), "{s:?}");
    assert_eq!(a.redialing(), vec![c.name().clone()]);

    // Only a and b listed: c, unreachable, is forgotten; b stays.
    write(&path, &format!("{}\n{}\n", a.local_addr(), b.local_addr()));
    wait_for("a to forget c", || a.redialing().is_empty()).await;
    let s = &a.discovery()[0];
    assert_eq!(s.forgotten, 1, "{s:?}");
    assert_eq!(s.discovered.len(), 1, "{s:?}");
    assert_eq!(s.discovered[0].node.as_ref(), Some(b.name()));
    assert_eq!(a.nodes(), vec![b.name().clone()]);
    let _ = std::fs::remove_file(&path);
}
