//! The cluster port against hostile or confused peers, with real `cohort
//! node` processes: a second node with a taken name, restarts, and
//! connections that never finish their handshake.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Instant;

use common::*;

/// Resident memory of a process, in bytes (Linux).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// A counter or gauge from the node's `/metrics` (the sample with exactly these labels).
fn metric(d: &Daemon, sample: &str) -> u64 {
    let (status, body) = http(&d.admin, "GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{sample} in {body}"))
        .trim()
        .parse()
        .unwrap()
}

fn log_of(d: &Daemon) -> String {
    std::fs::read_to_string(&d.log).unwrap_or_default()
}

fn down_lines(d: &Daemon) -> usize {
    log_of(d).matches("node down").count()
}

fn impostor_is_refused_and_nothing_flaps() {
    // Info level: the peers' logs show every node down.
    let a = daemon_logging("a@127.0.0.1", &[], "cli-test-cookie", &[], "info");
    let b = daemon_logging("b@127.0.0.1", &[&a.listen], "cli-test-cookie", &[], "info");
    let c = daemon_logging("c@127.0.0.1", &[&b.listen], "cli-test-cookie", &[], "info");
    for d in [&a, &b, &c] {
        wait_for("full mesh", || {
            strings(&ctl_json(d, &["nodes"]), "nodes").len() == 2
        });
    }
    let h = Hold::start(&a, &["--register", "db"]);
    let pid = h.ready();
    for d in [&b, &c] {
        wait_for("db everywhere", || {
            ctl_json(d, &["whereis", "db"])["pid"] == pid.as_str()
        });
    }
    let downs = (down_lines(&b), down_lines(&c));

    // A second `a`, right cookie, dialing both peers of the real one.
    let mut impostor = daemon("a@127.0.0.1", &[&b.listen, &c.listen]);
    // While it runs, the name stays where it is, on every node.
    let t = Instant::now();
    let code = loop {
        for d in [&b, &c] {
            assert_eq!(
                ctl_json(d, &["whereis", "db"])["pid"],
                pid.as_str(),
                "db disappeared from {} while the impostor ran",
                d.name
            );
        }
        if let Some(s) = impostor.child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        assert!(t.elapsed() < DEADLINE, "the impostor did not give up");
    };
    assert_ne!(code, 0, "the impostor must exit with an error");
    let said = log_of(&impostor);
    assert!(
        said.contains("already taken") && said.contains("a@127.0.0.1"),
        "the impostor names the clash: {said}"
    );
    assert!(said.contains("ERROR"), "at the error level: {said}");
    // No peer saw a node go down, and the real a is still everyone's a.
    assert_eq!(
        (down_lines(&b), down_lines(&c)),
        downs,
        "b: {}\nc: {}",
        log_of(&b),
        log_of(&c)
    );
    for d in [&b, &c] {
        assert!(metric(d, "cohort_handshakes_total{outcome=\"refused_alive\"}") >= 1);
        assert_eq!(metric(d, "cohort_sessions_replaced_total"), 0);
        assert_eq!(strings(&ctl_json(d, &["nodes"]), "nodes").len(), 2);
        assert_eq!(ctl_json(d, &["whereis", "db"])["pid"], pid.as_str());
    }
    drop(h);
}

#[test]
fn a_second_node_with_a_taken_name_is_refused_and_exits() {
    impostor_is_refused_and_nothing_flaps();
}

#[test]
fn a_second_node_with_a_taken_name_is_refused_with_the_cpu_busy() {
    let _busy = Busy::start(2);
    impostor_is_refused_and_nothing_flaps();
}

