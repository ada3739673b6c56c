//! Entries are checked where they enter (names, group names and scope
//! names at most 255 bytes, metadata at most the node's limit), and no
//! frame exceeds the max frame size however many entries there are:
//! snapshots, catch-ups and batches come in parts. Over real TCP.

mod common;

use bytes::Bytes;
use cohort_registry::core::names::{Mode, NamesConfig, TableConfig};
use cohort_registry::{NamesError, PgError};
use common::*;

fn too_long_name() -> String {
    "n".repeat(256)
}

#[tokio::test]
async fn oversized_entries_are_refused_by_the_library_and_nothing_stays() {
    let a = builder("a@127.0.0.1").max_meta(1024).start().await.unwrap();
    let p = a.spawn();
    let pid = p.pid().clone();

    // Names: 256 bytes is one too many; metadata over the limit.
    let err = a.names().register(too_long_name(), &pid).await.unwrap_err();
    assert_eq!(
        err,
        NamesError::TooLong {
            what: "name",
            len: 256,
            max: 255
        }
    );
    assert_eq!(err.to_string(), "name is 256 bytes long (at most 255)");
    let err = a
        .names()
        .register_with("x", &pid, Bytes::from(vec![0u8; 1025]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NamesError::TooLong {
                what: "metadata",
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert!(
        a.names().registered_names().is_empty(),
        "no local-only entry"
    );
    // At the limit it works.
    a.names().register("n".repeat(255), &pid).await.unwrap();
    a.names()
        .register_with(
            "y",
            &a.spawn().pid().clone(),
            Bytes::from(vec![0u8; 1024]),
            None,
        )
        .await
        .unwrap();

    // Groups and metadata of memberships.
    let pg = a.pg();
    let err = pg.join(&too_long_name(), &pid).unwrap_err();
    assert!(
        matches!(
            err,
            PgError::TooLong {
                what: "group name",
                len: 256,
                max: 255
            }
        ),
        "{err:?}"
    );
    let err = pg
        .join_with_meta("g", &pid, Bytes::from(vec![1u8; 1025]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PgError::TooLong {
                what: "metadata",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(pg.which_groups().is_empty(), "no local-only membership");
    pg.join("g", &pid).unwrap();
    let err = pg
        .update_meta("g", &pid, Some(Bytes::from(vec![1u8; 1025])))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PgError::TooLong {
                what: "metadata",
                ..
            }
        ),
        "{err:?}"
    );

    // Scopes.
    let err = a.try_scope(&too_long_name()).unwrap_err();
    assert!(
        matches!(
            err,
            PgError::TooLong {
                what: "scope name",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!a.scopes().iter().any(|s| s.len() > 255));
    assert!(a.try_scope(&"s".repeat(255)).is_ok());
}

#[tokio::test]
async fn a_limit_that_does_not_fit_in_a_frame_is_refused_at_start() {
    let err = builder("a@127.0.0.1")
        .max_frame(64 * 1024)
        .max_meta(64 * 1024)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max metadata size"), "{err}");
}

/// 40 names and 40 memberships with 6 KiB of metadata each: every
/// snapshot, catch-up and batch is several times the 64 KiB max frame.
#[tokio::test]
async fn tables_several_times_the_max_frame_replicate_in_parts() {
    const N: usize = 40;
    const MAX_FRAME: usize = 64 * 1024;
    let tables = NamesConfig::default().table(TableConfig::new("ev").mode(Mode::Eventual));
    let node = |name: &'static str| {
        builder(name)
            .max_frame(MAX_FRAME)
            .max_meta(8 * 1024)
            .names(tables.clone())
            .start()
    };
    let a = node("a@127.0.0.1").await.unwrap();
    let meta = |i: usize| Bytes::from(vec![i as u8; 6 * 1024]);
    let mut procs = Vec::new();
    for i in 0..N {
        let p = a.spawn();
        a.names()
            .register_with(format!("locked-{i}"), p.pid(), meta(i), None)
            .await
            .unwrap();
        a.names_table("ev")
            .unwrap()
            .register_with(format!("ev-{i}"), p.pid(), meta(i), None)
            .await
            .unwrap();
        a.pg().join_with_meta("big", p.pid(), meta(i)).unwrap();
        procs.push(p);
    }
    let snapshot: usize = N * 3 * 6 * 1024;
    assert!(snapshot > 5 * MAX_FRAME);

    // b joins afterwards: everything comes to it as snapshots.
    let b = node("b@127.0.0.1").await.unwrap();
    b.connect(&a.local_addr()).await.unwrap();
    let complete = |n: &cohort_registry::Node| {
        n.names().registered_names().len() == N
            && n.names_table("ev").unwrap().registered_names().len() == N
            && n.pg().members("big").len() == N
    };
    wait_for("b has a's tables", || complete(&b)).await;
    assert_eq!(
        b.names().whereis_meta("locked-7").map(|(_, m)| m),
        Some(meta(7))
    );
    assert_eq!(b.nodes(), vec![a.name().clone()], "the session stayed up");

    // Live changes while connected: batches of eventual names and joins.
    for i in 0..N {
        let p = a.spawn();
        a.names_table("ev")
            .unwrap()
            .register_with(format!("ev2-{i}"), p.pid(), meta(i), None)
            .await
            .unwrap();
        a.pg().join_with_meta("big2", p.pid(), meta(i)).unwrap();
        procs.push(p);
    }
    wait_for("b has the live changes", || {
        b.names_table("ev").unwrap().registered_names().len() == 2 * N
            && b.pg().members("big2").len() == N
    })
    .await;

    // A third node, c, takes the same tables from a and b's together.
    let c = node("c@127.0.0.1").await.unwrap();
    c.connect(&b.local_addr()).await.unwrap();
    wait_for("c has everything", || {
        c.names().registered_names().len() == N
            && c.names_table("ev").unwrap().registered_names().len() == 2 * N
            && c.pg().members("big").len() == N
            && c.pg().members("big2").len() == N
    })
    .await;
    wait_full_mesh(&[&a, &b, &c]).await;
}
