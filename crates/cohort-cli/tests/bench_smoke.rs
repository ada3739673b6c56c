//! `cohort bench` at small sizes: every scenario runs once and reports
//! every metric key of docs/BENCHMARKS.md with a finite value. No timing
//! assertions: timing goals live in the benchmarks, not in tests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_cohort");

fn bench(args: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--reps", "1", "--json"])
        .output()
        .expect("cohort bench runs");
    assert!(
        out.status.success(),
        "cohort bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

/// Every `(field filter, metric)` is present once per matching
/// configuration, with a finite value between min and max.
fn check(lines: &[Value], scenario: &str, configs: &[Value], metrics: &[&str]) {
    for l in lines {
        assert_eq!(l["scenario"], scenario, "{l}");
        let v = l["value"].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite(), "{l}");
        assert!(l["unit"].is_string(), "{l}");
        assert!(
            l["min"].as_f64().unwrap() <= v && v <= l["max"].as_f64().unwrap(),
            "{l}"
        );
    }
    for cfg in configs {
        for m in metrics {
            let found = lines.iter().any(|l| {
                l["metric"] == *m
                    && cfg
                        .as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, want)| &l[k] == want)
            });
            assert!(found, "{scenario}: no {m} for {cfg} in {lines:#?}");
        }
    }
}

const PG: [&str; 14] = [
    "join_ops_per_s",
    "conv_all_nodes_ms_from_start",
    "conv_lag_after_last_join_ms",
    "mem_bytes_per_member_local",
    "mem_bytes_per_member_remote",
    "members_ns_local",
    "members_ns_remote",
    "members_missing_ns",
    "members_local_p50_ns",
    "members_local_p99_ns",
    "members_local_p999_ns",
    "members_remote_p50_ns",
    "members_remote_p99_ns",
    "members_remote_p999_ns",
];

#[test]
fn pg_join() {
    let l = bench(&["pg_join", "--n", "2000"]);
    check(&l, "pg_join", &[json!({})], &PG);
}

#[test]
fn pg_join_shared() {
    let l = bench(&["pg_join_shared", "--n", "2000"]);
    check(
        &l,
        "pg_join_shared",
        &[
            json!({"variant": "single"}),
            json!({"variant": "batch1000"}),
        ],
        &PG,
    );
}

/// Against real `erl` nodes (Erlang/OTP must be installed: `.ci/run` does).
#[test]
fn interop_pg() {
    let l = bench(&["interop_pg", "--n", "200"]);
    check(
        &l,
        "interop_pg",
        &[json!({"n": 200})],
        &[
            "beam_to_beam_ms",
            "beam_join_ops_per_s",
            "cohort_to_beam_ms",
            "cohort_join_ops_per_s",
            "beam_to_cohort_ms",
        ],
    );
}

#[test]
fn global_reg() {
    let l = bench(&["global_reg", "--n", "300"]);
    check(
        &l,
        "global_reg",
        &[json!({"mode": "locked"}), json!({"mode": "eventual"})],
        &[
            "reg_seq_ops_per_s",
            "reg_conc10_ops_per_s",
            "reg_1proc_per_node_ops_per_s",
            "unreg_seq_ops_per_s",
            "visible_lag_after_last_return_ms",
            "whereis_ns_local",
            "whereis_ns_remote",
            "whereis_missing_ns",
            "mem_bytes_per_name_local",
            "mem_bytes_per_name_remote",
            "reg_seq_p50_ns",
            "reg_seq_p99_ns",
            "reg_seq_p999_ns",
            "reg_conc10_p50_ns",
            "reg_conc10_p99_ns",
            "reg_conc10_p999_ns",
            "whereis_local_p50_ns",
            "whereis_local_p99_ns",
            "whereis_local_p999_ns",
            "whereis_remote_p50_ns",
            "whereis_remote_p99_ns",
            "whereis_remote_p999_ns",
        ],
    );
    // Percentiles are ordered.
    for what in ["reg_seq", "whereis_local"] {
        for mode in ["locked", "eventual"] {
            let p = |q: &str| {
                l.iter()
                    .find(|x| x["mode"] == mode && x["metric"] == format!("{what}_{q}_ns"))
                    .and_then(|x| x["value"].as_f64())
                    .unwrap()
            };
            assert!(
                p("p50") <= p("p99") && p("p99") <= p("p999"),
                "{what} {mode}"
            );
        }
    }
}

