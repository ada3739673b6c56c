//! Black-box tests: real `cohort node` processes over loopback TCP, driven
//! only through `cohort ctl` and the HTTP admin API.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The `cohort_runtime_workers` gauge of a node's /metrics.
fn runtime_workers(d: &Daemon) -> u64 {
    let (status, body) = http(&d.admin, "GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("cohort_runtime_workers "))
        .unwrap_or_else(|| panic!("no cohort_runtime_workers in {body}"))
        .parse()
        .unwrap()
}

#[test]
fn threads_sets_the_workers_of_the_node_runtime() {
    // 3 and 1: neither is the default of a 2-core machine, so a setting
    // that is ignored shows.
    let a = daemon_with("a@127.0.0.1", &[], "cli-test-cookie", &["--threads", "3"]);
    let file = config_file("threads = 1\n");
    let b = daemon_with(
        "b@127.0.0.1",
        &[&a.listen],
        "cli-test-cookie",
        &["--config", file.to_str().unwrap()],
    );
    assert_eq!(runtime_workers(&a), 3);
    assert_eq!(runtime_workers(&b), 1);
    // The one-worker node serves as any other: a locked name registered
    // on it is seen by the other node.
    wait_for("a and b connected", || {
        strings(&ctl_json(&b, &["nodes"]), "nodes") == vec![a.name.clone()]
    });
    let hold = Hold::start(&b, &["--register", "solo"]);
    let pid = hold.ready();
    wait_for("a sees solo", || {
        ctl_json(&a, &["whereis", "solo"])["pid"] == pid.as_str()
    });
}

#[test]
fn three_nodes_mesh_and_report_exact_views() {
    let (a, b, c) = three();
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone(), c.name.clone()]
    );
    assert_eq!(
        strings(&ctl_json(&c, &["nodes"]), "nodes"),
        vec![a.name.clone(), b.name.clone()]
    );
    let info = ctl_json(&a, &["info"]);
    assert_eq!(info["state"], "no_conf");
    assert_eq!(info["other_groups"], serde_json::json!([]));
    let human = ctl(&b, &["nodes"]);
    assert_eq!(
        String::from_utf8_lossy(&human.stdout),
        format!("{}\n{}\n", a.name, c.name)
    );
}

#[test]
fn names_and_groups_through_hold_with_cleanup_on_exit() {
    let (a, b, c) = three();
    let mut h = Hold::start(&a, &["--register", "svc", "--join", "pg/workers"]);
    let pid = h.ready();
    let h2 = Hold::start(&b, &["--join", "pg/workers"]);
    let pid2 = h2.ready();
    wait_for("c sees svc", || {
        ctl_json(&c, &["whereis", "svc"])["pid"] == pid.as_str()
    });
    assert_eq!(
        ctl_json(&c, &["whereis", "svc"]),
        serde_json::json!({"name": "svc", "pid": pid})
    );
    assert_eq!(
        strings(&ctl_json(&b, &["names"]), "names"),
        vec!["svc".to_string()]
    );
    wait_for("c sees both workers", || {
        strings(&ctl_json(&c, &["members", "pg", "workers"]), "members").len() == 2
    });
    let mut all = strings(&ctl_json(&c, &["members", "pg", "workers"]), "members");
    all.sort();
    let mut want = vec![pid.clone(), pid2.clone()];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(
        strings(
            &ctl_json(&b, &["members", "pg", "workers", "--local"]),
            "members"
        ),
        vec![pid2.clone()]
    );
    assert_eq!(
        strings(
            &ctl_json(&b, &["members", "pg", "workers", "--remote"]),
            "members"
        ),
        vec![pid.clone()]
    );
    assert_eq!(
        strings(&ctl_json(&c, &["groups", "pg"]), "groups"),
        vec!["workers".to_string()]
    );
    // A message by name reaches the attached process.
    let sent = ctl_json(&c, &["send", "svc", "hello there"]);
    assert_eq!(sent["pid"], pid.as_str());
    assert_eq!(h.line(), "hello there");
    // Killing the holder: its name and membership vanish everywhere.
    h.child.kill().unwrap();
    h.child.wait().unwrap();
    for d in [&a, &b, &c] {
        wait_for("svc gone", || {
            ctl_json(d, &["whereis", "svc"])["pid"].is_null()
        });
        wait_for("membership gone", || {
            strings(&ctl_json(d, &["members", "pg", "workers"]), "members") == vec![pid2.clone()]
        });
    }
    // A send to an unknown name is an error with a message.
    let out = ctl(&c, &["send", "svc", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));
    // A taken name: hold says so and exits 1.
    let _keep = Hold::start(&a, &["--register", "taken"]);
    _keep.ready();
    let mut refused = Hold::start(&b, &["--register", "taken"]);
    assert_eq!(refused.exit_code(), 1);
    assert!(refused.stderr().contains("taken"));
}

