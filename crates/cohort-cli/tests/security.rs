//! The admin API's defences, from outside: real `cohort` processes on
//! loopback TCP and Unix sockets, raw HTTP and WebSocket clients.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The JSON body of a raw HTTP answer.
fn body(text: &str) -> Value {
    let b = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Every route of the API (and one that does not exist).
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/info", None),
    ("GET", "/nodes", None),
    ("GET", "/names", None),
    ("GET", "/whereis/x", None),
    ("GET", "/scopes", None),
    ("GET", "/members/pg/g", None),
    ("GET", "/groups/pg", None),
    ("POST", "/send", Some(r#"{"name":"x","message":"m"}"#)),
    ("POST", "/unregister", Some(r#"{"name":"x"}"#)),
    ("POST", "/sync", Some("{}")),
    ("POST", "/block", Some(r#"{"node":"b@127.0.0.1"}"#)),
    ("POST", "/unblock", Some(r#"{"node":"b@127.0.0.1"}"#)),
    ("POST", "/connect", Some(r#"{"addr":"127.0.0.1:1"}"#)),
    ("GET", "/metrics", None),
    ("GET", "/attach", None),
    ("GET", "/nope", None),
    ("POST", "/healthz", None),
];

#[test]
fn no_token_or_a_wrong_one_gets_401_everywhere_and_changes_nothing() {
    let a = daemon("a@127.0.0.1", &[]);
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("pair", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let host = a.admin.as_str();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic Y2xpOnRlc3Q="),
        Some(TOKEN),
    ] {
        for (m, p, body_text) in ROUTES {
            let mut headers = vec![("Host", host)];
            if let Some(v) = auth {
                headers.push(("Authorization", v));
            }
            let (status, text) = http_with(host, m, p, *body_text, &headers);
            assert_eq!(status, 401, "{auth:?} {m} {p}: {text}");
            assert_eq!(
                body(&text)["error"].as_str().map(|e| e.contains("token")),
                Some(true)
            );
            assert!(
                text.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{text}"
            );
        }
    }
    // The WebSocket: refused before the upgrade.
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        match Ws::open(&a.admin, &headers) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("attach without the token: {:?}", other.map(|_| ())),
        }
    }
    // Nothing happened: b is still connected, nothing was registered.
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone()]
    );
    // /healthz alone answers without a token, and says nothing more.
    let (status, text) = http_with(host, "GET", "/healthz", None, &[("Host", host)]);
    assert_eq!((status, body(&text)), (200, json!({"ok": true})), "{text}");
    // With the token, every route is served (no 401).
    for (m, p, b) in ROUTES {
        if *p == "/attach" {
            continue;
        }
        let (status, text) = http(host, m, p, *b);
        assert_ne!(status, 401, "{m} {p}: {text}");
    }
    // --metrics-open: /metrics without the token, nothing else.
    let open = daemon_with("m@127.0.0.1", &[], "c", &["--metrics-open"]);
    let (status, text) = http_with(
        &open.admin,
        "GET",
        "/metrics",
        None,
        &[("Host", &open.admin)],
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("cohort_nodes"), "{text}");
    let (status, _) = http_with(&open.admin, "GET", "/info", None, &[("Host", &open.admin)]);
    assert_eq!(status, 401);
    let (status, _) = http_with(&a.admin, "GET", "/metrics", None, &[("Host", &a.admin)]);
    assert_eq!(
        status, 401,
        "/metrics needs the token without --metrics-open"
    );
}

#[test]
fn a_foreign_host_or_origin_is_refused() {
    let a = daemon_with(
        "a@127.0.0.1",
        &[],
        "c",
        &["--admin-host", "cohort.internal"],
    );
    let b = daemon_with("b@127.0.0.1", &[&a.listen], "c", &[]);
    wait_for("pair", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let auth = format!("Bearer {TOKEN}");
    let port = a.admin.rsplit_once(':').unwrap().1;
    // DNS rebinding: the right token cannot be sent by a web page, but the
    // Host check holds even with it.
    for host in [
        "attacker.example",
        "evil.example:80",
        &format!("evil.example:{port}"),
        "127.0.0.1",
    ] {
        for (m, p, bd) in [
            ("POST", "/block", Some(r#"{"node":"b@127.0.0.1"}"#)),
            ("GET", "/info", None),
            ("GET", "/healthz", None),
        ] {
            let (status, text) = http_with(
                &a.admin,
                m,
                p,
                bd,
                &[("Host", host), ("Authorization", &auth)],
            );
            assert_eq!(status, 421, "Host {host}: {m} {p}: {text}");
            assert!(
                body(&text)["error"].as_str().unwrap().contains("Host"),
                "{text}"
            );
        }
    }
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone()],
        "the refused /block did nothing"
    );
    // The names that are the API's own.
    for host in [
        a.admin.clone(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("cohort.internal:{port}"),
    ] {
        let (status, text) = http_with(
            &a.admin,
            "GET",
            "/info",
            None,
            &[("Host", &host), ("Authorization", &auth)],
        );
        assert_eq!(status, 200, "Host {host}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("access-control-"),
            "{text}"
        );
    }
    // A browser's cross-site request or WebSocket, even with a good Host.
    let good_host = a.admin.as_str();
    for origin in ["http://evil.example", "null", "https://127.0.0.1:1"] {
        let (status, text) = http_with(
            &a.admin,
            "POST",
            "/block",
            Some(r#"{"node":"b@127.0.0.1"}"#),
            &[
                ("Host", good_host),
                ("Origin", origin),
                ("Authorization", &auth),
            ],
        );
        assert_eq!(status, 403, "Origin {origin}: {text}");
        for host in [good_host, "evil.example"] {
            match Ws::open(
                &a.admin,
                &[("Host", host), ("Origin", origin), ("Authorization", &auth)],
            ) {
                Err(tungstenite::Error::Http(r)) => {
                    assert!(
                        [403, 421].contains(&r.status().as_u16()),
                        "{origin} {host}: {r:?}"
                    )
                }
                other => panic!("Origin {origin}, Host {host}: {:?}", other.map(|_| ())),
            }
        }
    }
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone()]
    );
    // The API's own origin and no Origin at all (a program) are fine.
    let own = format!("http://{}", a.admin);
    let mut ws = Ws::open(&a.admin, &[("Origin", &own), ("Authorization", &auth)]).unwrap();
    ws.send(tungstenite::Message::Text(
        json!({"op": "register", "name": "own"}).to_string().into(),
    ))
    .unwrap();
    let mut w = Ws::attach(&a);
    assert_eq!(
        w.call(json!({"op": "register", "name": "mine"}))["event"],
        "registered"
    );
}

/// A fresh HOME with nothing in it.
fn home() -> std::path::PathBuf {
    let h = tmp("home");
    std::fs::create_dir_all(&h).unwrap();
    h
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn ctl_finds_the_token_as_the_node_does() {
    let h = home();
    let a = daemon_cmd("a@127.0.0.1", &[], "c", &[], "warn", |c| {
        c.env("HOME", &h).env_remove("COHORT_ADMIN_TOKEN");
    });
    let file = h.join(".cohort.admin-token");
    assert_eq!(mode(&file), 0o600, "the token file is private");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(token.len() >= 32, "{token:?}");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["ctl", "--admin", &a.admin])
            .args(args)
            .env_remove("COHORT_ADMIN_TOKEN")
            .env("HOME", &h);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // The user who started the node: the README's commands as they are.
    let (code, out, err) = run(&[], &["names"]);
    assert_eq!((code, out.as_str()), (Some(0), "(none)\n"), "{err}");
    let mut held = Command::new(BIN)
        .args(["ctl", "--admin", &a.admin, "hold", "--register", "svc"])
        .env_remove("COHORT_ADMIN_TOKEN")
        .env("HOME", &h)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("svc held", || run(&[], &["names"]).1 == "svc\n");
    let _ = held.kill();
    let _ = held.wait();
    // The environment wins over the file.
    let (code, _, err) = run(
        &[("COHORT_ADMIN_TOKEN", &token), ("HOME", "/nonexistent")],
        &["info"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&[("COHORT_ADMIN_TOKEN", "wrong")], &["info"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("token"), "{err}");
    // Another user (another HOME) has no token: a one-line error.
    let other = home();
    let (code, _, err) = run(&[("HOME", other.to_str().unwrap())], &["info"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no admin token"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // --admin-token-file, on both sides.
    let tf = tmp("token");
    std::fs::write(&tf, "from-a-file\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = daemon_cmd(
        "f@127.0.0.1",
        &[],
        "c",
        &["--admin-token-file", tf.to_str().unwrap()],
        "warn",
        |c| {
            c.env_remove("COHORT_ADMIN_TOKEN");
        },
    );
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--admin",
            &f.admin,
            "--admin-token-file",
            tf.to_str().unwrap(),
            "info",
        ])
        .env_remove("COHORT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token file others can read is refused by the node and by ctl.
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args([
            "node",
            "--name",
            "g@127.0.0.1",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .args(["--admin-token-file", tf.to_str().unwrap()])
        .env_remove("COHORT_ADMIN_TOKEN")
        .env("COHORT_COOKIE", "c")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("owner only"), "{err}");
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--admin",
            &f.admin,
            "--admin-token-file",
            tf.to_str().unwrap(),
            "info",
        ])
        .env_remove("COHORT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner only"));
}

#[test]
fn a_unix_socket_is_private_and_ctl_uses_it() {
    let dir = home();
    let sock = dir.join("admin.sock");
    let spec = format!("unix:{}", sock.display());
    let a = daemon_with("a@127.0.0.1", &[], "c", &["--admin", &spec]);
    assert_eq!(a.admin, spec, "the node prints where it listens");
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(ctl_json(&a, &["names"])["names"], json!([]));
    let h = Hold::start(&a, &["--register", "over-unix"]);
    h.ready();
    assert_eq!(
        strings(&ctl_json(&a, &["names"]), "names"),
        vec!["over-unix"]
    );
    // Raw, without the token: 401 here too.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET /names HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    // A second node on the same path is refused; the first keeps it.
    let out = Command::new(BIN)
        .args([
            "node",
            "--name",
            "b@127.0.0.1",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            &spec,
        ])
        .env("COHORT_COOKIE", "c")
        .env("COHORT_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert_eq!(
        strings(&ctl_json(&a, &["names"]), "names"),
        vec!["over-unix"]
    );
}

#[test]
fn admin_none_a_taken_port_and_non_loopback_addresses() {
    // Two nodes without an admin API on one host.
    let a = daemon_with("a@127.0.0.1", &[], "c", &["--admin", "none"]);
    let b = daemon_with("b@127.0.0.1", &[&a.listen], "c", &["--admin", "none"]);
    assert_eq!((a.admin.as_str(), b.admin.as_str()), ("none", "none"));
    // A taken port: said so, with what to do.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // A node that should refuse to start but does not is killed at the
    // deadline (and the test fails), never waited for for ever.
    let node = |admin: &str, extra: &[&str]| {
        let mut child = Command::new(BIN)
            .args(["node", "--name", "x@127.0.0.1", "--listen", "127.0.0.1:0"])
            .args(["--admin", admin])
            .args(extra)
            .env("COHORT_COOKIE", "c")
            .env("COHORT_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() && t.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    };
    let (code, err) = node(&addr, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is in use") && err.contains("--admin none"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Not loopback: refused without TLS or --admin-insecure.
    for open in ["0.0.0.0:0", "[::]:0"] {
        let (code, err) = node(open, &[]);
        assert_eq!(code, Some(1), "{open}: {err}");
        assert!(
            err.contains("--admin-tls-cert") && err.contains("--admin-insecure"),
            "{err}"
        );
    }
    let d = daemon_cmd(
        "i@127.0.0.1",
        &[],
        "c",
        &["--admin", "0.0.0.0:0", "--admin-insecure"],
        "warn",
        |_| {},
    );
    let port = d.admin.rsplit_once(':').unwrap().1;
    let local = format!("127.0.0.1:{port}");
    wait_for("the warning", || {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("plain HTTP")
    });
    let (status, text) = http(&local, "GET", "/info", None);
    assert_eq!(status, 200, "{text}");
}

/// A self-signed certificate for localhost and 127.0.0.1: (cert, key) files.
fn self_signed() -> (std::path::PathBuf, std::path::PathBuf) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (tmp("cert.pem"), tmp("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[test]
fn a_tls_admin_api_serves_ctl_with_its_ca() {
    let (cert, key) = self_signed();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let a = daemon_with(
        "a@127.0.0.1",
        &[],
        "c",
        &[
            "--admin",
            "0.0.0.0:0",
            "--admin-tls-cert",
            cert_s,
            "--admin-tls-key",
            key_s,
        ],
    );
    assert!(a.admin.starts_with("https://0.0.0.0:"), "{}", a.admin);
    let port = a.admin.rsplit_once(':').unwrap().1;
    let ctl = |admin: &str, extra: &[&str], args: &[&str]| {
        let out = Command::new(BIN)
            .args(["ctl", "--admin", admin])
            .args(extra)
            .args(args)
            .env("COHORT_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for admin in [
        format!("https://localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
    ] {
        let (code, out, err) = ctl(&admin, &["--admin-ca", cert_s], &["names"]);
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "(none)\n"),
            "{admin}: {err}"
        );
    }
    // hold over wss://.
    let admin = format!("https://localhost:{port}");
    let mut h = Command::new(BIN)
        .args([
            "ctl",
            "--admin",
            &admin,
            "--admin-ca",
            cert_s,
            "hold",
            "--register",
            "tls-held",
        ])
        .env("COHORT_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("tls-held", || {
        ctl(&admin, &["--admin-ca", cert_s], &["names"]).1 == "tls-held\n"
    });
    let _ = h.kill();
    let _ = h.wait();
    // Without the CA, or with another one: refused, one line.
    let (code, _, err) = ctl(&admin, &[], &["names"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--admin-ca"), "{err}");
    let (other, _) = self_signed();
    let (code, _, err) = ctl(&admin, &["--admin-ca", other.to_str().unwrap()], &["names"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS"), "{err}");
    // Plain HTTP to the TLS port gets no answer.
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        !String::from_utf8_lossy(&out).contains("\"ok\""),
        "served in plain HTTP"
    );
}

/// VmRSS and VmHWM of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_memory_stays_bounded() {
    let a = daemon_with(
        "a@127.0.0.1",
        &[],
        "c",
        &["--admin-ws-queue-bytes", "1048576"],
    );
    let pid = a.child.id();
    let (start_rss, _) = rss_kib(pid);
    let mut slow = Ws::attach(&a);
    assert_eq!(
        slow.call(json!({"op": "register", "name": "slow"}))["event"],
        "registered"
    );
    assert_eq!(
        slow.call(json!({"op": "join", "scope": "pg", "group": "readers"}))["event"],
        "joined"
    );
    // From here on `slow` reads nothing. 20,000 messages of 10 KB.
    let mut sender = Ws::attach(&a);
    let msg = "x".repeat(10 * 1024);
    let mut delivered = 0;
    for _ in 0..20_000 {
        let r = sender.call(json!({"op": "send", "name": "slow", "message": msg}));
        if r["event"] != "sent" {
            break;
        }
        delivered += 1;
    }
    let (rss, hwm) = rss_kib(pid);
    eprintln!("node RSS {start_rss} KiB at start, {rss} KiB after {delivered} messages of 10 KB (peak {hwm} KiB)");
    assert!(delivered < 20_000, "the slow client was never dropped");
    // Its process exited as on a disconnect: the name and membership went.
    wait_for("slow's name gone", || {
        ctl_json(&a, &["whereis", "slow"])["pid"].is_null()
    });
    wait_for("slow's membership gone", || {
        strings(&ctl_json(&a, &["members", "pg", "readers"]), "members").is_empty()
    });
    assert!(rss < 96 * 1024, "VmRSS {rss} KiB after the slow reader");
    assert!(hwm < 96 * 1024, "VmHWM {hwm} KiB during the slow reader");
    // Reading now, the client finds the close frame and its reason.
    let t = Instant::now();
    let reason = loop {
        assert!(t.elapsed() < DEADLINE, "no close frame");
        match slow.socket().read() {
            Ok(tungstenite::Message::Close(Some(f))) => break f.reason.to_string(),
            Ok(tungstenite::Message::Close(None)) => panic!("a close frame without a reason"),
            Ok(_) => continue,
            Err(e) => panic!("the connection ended without a close frame: {e}"),
        }
    };
    assert!(reason.contains("does not read"), "{reason}");
    // The node goes on serving.
    assert_eq!(
        sender.call(json!({"op": "register", "name": "after"}))["event"],
        "registered"
    );
}

/// Whether the node closed `s` (EOF or reset) within the read timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_slow_header_and_slow_body_connections_are_closed() {
    let a = daemon_with(
        "a@127.0.0.1",
        &[],
        "c",
        &[
            "--admin-header-timeout-ms",
            "500",
            "--admin-idle-timeout-ms",
            "500",
        ],
    );
    // 100 idle connections that never send a byte.
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&a.admin).unwrap())
        .collect();
    for s in &mut idle {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        assert!(closed(s), "an idle connection stayed open");
    }
    // 20 slowloris connections: a header byte every 50 ms, for ever.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&a.admin).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s.write_all(b"GET /info HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let t = Instant::now();
    let mut open: Vec<usize> = (0..slow.len()).collect();
    while !open.is_empty() {
        assert!(
            t.elapsed() < DEADLINE,
            "{} slowloris connections still open",
            open.len()
        );
        open.retain(|&i| {
            let s = &mut slow[i];
            s.write_all(b"X").is_ok() && !closed(s)
        });
    }
    // A body announced but not sent.
    let mut s = TcpStream::connect(&a.admin).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "POST /send HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":",
        a.admin
    )
    .unwrap();
    let mut out = String::new();
    let r = s.read_to_string(&mut out);
    assert!(
        !matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a stalled body kept its connection open: {r:?} {out}"
    );
    assert!(!out.contains(" 200 "), "{out}");
    // Requests that go at a normal pace are served.
    assert_eq!(http(&a.admin, "GET", "/info", None).0, 200);
}

#[test]
fn connections_past_the_cap_are_closed_at_once() {
    let a = daemon_with("a@127.0.0.1", &[], "c", &["--admin-max-connections", "4"]);
    // Four slots: three idle connections and an attached client.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&a.admin).unwrap())
        .collect();
    let mut w = Ws::attach(&a);
    let mut fifth = TcpStream::connect(&a.admin).unwrap();
    fifth.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = write!(fifth, "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", a.admin);
    // Closed without an answer (a served request would be answered at
    // once; an unserved one would stay open until the header timeout).
    let mut out = String::new();
    let r = fifth.read_to_string(&mut out);
    assert!(
        r.is_ok()
            || !matches!(
                r.as_ref().unwrap_err().kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        "a fifth connection stayed open: {r:?}"
    );
    assert!(out.is_empty(), "a fifth connection was served: {out}");
    // The attached client is unaffected; once it leaves, its slot is free.
    assert_eq!(
        w.call(json!({"op": "register", "name": "w"}))["event"],
        "registered"
    );
    drop(w);
    drop(idle);
    wait_for("a free slot", || {
        let mut s = TcpStream::connect(&a.admin).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let _ = write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            a.admin
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.contains("\"ok\"")
    });
}

#[test]
fn connect_tells_only_that_it_could_not_connect() {
    let a = daemon("a@127.0.0.1", &[]);
    // A closed port, and an open one that is not a cohort node.
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in other.incoming() {
            let Ok(mut s) = s else { break };
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\nHTTP/1.1 200 OK\r\n\r\nnot cohort");
        }
    });
    let mut errors = Vec::new();
    for addr in [&closed_port, &other_addr] {
        let (status, text) = http(
            &a.admin,
            "POST",
            "/connect",
            Some(&format!("{{\"addr\":\"{addr}\"}}")),
        );
        assert_eq!(status, 502, "{text}");
        errors.push(
            body(&text)["error"]
                .as_str()
                .unwrap()
                .replace(addr.as_str(), "ADDR"),
        );
    }
    assert_eq!(errors[0], errors[1], "the answers tell the two ports apart");
    assert!(errors[0].contains("could not connect"), "{}", errors[0]);
    // The operator finds the reason class in the log.
    wait_for("the classes in the log", || {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        log.contains(&format!("addr={closed_port} class=\"refused\""))
            && log.contains(&format!("addr={other_addr} class=\"not a cohort node\""))
    });
    // Success still answers with the node.
    let b = daemon("b@127.0.0.1", &[]);
    let (status, text) = http(
        &a.admin,
        "POST",
        "/connect",
        Some(&format!("{{\"addr\":\"{}\"}}", b.listen)),
    );
    assert_eq!(
        (status, body(&text)),
        (200, json!({"node": b.name})),
        "{text}"
    );
}

#[test]
fn unregistering_another_clients_name_is_audited() {
    let a = daemon_logging("a@127.0.0.1", &[], "c", &[], "info");
    let h = Hold::start(&a, &["--register", "svc"]);
    let pid = h.ready();
    let out = ctl(&a, &["unregister", "svc"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(h.line(), "unregistered svc by unregister");
    let mut other = Ws::attach(&a);
    let h2 = Hold::start(&a, &["--register", "db"]);
    h2.ready();
    assert_eq!(
        other.call(json!({"op": "unregister", "name": "db"}))["event"],
        "unregistered"
    );
    assert_eq!(h2.line(), "unregistered db by unregister");
    wait_for("two audit lines", || {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        log.lines().filter(|l| l.contains("cohort::audit")).count() == 2
    });
    let log = std::fs::read_to_string(&a.log).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cohort::audit"))
        .collect();
    assert!(
        lines[0].contains("name=\"svc\"") && lines[0].contains(&pid) && lines[0].contains("conn#"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("name=\"db\"")
            && lines[1].contains("via=\"attach\"")
            && lines[1].contains("127.0.0.1:"),
        "{}",
        lines[1]
    );
    // Its own name: no audit line.
    let mut me = Ws::attach(&a);
    me.call(json!({"op": "register", "name": "mine"}));
    assert_eq!(
        me.call(json!({"op": "unregister", "name": "mine"}))["event"],
        "unregistered"
    );
    assert_eq!(
        me.call(json!({"op": "register", "name": "mine2"}))["event"],
        "registered"
    );
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("cohort::audit")).count(),
        2,
        "{log}"
    );
}

#[test]
fn bad_input_answers_are_unchanged_behind_the_token() {
    let a = daemon("a@127.0.0.1", &[]);
    for (m, p, b, want) in [
        ("POST", "/send", Some("{not json"), 400),
        ("POST", "/send", Some(r#"{"name": 3}"#), 400),
        ("GET", "/nodes?hidden=perhaps", None, 400),
    ] {
        let (status, text) = http(&a.admin, m, p, b);
        assert_eq!(status, want, "{m} {p}: {text}");
        assert!(body(&text)["error"].is_string(), "{text}");
    }
    // A huge body (3 MiB; the node reads 2 MiB at most) is refused. It is
    // written from another thread: the node may answer and close first.
    let mut s = TcpStream::connect(&a.admin).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let huge = format!("{{\"name\":\"x\",\"message\":\"{}\"}}", "y".repeat(3 << 20));
    let head = format!(
        "POST /send HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        a.admin,
        huge.len()
    );
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|_| w.write_all(huge.as_bytes()));
    });
    let mut out = vec![0u8; 4096];
    let n = s.read(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out[..n]).to_string();
    drop(s);
    let _ = writer.join();
    assert!(
        text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 413"),
        "{text}"
    );
    assert!(
        body(&text)["error"]
            .as_str()
            .is_some_and(|e| e.contains("length limit")),
        "{text}"
    );
}