/// `--vs-otp` runs the same scenario on Erlang/OTP nodes (Erlang must be
/// installed: `.ci/run` does) and prints both figures and their ratio.
#[test]
fn vs_otp_side_by_side() {
    let l = bench(&["global_reg", "--mode", "locked", "--n", "30", "--vs-otp"]);
    check(
        &l,
        "global_reg",
        &[json!({"mode": "locked", "n": 30})],
        &["reg_seq_ops_per_s"],
    );
    let compared = [
        "reg_seq_ops_per_s",
        "reg_conc10_ops_per_s",
        "reg_1proc_per_node_ops_per_s",
        "unreg_seq_ops_per_s",
        "whereis_ns_local",
        "whereis_ns_remote",
        "mem_bytes_per_name_local",
    ];
    for m in compared {
        let x = l
            .iter()
            .find(|x| x["metric"] == m)
            .unwrap_or_else(|| panic!("no {m}"));
        let (v, otp, ratio) = (
            x["value"].as_f64().unwrap(),
            x["otp"]
                .as_f64()
                .unwrap_or_else(|| panic!("no OTP figure: {x}")),
            x["ratio"]
                .as_f64()
                .unwrap_or_else(|| panic!("no ratio: {x}")),
        );
        assert!(otp > 0.0 && otp.is_finite(), "{x}");
        assert_eq!(x["otp_reps"], 1, "{x}");
        assert!(x["otp_min"].as_f64().unwrap() <= otp, "{x}");
        // The ratio is Cohort's advantage: Cohort/OTP for rates, OTP/Cohort
        // for times and bytes (the JSON rounds to 3 decimals).
        let want = if m.ends_with("ops_per_s") {
            v / otp
        } else {
            otp / v
        };
        assert!(
            (ratio - want).abs() <= 0.001 + want * 0.01,
            "{x}: want {want}"
        );
    }
    // Metrics OTP has no counterpart for carry no OTP figure.
    let p50 = l.iter().find(|x| x["metric"] == "reg_seq_p50_ns").unwrap();
    assert!(p50.get("otp").is_none(), "{p50}");
}