#[test]
fn block_and_unblock_is_a_netsplit_with_a_name_clash() {
    let (a, b, c) = three();
    ctl_json(&c, &["block", &a.name]);
    ctl_json(&c, &["block", &b.name]);
    wait_for("split", || {
        strings(&ctl_json(&c, &["nodes"]), "nodes").is_empty()
            && strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let mut on_a = Hold::start(&a, &["--register", "leader"]);
    let pid_a = on_a.ready();
    let mut on_c = Hold::start(&c, &["--register", "leader"]);
    let pid_c = on_c.ready();
    assert_eq!(ctl_json(&b, &["whereis", "leader"])["pid"], pid_a.as_str());
    assert_eq!(ctl_json(&c, &["whereis", "leader"])["pid"], pid_c.as_str());
    ctl_json(&c, &["unblock", &a.name]);
    ctl_json(&c, &["unblock", &b.name]);
    for d in [&a, &b, &c] {
        wait_for("mesh again", || {
            strings(&ctl_json(d, &["nodes"]), "nodes").len() == 2
        });
    }
    let winner = {
        let mut w = Value::Null;
        wait_for("one leader everywhere", || {
            let v: Vec<Value> = [&a, &b, &c]
                .iter()
                .map(|d| ctl_json(d, &["whereis", "leader"])["pid"].clone())
                .collect();
            w = v[0].clone();
            !w.is_null() && v.iter().all(|x| *x == w)
        });
        w
    };
    let (loser, winner_hold) = if winner == pid_a.as_str() {
        (&mut on_c, &mut on_a)
    } else {
        (&mut on_a, &mut on_c)
    };
    assert_eq!(loser.line(), "conflict leader");
    assert_eq!(
        loser.exit_code(),
        3,
        "the kill policy ends the loser with status 3"
    );
    assert!(
        winner_hold.child.try_wait().unwrap().is_none(),
        "the winner keeps running"
    );
}

#[test]
fn a_wrong_cookie_is_refused_and_changes_nothing() {
    let a = daemon("a@127.0.0.1", &[]);
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("pair", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let x = daemon_with("x@127.0.0.1", &[&a.listen], "wrong-cookie", &[]);
    wait_for("x logs the refusal", || {
        std::fs::read_to_string(&x.log)
            .unwrap_or_default()
            .contains("wrong cookie")
    });
    // a logs the refused address too (its log thread may write it after
    // x has heard the refusal).
    wait_for("a logs the refusal", || {
        std::fs::read_to_string(&a.log)
            .unwrap_or_default()
            .contains("wrong cookie")
    });
    assert_eq!(
        strings(&ctl_json(&a, &["nodes"]), "nodes"),
        vec![b.name.clone()]
    );
    assert!(strings(&ctl_json(&x, &["nodes"]), "nodes").is_empty());
}

#[test]
fn bad_flags_and_configs_are_one_line_errors() {
    let bad = tmp("bad.toml");
    std::fs::File::create(&bad)
        .unwrap()
        .write_all(b"name = \"a@127.0.0.1\"\nlisten = \"127.0.0.1:0\"\n[[global_groups]]\nname = \"g1\"\npublish = \"loud\"\nnodes = [\"a@127.0.0.1\"]\n")
        .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["node", "--config", bad.to_str().unwrap()],
            "unknown publish type \"loud\"",
        ),
        (
            vec!["node", "--name", "nohost", "--listen", "127.0.0.1:0"],
            "--name",
        ),
        (vec!["node", "--name", "a@h"], "--listen is required"),
        (
            vec![
                "node",
                "--name",
                "a@h",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "0",
            ],
            "threads: must be at least 1",
        ),
        (
            vec![
                "node",
                "--name",
                "a@h",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "100000",
            ],
            "threads: 100000 is more than 1024",
        ),
        (
            vec!["ctl", "--admin", "127.0.0.1:1", "nodes"],
            "cannot reach the admin API",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .args(&args)
            .env("COHORT_COOKIE", "x")
            .env("COHORT_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} should name {want:?}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: {err:?} is not one line"
        );
    }
    // Argument errors are clap's: the whole message, status 2.
    let out = Command::new(BIN)
        .args(["node", "--bogus"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--bogus") && err.contains("Usage"), "{err}");
    std::fs::remove_file(&bad).unwrap();
}

#[test]
fn bad_http_input_gets_4xx_and_the_node_keeps_serving() {
    let a = daemon("a@127.0.0.1", &[]);
    let cases = [
        ("POST", "/send", Some("{not json")),
        ("POST", "/send", Some("{\"name\": 3}")),
        (
            "POST",
            "/send",
            Some("{\"name\":\"nobody\",\"message\":\"x\"}"),
        ),
        ("POST", "/block", Some("{\"node\":\"no-at-sign\"}")),
        ("GET", "/names?where=planet:mars", None),
        ("GET", "/whereis/x?where=node:bad", None),
        ("GET", "/members/pg/", None),
        ("GET", "/members/pg/g?filter=sideways", None),
        ("GET", "/nope", None),
        ("DELETE", "/info", None),
    ];
    for (m, p, b) in cases {
        let (status, text) = http(&a.admin, m, p, b);
        assert!((400..500).contains(&status), "{m} {p}: {status} {text}");
    }
    let (status, text) = http(&a.admin, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(text.contains("cohort_nodes{kind=\"visible\"} 0"), "{text}");
    assert!(text.contains("cohort_admin_requests_total"));
    assert_eq!(ctl_json(&a, &["info"])["state"], "no_conf");
}

#[test]
fn sigterm_leaves_cleanly_and_peers_drop_the_node_at_once() {
    let a = daemon("a@127.0.0.1", &[]);
    let mut b = daemon("b@127.0.0.1", &[&a.listen]);
    wait_for("pair", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes") == vec![b.name.clone()]
    });
    let h = Hold::start(&b, &["--register", "on_b"]);
    h.ready();
    wait_for("a sees on_b", || {
        !ctl_json(&a, &["whereis", "on_b"])["pid"].is_null()
    });
    Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status()
        .unwrap();
    assert!(b.child.wait().unwrap().success(), "SIGTERM is a clean exit");
    // b said goodbye: a drops it and its names without waiting for a timeout.
    wait_for("b gone", || {
        strings(&ctl_json(&a, &["nodes"]), "nodes").is_empty()
    });
    assert!(ctl_json(&a, &["whereis", "on_b"])["pid"].is_null());
}
