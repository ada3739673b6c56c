//! The admin API against its description, `openapi.yaml`, checked by
//! schemathesis (a property-based API tester no one here wrote) on a real
//! `cohort node`: every check, the token configured. Excluded: `/connect`
//! (it dials out; its own test is in security.rs, on loopback only) and
//! `/attach` and `/dashboard/ws`, WebSocket upgrades: their answer is 101
//! and then frames, which an HTTP tester counts as neither accepted nor
//! refused (the WebSockets are tested in daemon.rs, cli.rs, security.rs and
//! dashboard.rs).
//!
//! schemathesis is a Python package (`pip install schemathesis`; `.ci/run`
//! installs it). Without it this test fails: it is never skipped.

mod common;

use std::process::Command;

use common::*;

/// The schemathesis command line tool (`st`, else `schemathesis`).
fn schemathesis() -> Command {
    for exe in ["st", "schemathesis"] {
        if Command::new(exe)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Command::new(exe);
        }
    }
    panic!("schemathesis is not installed (pip install schemathesis; .ci/run does it)");
}

#[test]
fn the_admin_api_matches_openapi_yaml() {
    let mut st = schemathesis();
    let a = daemon("st@127.0.0.1", &[]);
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    // schemathesis writes its state (.schemathesis/) where it runs: not
    // in the source tree.
    let work = tmp("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let report = work.join("report");
    let out = st
        .current_dir(&work)
        .args(["run", spec, "--url", &format!("http://{}", a.admin)])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all"])
        .args(["--exclude-path", "/connect", "--exclude-path", "/attach"])
        .args(["--exclude-path", "/dashboard/ws"])
        // Bounded: a few dozen cases per operation, within a minute or so.
        .args(["--max-examples", "40", "--workers", "2"])
        // Name limits are bytes and JSON Schema counts characters: with
        // ASCII the two agree, so maxLength 255 is exact.
        .args(["--generation-codec", "ascii"])
        .args(["--generation-database", "none", "--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("passed"), "no summary: {stdout}");
    assert!(a.child.id() > 0);
}
