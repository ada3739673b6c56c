//! A node without a session to every member of its name tables says so:
//! `ctl info` (and the admin `/info` JSON) lists the nodes it hears of from
//! its peers but has no session with, `/metrics` counts them, and the log
//! has one warning. Real `cohort node` processes, the mesh off.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Waits for `cond` at most 60 s: the report comes after a 10 s grace (the
/// time the mesh has to dial a node it hears of), on a loaded machine.
fn wait_long(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_partial_mesh_shows_in_info_metrics_and_the_log() {
    let cfg = config_file("mesh = false\n");
    let cfg = cfg.to_str().unwrap();
    let cookie = "cli-test-cookie";
    let a = daemon_with("a@127.0.0.1", &[], cookie, &["--config", cfg]);
    let b = daemon_with("b@127.0.0.1", &[&a.listen], cookie, &["--config", cfg]);
    let c = daemon_with("c@127.0.0.1", &[&a.listen], cookie, &["--config", cfg]);
    wait_for("a has b and c", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes").len() == 2
    });
    wait_long("b reports c", || {
        strings(&ctl_json(&b, &["info"]), "unreached") == vec![c.name.clone()]
    });
    // Each node reports after its own grace period: c may still be in it.
    wait_long("c reports b", || {
        strings(&ctl_json(&c, &["info"]), "unreached") == vec![b.name.clone()]
    });
    assert!(strings(&ctl_json(&a, &["info"]), "unreached").is_empty());
    let text = ctl(&b, &["info"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("unreached: {}", c.name)), "{text}");
    let (status, metrics) = http(&b.admin, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("\ncohort_unreached_nodes 1\n"),
        "{metrics}"
    );
    let (_, metrics) = http(&a.admin, "GET", "/metrics", None);
    assert!(
        metrics.contains("\ncohort_unreached_nodes 0\n"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(&b.log).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("partial mesh")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains(&c.name),
        "{log}"
    );
}
