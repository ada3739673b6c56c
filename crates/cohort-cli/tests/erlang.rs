//! `cohort node --erlang-*` beside a real Erlang/OTP node (`erl`, `epmd`,
//! `erl_call`): membership both ways through `ctl members` and
//! `pg:get_members`, the Cohort node in BEAM's `nodes()`, `ctl info`, a BEAM
//! term printed by `ctl hold`, and the error without EPMD.

#[path = "../../cohort-erl/tests/common/mod.rs"]
mod beam;
mod common;

use std::process::{Command, Stdio};

use common::*;

/// A cookie file holding the BEAM nodes' cookie (first line, as OTP reads it).
fn cookie_file() -> std::path::PathBuf {
    let p = tmp("erlang.cookie");
    std::fs::write(&p, format!("{}\n", beam::COOKIE)).unwrap();
    p
}

/// `ctl members SCOPE GROUP` as text lines.
fn members_text(d: &Daemon, scope: &str, group: &str) -> Vec<String> {
    let out = ctl(d, &["members", scope, group]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cohort_node_and_a_beam_node_share_pg_groups() {
    beam::ensure_epmd();
    let b = beam::Beam::start(&beam::unique("beam"), "pg:start(demo).");
    let me = format!("{}@127.0.0.1", beam::unique("cohort"));
    let cookie = cookie_file();
    let d = daemon_with(
        "a@127.0.0.1",
        &[],
        "cli-test-cookie",
        &[
            "--erlang-node",
            &me,
            "--erlang-cookie-file",
            cookie.to_str().unwrap(),
            "--erlang-connect",
            &b.name,
            "--erlang-scope",
            "demo",
        ],
    );

    // A visible node of the BEAM cluster, and `ctl info` says so.
    b.wait_for(&format!("lists:member('{me}', nodes())."), "true");
    wait_for("the BEAM node in ctl info", || {
        let v = ctl_json(&d, &["info"]);
        v["erlang"]["connected"] == serde_json::json!([b.name])
    });
    let v = ctl_json(&d, &["info"]);
    assert_eq!(v["erlang"]["node"], me.as_str());
    assert_eq!(v["erlang"]["scopes"], serde_json::json!(["demo"]));
    let text = String::from_utf8_lossy(&ctl(&d, &["info"]).stdout).to_string();
    assert!(
        text.contains(&format!("erlang node: {me}"))
            && text.contains(&format!("erlang connected: {}", b.name)),
        "{text}"
    );

    // Cohort -> BEAM: a held process joins demo/workers; pg lists it on BEAM.
    let hold = Hold::start(&d, &["--join", "demo/workers"]);
    let cpid = hold.ready();
    b.wait_for(
        &format!("length([P || P <- pg:get_members(demo, workers), node(P) =:= '{me}'])."),
        "1",
    );

    // BEAM -> Cohort: a BEAM process joins; `ctl members` shows its pid
    // with its node, and the Cohort pid that reaches it.
    let local = b.eval(
        "P = spawn(fun() -> receive stop -> ok end end), register(member, P), \
         pg:join(demo, workers, P), pid_to_list(P).",
    );
    // "\"<0.91.0>\"" -> <beam@127.0.0.1.91.0>
    let (id, serial) = local
        .trim_matches(|c| c == '"' || c == '<' || c == '>')
        .split_once('.')
        .map(|(_, rest)| rest.split_once('.').unwrap())
        .unwrap();
    let beam_pid = format!("<{}.{id}.{serial}>", b.name);
    wait_for("the BEAM member in ctl members", || {
        members_text(&d, "demo", "workers").len() == 2
    });
    let lines = members_text(&d, "demo", "workers");
    assert!(lines.contains(&cpid), "{lines:?}");
    let beam_line = lines.iter().find(|l| **l != cpid).unwrap();
    assert!(
        beam_line.starts_with(&format!("{beam_pid} (beam, via <a@127.0.0.1.")),
        "{beam_line:?} should show {beam_pid}"
    );
    let v = ctl_json(&d, &["members", "demo", "workers"]);
    let proxy = strings(&v, "members")
        .into_iter()
        .find(|p| *p != cpid)
        .unwrap();
    assert_eq!(v["beam"][&proxy], beam_pid.as_str());

    // A term from BEAM reaches the held process and prints in Erlang syntax.
    b.eval(&format!(
        "[P ! {{hello, 42, <<\"bin\">>, \"text\", 'Quoted atom', [1.5]}} \
         || P <- pg:get_members(demo, workers), node(P) =:= '{me}'], ok."
    ));
    assert_eq!(
        hold.line(),
        r#"{hello,42,<<"bin">>,"text",'Quoted atom',[1.5]}"#
    );

    // Leaving on BEAM removes the member in Cohort.
    b.eval("pg:leave(demo, workers, whereis(member)).");
    wait_for("the BEAM member gone from ctl members", || {
        members_text(&d, "demo", "workers") == vec![cpid.clone()]
    });

    // The held process ends: its membership vanishes on BEAM.
    drop(hold);
    b.wait_for(
        &format!("length([P || P <- pg:get_members(demo, workers), node(P) =:= '{me}'])."),
        "0",
    );
    let _ = std::fs::remove_file(cookie);
}

/// A free TCP port on loopback (nothing listens on it once this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn without_epmd_the_node_says_so_in_one_line() {
    let port = free_port();
    let cookie = cookie_file();
    let child = Command::new(BIN)
        .args([
            "node",
            "--name",
            "noepmd@127.0.0.1",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "none",
            "--erlang-node",
            "cohort@127.0.0.1",
            "--erlang-cookie-file",
            cookie.to_str().unwrap(),
        ])
        .env("COHORT_COOKIE", "x")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A node that starts anyway runs until killed: end it at the deadline.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(DEADLINE) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    drop(tx);
    watchdog.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let want = format!("cohort: erlang: no EPMD running at 127.0.0.1:{port}");
    assert!(err.starts_with(&want), "{err:?} should start with {want:?}");
    assert!(err.contains("epmd -daemon"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "the node must not start"
    );
    let _ = std::fs::remove_file(cookie);
}
