//! The daemon as its users meet it: the demo under load, scopes readable
//! from every node, holders told about their names, logs that never stop
//! the node, and `ctl` that says what it did. Real `cohort` processes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use serde_json::{json, Value};

#[test]
fn the_demo_passes_twenty_runs_in_a_row_with_the_cpu_busy() {
    let _busy = Busy::start(2);
    for run in 1..=20 {
        let out = Command::new(BIN).arg("demo").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("== all checks passed"),
            "run {run} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("FAILED"), "run {run}:\n{stdout}");
    }
}

/// The command's stdout is a pipe whose reader has gone.
fn with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("COHORT_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // Read one line at most (`| head -1`), then close the pipe.
    let mut first = String::new();
    let _ = out.read_line(&mut first);
    drop(out);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let a = daemon("a@127.0.0.1", &[]);
    let _h1 = Hold::start(&a, &["--register", "one"]);
    let _h2 = Hold::start(&a, &["--register", "two"]);
    wait_for("two names", || {
        strings(&ctl_json(&a, &["names"]), "names").len() == 2
    });
    let admin = a.admin.clone();
    for args in [
        vec!["demo"],
        vec!["ctl", "--admin", &admin, "names"],
        vec!["ctl", "--admin", &admin, "info"],
        vec!["--help"],
    ] {
        let (status, err) = with_closed_stdout(&args);
        assert!(
            status.success() || status.code().is_none(),
            "{args:?}: {status} {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} printed on stderr: {err}");
    }
}

#[test]
fn any_scope_reads_the_same_from_every_node_at_the_first_read() {
    let (a, b, c) = three();
    let on_a = Hold::start(&a, &["--join", "app/workers"]);
    let pid_a = on_a.ready();
    let on_b = Hold::start(&b, &["--join", "app/workers", "--join", "app/other"]);
    let pid_b = on_b.ready();
    let mut both = vec![pid_a.clone(), pid_b.clone()];
    both.sort();
    // a and b run `app`: wait until they see each other's member.
    for d in [&a, &b] {
        wait_for("a and b share app/workers", || {
            let mut v = strings(&ctl_json(d, &["members", "app", "workers"]), "members");
            v.sort();
            v == both
        });
    }
    // c never configured nor used `app`: its first read already holds both.
    let mut first = strings(&ctl_json(&c, &["members", "app", "workers"]), "members");
    first.sort();
    assert_eq!(first, both, "the first read on c");
    let mut groups = strings(&ctl_json(&c, &["groups", "app"]), "groups");
    groups.sort();
    assert_eq!(groups, vec!["other", "workers"]);
    assert_eq!(
        strings(
            &ctl_json(&c, &["members", "app", "workers", "--remote"]),
            "members"
        )
        .len(),
        2
    );
    // A monitor from c: the members at once, then every change.
    let mut w = Ws::attach(&c);
    let m = w.call(json!({"op": "monitor", "scope": "app", "group": "other"}));
    assert_eq!(m["event"], "monitoring", "{m}");
    assert_eq!(m["members"], json!([pid_b]));
    let third = Hold::start(&a, &["--join", "app/other"]);
    let pid_3 = third.ready();
    let ev = w.next();
    assert_eq!(
        (ev["event"].clone(), ev["kind"].clone(), ev["pids"].clone()),
        (json!("pg"), json!("join"), json!([pid_3])),
        "{ev}"
    );
    drop(third);
    let ev = w.next();
    assert_eq!(
        (ev["kind"].clone(), ev["pids"].clone()),
        (json!("leave"), json!([pid_3])),
        "{ev}"
    );
    // A join from c reaches the others.
    let r = w.call(json!({"op": "join", "scope": "app", "group": "workers"}));
    assert_eq!(r["event"], "joined", "{r}");
    wait_for("c's member on a", || {
        strings(&ctl_json(&a, &["members", "app", "workers"]), "members").contains(&w.pid)
    });
}