/// Without Erlang, `--vs-otp` says how to install it, in one line, and
/// fails.
#[test]
fn vs_otp_without_erlang_says_how_to_install_it() {
    let empty = std::env::temp_dir().join(format!("cohort-no-erl-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(BIN)
        .args(["bench", "nodedown", "--vs-otp", "--reps", "1"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install erlang-base"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}

/// The machine's limits: round trips over loopback TCP between two node
/// processes, between two tasks, and of a Cohort message.
#[test]
fn rtt() {
    let all = bench(&["rtt"]);
    let (l, derived): (Vec<Value>, Vec<Value>) =
        all.into_iter().partition(|x| x["scenario"] == "rtt");
    // The Cohort message's round trip as a fraction of the TCP limit.
    assert!(
        derived
            .iter()
            .any(|x| x["scenario"] == "limits" && x["metric"] == "send_rtt_of_limit"),
        "{derived:?}"
    );
    let mut metrics = Vec::new();
    for what in ["rtt_tcp", "rtt_tasks", "send_rtt"] {
        metrics.push(format!("{what}_ns"));
        for q in ["p50", "p99", "p999"] {
            metrics.push(format!("{what}_{q}_ns"));
        }
    }
    let metrics: Vec<&str> = metrics.iter().map(String::as_str).collect();
    check(&l, "rtt", &[json!({})], &metrics);
    for x in &l {
        assert!(x["value"].as_f64().unwrap() > 0.0, "{x}");
    }
}

#[test]
fn netsplit() {
    let l = bench(&["netsplit", "--n", "50", "--nodes", "3"]);
    check(
        &l,
        "netsplit",
        &[json!({"nodes": 3, "k": 50})],
        &[
            "split_cleanup_ms",
            "heal_full_convergence_ms",
            "heal_names_convergence_ms",
            "heal_pg_convergence_ms",
            "clash_names",
            "clash_nodes_disagreeing",
            "clash_losers_still_running",
        ],
    );
}

#[test]
fn nodedown() {
    let l = bench(&["nodedown", "--n", "50"]);
    check(
        &l,
        "nodedown",
        &[json!({"names": 50, "members": 500})],
        &[
            "cleanup_all_survivors_ms",
            "cleanup_names_ms",
            "cleanup_pg_ms",
            "dead_node_exit_ms",
        ],
    );
}

#[test]
fn scale() {
    // Five separate node processes, idling 2 s; the structure of the
    // report only.
    let l = bench(&["scale", "--nodes", "5", "--idle", "2"]);
    check(
        &l,
        "scale",
        &[json!({"nodes": 5})],
        &[
            "mesh_formed_ms",
            "handshakes_refused_busy",
            "name_visible_all_ms",
            "pg_join_visible_all_ms",
            "idle_s",
            "rss_bytes_per_node_idle",
            "cpu_ms_per_node_idle_s",
            "sessions_down_idle",
            "sessions_up_idle",
        ],
    );
    assert_eq!(l.len(), 9, "one line per metric: {l:#?}");
}

#[test]
fn report_is_written() {
    let dir = std::env::temp_dir().join(format!("cohort-bench-report-{}", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "bench", "all", "--quick", "--reps", "1", "--n", "30", "--nodes", "3",
        ])
        .arg("--report")
        .arg(&dir)
        .output()
        .expect("cohort bench all runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("## netsplit") && md.contains("`join_ops_per_s`"),
        "{md}"
    );
    for svg in [
        "throughput.svg",
        "convergence_nodes.svg",
        "convergence_entries.svg",
    ] {
        let s = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused() {
    let out = Command::new(BIN)
        .args(["bench", "nosuch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scenario"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    // The bench endpoints answer 4xx to bad parameters.
    let mut child = Command::new(BIN)
        .args(["node", "--bench-api", "--name", "smoke@127.0.0.1"])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("COHORT_COOKIE", "bench-smoke")
        .env("COHORT_ADMIN_TOKEN", "bench-smoke-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let admin = line.split_whitespace().nth(6).unwrap().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (path, body) in [
        (
            "/bench/join",
            json!({"scope": "pg", "prefix": "g", "count": 5}),
        ),
        (
            "/bench/join",
            json!({"scope": "pg", "prefix": "g", "count": 0, "batch": 0}),
        ),
        (
            "/bench/register",
            json!({"prefix": "n", "count": 1, "concurrency": 0}),
        ),
        ("/bench/spawn", json!({"count": -1})),
        ("/bench/spawn", json!({"count": 100000000})),
        ("/bench/read", json!({"op": "nope", "iters": 1})),
        ("/bench/wait", json!({"members": 1, "timeout_ms": 1})),
        (
            "/bench/owners",
            json!({"table": "nosuch", "prefix": "x", "count": 1}),
        ),
        // The limits: only loopback, bounded rounds and sizes.
        (
            "/bench/tcp_ping",
            json!({"addr": "192.0.2.1:80", "rounds": 1, "size": 32}),
        ),
        (
            "/bench/tcp_ping",
            json!({"addr": "127.0.0.1:1", "rounds": 1, "size": 100000000}),
        ),
        ("/bench/task_ping", json!({"rounds": 0, "size": 32})),
        ("/bench/task_ping", json!({"rounds": 100000000, "size": 32})),
        (
            "/bench/ping",
            json!({"name": "nobody", "rounds": 1, "size": 32}),
        ),
        ("/bench/echo", json!({"name": ""})),
        (
            "/bench/read",
            json!({"op": "whereis", "name": "x", "iters": 1, "latency_iters": 100000000}),
        ),
    ] {
        let resp = agent
            .post(format!("{admin}{path}"))
            .header("authorization", "Bearer bench-smoke-token")
            .send_json(&body)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{path} {body}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
