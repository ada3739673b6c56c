//! The examples that need a running `cohort node`: `examples/attach.py`, an
//! external Python program attached over the admin WebSocket, run against a
//! real node (Python 3 with the `websockets` package; .ci/run installs it).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

#[test]
fn the_python_example_registers_joins_and_answers_by_name() {
    let d = daemon("py@127.0.0.1", &[]);
    // The Rust side: a process holding the name the answers go to.
    let rust = Hold::start(&d, &["--register", "rust-side"]);
    rust.ready();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/attach.py");
    let mut py = Command::new("python3")
        .arg(script)
        .args(["--admin", &d.admin, "--name", "py-echo"])
        .args(["--group", "demo/echo", "--reply-to", "rust-side"])
        .env("COHORT_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let (tx, lines) = mpsc::channel();
    let out = py.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut line = |what: &str| {
        lines.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            let _ = py.kill();
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(py.stderr.as_mut().unwrap(), &mut err);
            panic!("no {what} from attach.py; stderr: {err}")
        })
    };
    let ready = line("ready line");
    let pid = ready.strip_prefix("ready ").expect("ready PID").to_string();
    // Its name and membership are the node's like any process's.
    assert_eq!(ctl_json(&d, &["whereis", "py-echo"])["pid"], pid.as_str());
    assert_eq!(
        strings(&ctl_json(&d, &["members", "demo", "echo"]), "members"),
        vec![pid.clone()]
    );
    // A message by name reaches it, and its answer comes back by name.
    ctl_json(&d, &["send", "py-echo", "hello from rust"]);
    assert_eq!(line("message line"), "got hello from rust");
    assert_eq!(rust.line(), "HELLO FROM RUST");
    ctl_json(&d, &["send", "py-echo", "stop"]);
    assert_eq!(line("stop line"), "got stop");
    let status = py.wait().unwrap();
    assert!(status.success(), "attach.py exited with {status}");
    // Its connection closed, so its name went away.
    wait_for("py-echo gone", || {
        ctl_json(&d, &["whereis", "py-echo"])["pid"].is_null()
    });
}
