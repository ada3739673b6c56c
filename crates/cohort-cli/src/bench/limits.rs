//! `cohort bench rtt`: the machine's limits in the same run, and each
//! Cohort figure as a fraction of its limit.
//!
//! Two node processes: a round trip of a small frame (32 bytes after a
//! 4-byte length) over loopback TCP between the tokio runtimes of the two
//! processes; between two tasks of one process over unbounded channels (as
//! a mailbox is); and, for comparison, of a Cohort message to an echo
//! process on the other node (`send` + the echo's `send` back).
//!
//! A locked registration needs one round trip to the other nodes (sent to
//! all at once), so its limit is 1 / `rtt_tcp_ns` registrations a second
//! from one caller; an eventual registration needs one hop to the node's
//! own tasks and back, so its limit is 1 / `rtt_tasks_ns`.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::cluster::{Cluster, TableMode, WaitFor};
use super::scenarios::Sample;
use super::summary::Summary;

/// Round trips per measurement.
const ROUNDS: u64 = 20_000;
/// Payload bytes of a frame.
const SIZE: u64 = 32;

fn push_latency(
    out: &mut Vec<Sample>,
    prefix: &'static [&'static str; 4],
    v: &Value,
) -> Result<()> {
    let f = |k: &str| -> Result<f64> {
        v[k].as_f64()
            .with_context(|| format!("answer without {k}: {v}"))
    };
    for (metric, key) in prefix
        .iter()
        .zip(["mean_ns", "p50_ns", "p99_ns", "p999_ns"])
    {
        out.push(Sample {
            metric,
            unit: "ns",
            value: f(key)?,
            fields: Map::new(),
        });
    }
    Ok(())
}

/// One repetition of `rtt`.
pub fn rtt() -> Result<Vec<Sample>> {
    let c = Cluster::start(2, TableMode::Locked, true)?;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let mut out = Vec::new();
    let l = b.post("/bench/echo_listen", json!({}))?;
    let addr = l["addr"].as_str().context("echo_listen answer")?;
    let r = a.post(
        "/bench/tcp_ping",
        json!({"addr": addr, "rounds": ROUNDS, "size": SIZE}),
    )?;
    push_latency(
        &mut out,
        &[
            "rtt_tcp_ns",
            "rtt_tcp_p50_ns",
            "rtt_tcp_p99_ns",
            "rtt_tcp_p999_ns",
        ],
        &r,
    )?;
    let r = a.post("/bench/task_ping", json!({"rounds": ROUNDS, "size": SIZE}))?;
    push_latency(
        &mut out,
        &[
            "rtt_tasks_ns",
            "rtt_tasks_p50_ns",
            "rtt_tasks_p99_ns",
            "rtt_tasks_p999_ns",
        ],
        &r,
    )?;
    b.post("/bench/echo", json!({"name": "echo0"}))?;
    c.wait_all(
        &[0],
        WaitFor {
            present: vec![("echo".into(), 1)],
            ..Default::default()
        },
        Duration::from_secs(60),
    )?;
    let r = a.post(
        "/bench/ping",
        json!({"name": "echo0", "rounds": ROUNDS, "size": SIZE}),
    )?;
    push_latency(
        &mut out,
        &[
            "send_rtt_ns",
            "send_rtt_p50_ns",
            "send_rtt_p99_ns",
            "send_rtt_p999_ns",
        ],
        &r,
    )?;
    Ok(out)
}

/// Each Cohort figure that has a limit measured in the same run, as a
/// fraction of it (scenario `limits`, unit `fraction`; 1 = at the limit).
pub fn derive(results: &[Summary]) -> Vec<Summary> {
    let get = |metric: &str| {
        results
            .iter()
            .find(|s| s.scenario == "rtt" && s.metric == metric)
            .map(|s| s.value)
            .filter(|v| *v > 0.0)
    };
    let (Some(tcp), Some(tasks)) = (get("rtt_tcp_ns"), get("rtt_tasks_ns")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |metric: &str, fields: &Map<String, Value>, value: f64, limit: f64| {
        let mut fields = fields.clone();
        fields.insert("limit_ns".into(), json!(limit.round()));
        out.push(Summary {
            scenario: "limits".into(),
            metric: metric.into(),
            unit: "fraction".into(),
            fields,
            value,
            min: value,
            max: value,
            reps: 1,
            otp: None,
        });
    };
    for s in results.iter().filter(|s| s.scenario == "global_reg") {
        let mode = s.fields.get("mode").and_then(Value::as_str);
        let limit = match mode {
            Some("locked") => tcp,
            Some("eventual") => tasks,
            _ => continue,
        };
        // One caller: one registration per limit round trip at best.
        if s.metric == "reg_seq_ops_per_s" && s.value > 0.0 {
            // achieved rate / (1e9 / limit ns) registrations a second
            add("reg_seq_of_limit", &s.fields, s.value * limit / 1e9, limit);
        }
    }
    if let Some(send) = get("send_rtt_ns") {
        add("send_rtt_of_limit", &Map::new(), tcp / send, tcp);
    }
    out
}