#[test]
fn scopes_started_on_use_are_capped_and_stopped_when_idle() {
    // Idle long enough that the steps before the first wait cannot outlast
    // it on a loaded machine (they read scopes that must still run).
    let cfg = config_file("scopes = [\"kept\"]\nmax_scopes = 4\nscope_idle_ms = 4000\n");
    let a = daemon_with(
        "a@127.0.0.1",
        &[],
        "cli-test-cookie",
        &["--config", cfg.to_str().unwrap()],
    );
    let names = |d: &Daemon| -> Vec<String> {
        ctl_json(d, &["scopes"])["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&a), vec!["kept", "pg"]);
    ctl_json(&a, &["members", "tmp1", "g"]);
    let held = Hold::start(&a, &["--join", "tmp2/g"]);
    held.ready();
    assert_eq!(names(&a), vec!["kept", "pg", "tmp1", "tmp2"]);
    // The cap: a fifth scope is refused with a clear error.
    let out = ctl(&a, &["members", "tmp3", "g"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_scopes = 4"), "{err}");
    // An unused scope goes; one with a local member stays.
    wait_for("tmp1 stopped", || !names(&a).contains(&"tmp1".to_string()));
    assert_eq!(names(&a), vec!["kept", "pg", "tmp2"]);
    // Its member gone, tmp2 goes too; configured scopes never do.
    drop(held);
    wait_for("tmp2 stopped", || names(&a) == vec!["kept", "pg"]);
    // A stopped scope starts again on its next use.
    assert!(strings(&ctl_json(&a, &["members", "tmp1", "g"]), "members").is_empty());
}

#[test]
fn hold_is_ready_only_after_every_register_and_join_succeeded() {
    let a = daemon("a@127.0.0.1", &[]);
    for (args, want) in [
        (vec!["--register", "x", "--join", "app/"], "group is empty"),
        (vec!["--join", "/workers"], "scope is empty"),
        (vec!["--register", ""], "name is empty"),
        (vec!["--join", "no-slash"], "expected SCOPE/GROUP"),
    ] {
        let mut h = Hold::start(&a, &args);
        assert_eq!(h.exit_code(), 1, "{args:?}");
        let err = h.stderr();
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            h.lines.try_recv().is_err(),
            "{args:?}: hold printed on stdout"
        );
    }
    // Nothing it did before the failure stays: `x` went with its process.
    wait_for("x gone", || {
        ctl_json(&a, &["whereis", "x"])["pid"].is_null()
    });
}

#[test]
fn a_holder_is_told_when_its_name_goes() {
    let a = daemon("a@127.0.0.1", &[]);
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("pair", || {
        strings(&ctl_json(&b, &["nodes"]), "nodes") == vec![a.name.clone()]
    });
    let h = Hold::start(&a, &["--register", "svc"]);
    let pid = h.ready();
    let h2 = Hold::start(&a, &["--register", "db"]);
    h2.ready();
    wait_for("svc on b", || {
        ctl_json(&b, &["whereis", "svc"])["pid"] == pid.as_str()
    });
    // Unregistered from another node.
    let out = ctl(&b, &["unregister", "svc"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("unregistered svc (held by {pid})")
    );
    assert_eq!(h.line(), "unregistered svc by unregister");
    // By another attached program on the same node.
    let mut other = Ws::attach(&a);
    let r = other.call(json!({"op": "unregister", "name": "db"}));
    assert_eq!(r["event"], "unregistered", "{r}");
    assert_eq!(h2.line(), "unregistered db by unregister");
    // Its own unregister is the reply to its command, not news.
    let mut me = Ws::attach(&a);
    assert_eq!(
        me.call(json!({"op": "register", "name": "mine"}))["event"],
        "registered"
    );
    assert_eq!(
        me.call(json!({"op": "unregister", "name": "mine"}))["event"],
        "unregistered"
    );
    assert_eq!(
        me.call(json!({"op": "register", "name": "mine2"}))["event"],
        "registered",
        "no name_lost event came in between"
    );
    let out = ctl(&a, &["unregister", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));
}

#[test]
fn names_are_checked_where_they_enter() {
    let a = daemon("a@127.0.0.1", &[]);
    let mut w = Ws::attach(&a);
    let long = "x".repeat(256);
    for cmd in [
        json!({"op": "register", "name": ""}),
        json!({"op": "register", "name": long}),
        json!({"op": "join", "scope": "pg", "group": ""}),
        json!({"op": "join", "scope": "", "group": "g"}),
        json!({"op": "monitor", "scope": "pg", "group": long}),
        json!({"op": "send", "name": "", "message": "m"}),
    ] {
        let r = w.call(cmd.clone());
        assert_eq!(r["event"], "error", "{cmd} → {r}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("is empty") || e.contains("at most 255"), "{e}");
    }
    let path = format!("/members/pg/{long}");
    for (m, p, b) in [
        ("GET", path.as_str(), None),
        ("POST", "/send", Some(r#"{"name":"","message":"m"}"#)),
        ("POST", "/unregister", Some(r#"{"name":""}"#)),
    ] {
        let (status, text) = http(&a.admin, m, p, b);
        assert_eq!(status, 400, "{m} {p}: {text}");
    }
    assert!(strings(&ctl_json(&a, &["names"]), "names").is_empty());
}

/// The JSON body of a raw HTTP answer.
fn body(text: &str) -> Value {
    let b = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn every_answer_is_json_even_refusals() {
    let a = daemon("a@127.0.0.1", &[]);
    for (m, p, b, want) in [
        ("GET", "/nope", None, 404),
        ("DELETE", "/info", None, 405),
        ("GET", "/send", None, 405),
        ("GET", "/nodes?hidden=perhaps", None, 400),
        ("GET", "/members/pg/%FF", None, 400),
        ("POST", "/send", Some("{not json"), 400),
    ] {
        let (status, text) = http(&a.admin, m, p, b);
        assert_eq!(status, want, "{m} {p}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{m} {p}: {text}"
        );
        let v = body(&text);
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{m} {p}: {v}"
        );
    }
}

#[test]
fn a_full_or_closed_stderr_never_stops_the_node() {
    // Full: a pipe nobody reads. Closed: a pipe whose reader has gone.
    // Every request logs at trace level, so the pipe fills within a few.
    for close in [false, true] {
        let what = if close { "closed" } else { "full" };
        let mut child = Command::new(BIN)
            .args(["node", "--name", "a@127.0.0.1", "--listen", "127.0.0.1:0"])
            .args(["--admin", "127.0.0.1:0"])
            .env("COHORT_COOKIE", "c")
            .env("COHORT_ADMIN_TOKEN", TOKEN)
            .env("COHORT_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let _unread = if close {
            drop(stderr);
            None
        } else {
            Some(stderr)
        };
        let line = first_line(child.stdout.take().unwrap());
        let admin = line.split_whitespace().nth(6).unwrap();
        let admin = admin.trim_start_matches("http://").to_string();
        let t = Instant::now();
        for i in 0..300 {
            let (status, text) = http(
                &admin,
                "POST",
                "/connect",
                Some(r#"{"addr":"127.0.0.1:1"}"#),
            );
            assert_eq!(status, 502, "{what} stderr, request {i}: {text}");
            assert!(
                t.elapsed() < DEADLINE,
                "{what} stderr: the node stopped answering"
            );
        }
        assert!(child.try_wait().unwrap().is_none(), "{what}: node died");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn a_wrong_cookie_is_logged_once_per_peer() {
    let a = daemon_logging("a@127.0.0.1", &[], "right", &[], "debug");
    let x = daemon_logging("x@127.0.0.1", &[&a.listen], "wrong", &[], "debug");
    let count = |d: &Daemon, what: &str| {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    };
    // Several refusals (x retries with a backoff up to 2 s)...
    wait_for("three refusals on a", || {
        count(&a, "wrong cookie") >= 3 && count(&x, "wrong cookie") >= 3
    });
    // ...one warning on a; on x one from the handshake and one from the
    // seed's retry loop; the rest at debug level.
    let warns = |d: &Daemon| {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") && (l.contains("wrong cookie")))
            .count()
    };
    assert_eq!(warns(&a), 1, "{}", std::fs::read_to_string(&a.log).unwrap());
    assert_eq!(warns(&x), 2, "{}", std::fs::read_to_string(&x.log).unwrap());
    let log = std::fs::read_to_string(&x.log).unwrap();
    assert!(!log.contains("\x1b["), "colour codes in a log file: {log}");
}

#[test]
fn ctl_takes_its_options_anywhere_and_says_what_it_did() {
    let (a, b, c) = three();
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("COHORT_ADMIN")
            .env("COHORT_ADMIN_TOKEN", TOKEN);
        if let Some(e) = env {
            cmd.env("COHORT_ADMIN", e);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // --admin and --json after the subcommand; COHORT_ADMIN.
    let (code, out, _) = run(&["ctl", "nodes", "--json", "--admin", &a.admin], None);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["nodes"],
        json!([b.name, c.name])
    );
    let (code, out, _) = run(&["ctl", "nodes"], Some(&a.admin));
    assert_eq!((code, out), (Some(0), format!("{}\n{}\n", b.name, c.name)));
    // Empty lists and what block/unblock did.
    let (_, out, _) = run(&["ctl", "names"], Some(&a.admin));
    assert_eq!(out, "(none)\n");
    let (_, out, _) = run(&["ctl", "block", &c.name], Some(&a.admin));
    assert!(out.starts_with(&format!("blocked {}", c.name)), "{out}");
    let (_, out, _) = run(&["ctl", "unblock", &c.name], Some(&a.admin));
    assert!(out.starts_with(&format!("unblocked {}", c.name)), "{out}");
    let (_, out, _) = run(&["ctl", "unblock", &c.name], Some(&a.admin));
    assert_eq!(out, format!("{} was not blocked\n", c.name));
    // Addresses that are not HOST:PORT are refused, naming the problem.
    for (bad, why) in [
        ("localhost", "has no port"),
        ("http://127.0.0.1:4370", "has a scheme"),
        ("127.0.0.1:4370/x", "has a path"),
        ("127.0.0.1:http", "is not a port"),
    ] {
        let (code, _, err) = run(&["ctl", "--admin", bad, "nodes"], None);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains(why), "{bad}: {err}");
        let (code, _, err) = run(&["ctl", "nodes"], Some(bad));
        assert_eq!(code, Some(2), "COHORT_ADMIN={bad}: {err}");
    }
    // clap's whole message, with its suggestion, and status 2.
    let (code, _, err) = run(&["ctl", "nodez"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nodes") && err.contains("Usage"), "{err}");
    // info: the node itself and every field of the HTTP answer.
    let (_, out, _) = run(&["ctl", "info"], Some(&a.admin));
    assert!(
        out.contains(&format!("node: {} (creation", a.name)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "own group nodes: {}, {}, {}",
            a.name, b.name, c.name
        )),
        "{out}"
    );
    let (_, out, _) = run(&["ctl", "info", "--json"], Some(&a.admin));
    let v: Value = serde_json::from_str(&out).unwrap();
    let (_, http_answer) = http(&a.admin, "GET", "/info", None);
    assert_eq!(v, body(&http_answer));
    for k in ["node", "creation", "monitors", "state", "own_group_nodes"] {
        assert!(v.get(k).is_some(), "{k} missing from {v}");
    }
}