#[test]
fn a_restart_replaces_the_old_incarnation() {
    let a = daemon("a@127.0.0.1", &[]);
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("pair", || {
        strings(&ctl_json(&b, &["nodes"]), "nodes") == vec![a.name.clone()]
    });
    // Killed and back at once: the new creation joins.
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let b2 = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("the new b on a", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b2.name.clone()]
            && strings(&ctl_json(&b2, &["nodes"]), "nodes") == vec![a.name.clone()]
    });
    let h = Hold::start(&b2, &["--register", "back"]);
    let pid = h.ready();
    wait_for("its name on a", || {
        ctl_json(&a, &["whereis", "back"])["pid"] == pid.as_str()
    });

    // Frozen (its session open but silent) and started again: the old
    // session does not answer the probe, and the new one replaces it.
    let stop = |d: &Daemon, sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &d.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    stop(&b2, "-STOP");
    let b3 = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("the third b on a", || {
        strings(&ctl_json(&b3, &["nodes"]), "nodes") == vec![a.name.clone()]
    });
    assert!(metric(&a, "cohort_sessions_replaced_total") >= 1);
    // Three incarnations of b came up on a, and every session but the
    // last went down again.
    let up = metric(&a, "cohort_sessions_total{event=\"up\"}");
    let down = metric(&a, "cohort_sessions_total{event=\"down\"}");
    assert!(up >= 3, "{up} sessions up");
    assert_eq!(up - down, 1, "{up} up, {down} down, one session left");
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b3.name.clone()]
    );
    stop(&b2, "-CONT");
    drop(h);
}

/// 300 connections that each announce a 16 MiB frame and send 1 MiB of it:
/// each is closed after the length prefix, the node's memory hardly moves,
/// and a real peer joins meanwhile.
#[test]
fn frames_announced_before_the_handshake_are_small_or_refused() {
    let _busy = Busy::start(2);
    let a = daemon("a@127.0.0.1", &[]);
    let pid = a.child.id();
    wait_for("a serves", || ctl(&a, &["nodes"]).status.success());
    let before = rss(pid);
    let chunk = vec![0x55u8; 1 << 20];
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&a.listen).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
        let _ = s.write_all(&(16u32 * 1024 * 1024 - 1).to_be_bytes());
        // The node closes the connection on the length prefix; the rest
        // of the write may fail.
        let _ = s.write_all(&chunk);
        conns.push(s);
    }
    let after = rss(pid);
    let grew = after.saturating_sub(before);
    assert!(
        grew < 20 * 1024 * 1024,
        "RSS grew by {} MB ({} -> {} MB)",
        grew >> 20,
        before >> 20,
        after >> 20
    );
    // A real peer joins while the hostile connections are still open here.
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("b joins", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    // Every hostile connection was closed by the node.
    for mut s in conns {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone()]
    );
}

/// Connections that send only a length prefix and wait: at most
/// `max_handshakes` are held, the rest are refused at once, the held ones
/// end at the handshake timeout (logged and counted), and then a real
/// peer joins.
#[test]
fn silent_handshakes_do_not_pile_up() {
    let cfg = config_file("max_handshakes = 8\nhandshake_timeout_ms = 1500\n");
    let a = daemon_logging(
        "a@127.0.0.1",
        &[],
        "cli-test-cookie",
        &["--config", cfg.to_str().unwrap()],
        "warn,cohort_proto=debug",
    );
    let mut conns = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(&a.listen).unwrap();
        s.write_all(&100u32.to_be_bytes()).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        conns.push(s);
    }
    // Each is closed by the node: the excess at once, the rest when its
    // handshake times out; read until then.
    for s in &mut conns {
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let busy = metric(&a, "cohort_handshakes_total{outcome=\"refused_busy\"}");
    let timeouts = metric(&a, "cohort_handshakes_total{outcome=\"timeout\"}");
    // Each ended one of the two ways; only a few were ever held.
    assert_eq!(busy + timeouts, 40, "busy {busy}, timed out {timeouts}");
    assert!(
        busy >= 1 && timeouts >= 1,
        "busy {busy}, timed out {timeouts}"
    );
    let log = log_of(&a);
    assert!(
        log.lines()
            .any(|l| l.contains("handshake timed out") && l.contains("127.0.0.1:")),
        "a time-out is logged with the address: {log}"
    );
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("b joins", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let _ = std::fs::remove_file(cfg);
}
