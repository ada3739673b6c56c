//! Mutual TLS between `cohort node` processes: certificates made with
//! `cohort cert`, clusters that form, and the peers that must be refused
//! (another CA, a certificate for another host, plaintext), reloads on
//! SIGHUP and `POST /tls/reload` with the sessions kept.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A CA directory made by `cohort cert ca`.
fn make_ca(tag: &str) -> PathBuf {
    let dir = tmp(&format!("ca-{tag}"));
    let out = Command::new(BIN)
        .args(["cert", "ca", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dir
}

/// A node certificate for `name` from `ca`: (cert, key) paths.
fn make_cert(ca: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = tmp("certs");
    let out = Command::new(BIN)
        .args(["cert", "node", "--ca"])
        .arg(ca)
        .args(["--name", name, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

/// The TLS flags of a node.
fn tls_flags(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
        "--tls-ca".into(),
        ca.join("ca.pem").display().to_string(),
    ]
}

/// A TLS node `name` whose certificate is made for `cert_for` by `signer`,
/// trusting `trust`.
fn tls_node(
    name: &str,
    seeds: &[&str],
    cert_for: &str,
    signer: &Path,
    trust: &Path,
    level: &str,
) -> Daemon {
    let (cert, key) = make_cert(signer, cert_for);
    let flags = tls_flags(&cert, &key, trust);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    daemon_logging(name, seeds, "tls-cookie", &flags, level)
}

fn log(d: &Daemon) -> String {
    std::fs::read_to_string(&d.log).unwrap_or_default()
}

fn count(d: &Daemon, what: &str) -> usize {
    log(d).lines().filter(|l| l.contains(what)).count()
}

/// `d` logged one warning for the refused TLS handshakes (however many
/// there were), naming the address and `reason`.
fn assert_one_refusal(d: &Daemon, reason: &str) {
    let refusals: Vec<String> = log(d)
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refusing a TLS connection from 127.0.0.1:"))
        .map(String::from)
        .collect();
    assert_eq!(refusals.len(), 1, "{}", log(d));
    assert!(refusals[0].contains(reason), "{}", refusals[0]);
}

fn nodes(d: &Daemon) -> Vec<String> {
    strings(&ctl_json(d, &["nodes"]), "nodes")
}

#[test]
fn three_tls_nodes_form_a_cluster_and_replicate_names_and_groups() {
    let ca = make_ca("one");
    let a = tls_node("a@127.0.0.1", &[], "a@127.0.0.1", &ca, &ca, "warn");
    let b = tls_node("b@127.0.0.1", &[&a.listen], "b@127.0.0.1", &ca, &ca, "warn");
    let c = tls_node("c@127.0.0.1", &[&b.listen], "c@127.0.0.1", &ca, &ca, "warn");
    for d in [&a, &b, &c] {
        wait_for("a full mesh over TLS", || nodes(d).len() == 2);
    }
    let h = Hold::start(&a, &["--register", "svc", "--join", "pg/workers"]);
    let pid = h.ready();
    wait_for("the name and the group on c", || {
        ctl_json(&c, &["whereis", "svc"])["pid"].as_str() == Some(pid.as_str())
            && strings(&ctl_json(&c, &["members", "pg", "workers"]), "members") == [pid.clone()]
    });
    // The cluster port speaks TLS only: a plaintext hello is refused.
    let mut raw = std::net::TcpStream::connect(&a.listen).unwrap();
    std::io::Write::write_all(&mut raw, b"\x00\x00\x00\x05hello").unwrap();
    wait_for("a's refusal of the plaintext bytes", || {
        count(&a, "not a TLS peer") == 1
    });
    for d in [&b, &c] {
        assert!(!log(d).contains("refusing"), "{}", log(d));
    }
    assert_eq!(count(&a, "refusing"), 1, "{}", log(&a));
}

#[test]
fn a_node_with_a_certificate_from_another_ca_is_refused() {
    let ca = make_ca("right");
    let other = make_ca("other");
    let a = tls_node("a@127.0.0.1", &[], "a@127.0.0.1", &ca, &ca, "warn");
    // x trusts a's CA, but its own certificate comes from another CA.
    let x = tls_node(
        "x@127.0.0.1",
        &[&a.listen],
        "x@127.0.0.1",
        &other,
        &ca,
        "debug",
    );
    wait_for("three attempts of x", || {
        count(&x, "seed still not reachable") >= 2
    });
    // One line on a, naming the address and the reason; repeats are not
    // logged again within the minute.
    assert_one_refusal(&a, "not signed by the cluster's CA");
    assert!(nodes(&a).is_empty() && nodes(&x).is_empty());

    // The dialer checks too: a dials y, whose certificate comes from the
    // other CA, and the connection fails.
    let y = tls_node("y@127.0.0.1", &[], "y@127.0.0.1", &other, &other, "warn");
    let (status, body) = http(
        &a.admin,
        "POST",
        "/connect",
        Some(&format!("{{\"addr\":\"{}\"}}", y.listen)),
    );
    assert_eq!(status, 502, "{body}");
    wait_for("a's reason for the failed dial", || {
        log(&a).contains(&format!(
            "TLS with {}: its certificate is not signed by the cluster's CA",
            y.listen
        ))
    });
    assert!(nodes(&a).is_empty() && nodes(&y).is_empty());
}

#[test]
fn a_certificate_valid_for_another_host_is_refused() {
    let ca = make_ca("hosts");
    let a = tls_node("a@127.0.0.1", &[], "a@127.0.0.1", &ca, &ca, "warn");
    // x's certificate chains to the CA but is made for another host.
    let x = tls_node("x@127.0.0.1", &[&a.listen], "x@10.9.9.9", &ca, &ca, "warn");
    let claim = "its certificate is not valid for 127.0.0.1, the host of the node name it claims (x@127.0.0.1)";
    // The acceptor checks the dialer's certificate against its hello.
    wait_for("a's refusal of x", || count(&a, claim) >= 1);
    assert!(
        log(&a)
            .lines()
            .any(|l| l.contains("WARN") && l.contains(claim) && l.contains("refusing 127.0.0.1:")),
        "{}",
        log(&a)
    );
    // The dialer checks the acceptor's certificate against its challenge.
    let (status, body) = http(
        &a.admin,
        "POST",
        "/connect",
        Some(&format!("{{\"addr\":\"{}\"}}", x.listen)),
    );
    assert_eq!(status, 502, "{body}");
    wait_for("a's refusal of x's challenge", || {
        count(&a, &format!("refusing {}: {claim}", x.listen)) == 1
    });
    assert!(nodes(&a).is_empty() && nodes(&x).is_empty());
    // x was told at start that its certificate does not fit its name.
    // (Logs are written by a thread of their own: wait for the line.)
    wait_for("x's warning about its own certificate", || {
        log(&x).contains("peers will refuse this node")
    });
}

#[test]
fn plaintext_and_tls_nodes_refuse_each_other_clearly() {
    let ca = make_ca("plain");
    let a = tls_node("a@127.0.0.1", &[], "a@127.0.0.1", &ca, &ca, "warn");
    let p = daemon_logging("p@127.0.0.1", &[&a.listen], "tls-cookie", &[], "debug");
    wait_for("three attempts of the plaintext node", || {
        count(&p, "seed still not reachable") >= 2
    });
    assert_one_refusal(&a, "not a TLS peer (a plaintext node?)");
    // A TLS node dialing the plaintext node fails, and says why.
    let t = tls_node("t@127.0.0.1", &[&p.listen], "t@127.0.0.1", &ca, &ca, "warn");
    wait_for("t's reason", || {
        log(&t).contains(&format!(
            "TLS with {}: the connection closed during the TLS handshake (a plaintext node",
            p.listen
        ))
    });
    // The plaintext node is told too, both when it dials and when it is
    // dialed: the peer speaks TLS.
    wait_for("p's reasons", || {
        log(&p).contains(&format!(
            "addr={} error=the peer speaks TLS, this node does not",
            a.listen
        )) && log(&p).lines().any(|l| {
            l.contains("error=the peer speaks TLS, this node does not (give it --tls-cert")
                && !l.contains(&a.listen)
        })
    });
    for d in [&a, &p, &t] {
        assert!(nodes(d).is_empty(), "{} has peers", d.name);
    }
}

fn hup(d: &Daemon) {
    let st = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[test]
fn sighup_reload_serves_new_sessions_and_keeps_the_old_ones() {
    let ca = make_ca("reload");
    let (good_cert, good_key) = make_cert(&ca, "a@127.0.0.1");
    let (wrong_cert, wrong_key) = make_cert(&ca, "a@10.9.9.9");
    // a reads its certificate from files the test rewrites.
    let (cert, key) = (tmp("a-cert.pem"), tmp("a-key.pem"));
    copy(&good_cert, &cert);
    copy(&good_key, &key);
    let flags = tls_flags(&cert, &key, &ca);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = daemon_logging("a@127.0.0.1", &[], "tls-cookie", &flags, "info");
    let b = tls_node("b@127.0.0.1", &[&a.listen], "b@127.0.0.1", &ca, &ca, "info");
    wait_for("a and b connected", || nodes(&b) == ["a@127.0.0.1"]);

    // A certificate for another host: sessions up stay, new ones use it
    // (and are refused for it).
    copy(&wrong_cert, &cert);
    copy(&wrong_key, &key);
    hup(&a);
    wait_for("the reload on a", || {
        count(&a, "SIGHUP: TLS certificate, key and CA reloaded") == 1
    });
    let c = tls_node("c@127.0.0.1", &[&a.listen], "c@127.0.0.1", &ca, &ca, "info");
    wait_for("c's refusal of a's new certificate", || {
        count(
            &c,
            "its certificate is not valid for 127.0.0.1, the host of the node name it claims (a@127.0.0.1)",
        ) >= 1
    });
    assert_eq!(nodes(&b), ["a@127.0.0.1"]);
    assert_eq!(nodes(&a), ["b@127.0.0.1"]);

    // A bad key file through the admin API: the answer and the log say so,
    // and the certificate in force stays (c is still refused for it).
    std::fs::write(&key, "not a key").unwrap();
    let (status, body) = http(&a.admin, "POST", "/tls/reload", None);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("TLS reload failed; the old certificate stays in use: key "),
        "{body}"
    );
    wait_for("the failed reload in a's log", || {
        log(&a).contains("POST /tls/reload: TLS reload failed; keeping the old certificate")
    });

    // The right certificate again: c's retries now get through.
    copy(&good_cert, &cert);
    copy(&good_key, &key);
    hup(&a);
    wait_for("c in the cluster", || nodes(&c).len() == 2);
    // One session between a and b all along: up once, never down.
    for (d, peer) in [(&a, "b@127.0.0.1"), (&b, "a@127.0.0.1")] {
        let ups = log(d)
            .lines()
            .filter(|l| l.contains("node up") && l.contains(&format!("peer={peer}")))
            .count();
        assert_eq!(ups, 1, "{}", log(d));
        assert!(!log(d).contains("node down"), "{}", log(d));
    }
}

#[test]
fn a_bad_file_on_sighup_keeps_the_old_certificate() {
    let ca = make_ca("bad");
    let (good_cert, good_key) = make_cert(&ca, "a@127.0.0.1");
    let (cert, key) = (tmp("a-cert.pem"), tmp("a-key.pem"));
    copy(&good_cert, &cert);
    copy(&good_key, &key);
    let flags = tls_flags(&cert, &key, &ca);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = daemon_logging("a@127.0.0.1", &[], "tls-cookie", &flags, "info");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    hup(&a);
    wait_for("the failed reload's log line", || {
        log(&a).lines().any(|l| {
            l.contains("WARN")
                && l.contains(
                    "SIGHUP: TLS reload failed; keeping the old certificate: certificate ",
                )
        })
    });
    // New sessions still get the old, good certificate.
    let b = tls_node("b@127.0.0.1", &[&a.listen], "b@127.0.0.1", &ca, &ca, "warn");
    wait_for("b connected to a", || nodes(&b) == ["a@127.0.0.1"]);
    // A node without TLS answers that there is nothing to reload.
    let p = daemon("p@127.0.0.1", &[]);
    let (status, body) = http(&p.admin, "POST", "/tls/reload", None);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("does not use TLS"), "{body}");
}
