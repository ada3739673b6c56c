//! `cohort bench`: the reference scenarios of docs/BENCHMARKS.md on node
//! processes started by the command itself, over loopback TCP.
//!
//! The workload runs inside the nodes (bench-only admin endpoints, see
//! [`api`]); this driver starts the nodes, triggers the phases, polls each
//! node's own view through `/bench/wait`, and prints the metrics (medians
//! over the repetitions, with min and max), as text or JSON lines.

pub mod api;
mod api_common;
mod api_limits;
mod cluster;
mod interop;
mod limits;
mod otp;
mod report;
mod scale;
mod scenarios;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use cluster::TableMode;
use scenarios::Sample;
use summary::{show, summarize, OtpFigure, Summary};

/// Arguments of `cohort bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// rtt, pg_join, pg_join_shared, global_reg, netsplit, nodedown, scale, or all;
    /// or interop_pg (needs Erlang/OTP's erl and erlc; not part of all).
    pub scenario: String,
    /// Node count (netsplit, scale); default: the sizes of docs/BENCHMARKS.md.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Entry count: N (pg_join, pg_join_shared, global_reg, interop_pg), K (netsplit),
    /// X (nodedown, with Y = 10 X); default: the sizes of docs/BENCHMARKS.md.
    #[arg(long)]
    pub n: Option<u64>,
    /// Repetitions of each configuration (each on a fresh cluster).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Name-table mode for global_reg (default: both).
    #[arg(long, value_parser = ["locked", "eventual"])]
    pub mode: Option<String>,
    /// pg_join_shared variant (default: both).
    #[arg(long, value_parser = ["single", "batch1000"])]
    pub variant: Option<String>,
    /// scale: seconds of idling at the end, over which CPU is measured and
    /// no session may go down (default 60; 5 with --quick).
    #[arg(long)]
    pub idle: Option<u64>,
    /// One JSON object per metric and line.
    #[arg(long)]
    pub json: bool,
    /// With `all`: write report.md and SVG plots into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Small sizes (a quick look, or CI).
    #[arg(long)]
    pub quick: bool,
    /// pg_join, global_reg: mutual TLS between the nodes (certificates of a
    /// fresh development CA). `--tls both` runs each repetition plain, then
    /// with TLS, so that both see the same minutes of a noisy machine.
    #[arg(long, num_args = 0..=1, default_missing_value = "on", value_parser = ["on", "both"])]
    pub tls: Option<String>,
    /// pg_join, pg_join_shared, global_reg (locked), netsplit, nodedown, all:
    /// run the same scenario on Erlang/OTP nodes (`pg`, `global`) right
    /// before each Cohort repetition, at the same sizes, and print both
    /// figures and their ratio. Needs Erlang/OTP 25+ (`erl`, `erlc`).
    #[arg(long)]
    pub vs_otp: bool,
}

/// All scenario names, in run order (`rtt` first: the limits that later
/// figures are compared with).
pub const SCENARIOS: [&str; 7] = [
    "rtt",
    "pg_join",
    "pg_join_shared",
    "global_reg",
    "netsplit",
    "nodedown",
    "scale",
];

/// Scenarios run only when named: they need software besides cohort.
pub const NAMED_ONLY: [&str; 1] = ["interop_pg"];

type RunFn = Box<dyn Fn() -> Result<Vec<Sample>>>;

/// One configuration of one scenario.
struct Job {
    scenario: &'static str,
    label: String,
    run: RunFn,
    /// Arguments of the OTP side (`otp_bench.erl`) at the same sizes, and
    /// the fields of its samples; `None` where OTP has no counterpart.
    otp: Option<(Vec<String>, Map<String, Value>)>,
}

fn jobs(scenario: &'static str, a: &BenchArgs) -> Result<Vec<Job>> {
    let quick = a.quick;
    let mut v: Vec<Job> = Vec::new();
    let vs_otp = a.vs_otp;
    let mut push = |label: String, run: RunFn, otp: Option<(Vec<String>, Value)>| {
        v.push(Job {
            scenario,
            label,
            run,
            otp: otp
                .filter(|_| vs_otp)
                .map(|(args, f)| (args, f.as_object().cloned().unwrap_or_default())),
        })
    };
    // OTP side arguments.
    fn args(a: &[&dyn ToString]) -> Vec<String> {
        a.iter().map(|x| x.to_string()).collect()
    }
    let tls_modes: Vec<bool> = match a.tls.as_deref() {
        None => vec![false],
        Some("both") => vec![false, true],
        Some(_) => vec![true],
    };
    let tls_label = |tls: bool| if tls { " tls" } else { "" };
    if a.tls.is_some() && !matches!(scenario, "pg_join" | "global_reg") {
        bail!("--tls goes with pg_join and global_reg");
    }
    match scenario {
        "pg_join" => {
            let n = a.n.unwrap_or(if quick { 10_000 } else { 100_000 });
            for &tls in &tls_modes {
                let groups = (n / 10).max(1);
                push(
                    format!("n={n}{}", tls_label(tls)),
                    Box::new(move || scenarios::pg_join("pg_join", None, n, 1, tls)),
                    (!tls).then(|| {
                        (
                            args(&[&"pg_join", &"distinct", &groups, &n]),
                            json!({ "n": n }),
                        )
                    }),
                );
            }
        }
        "pg_join_shared" => {
            for (variant, default, quick_n, batch) in [
                ("single", 10_000, 2_000, 1),
                ("batch1000", 100_000, 10_000, 1_000),
            ] {
                if a.variant.as_deref().is_some_and(|w| w != variant) {
                    continue;
                }
                let n = a.n.unwrap_or(if quick { quick_n } else { default });
                let otp = if batch == 1 {
                    args(&[&"pg_join", &"shared", &"single", &n])
                } else {
                    args(&[&"pg_join", &"shared", &"batch", &n, &batch])
                };
                push(
                    format!("{variant} n={n}"),
                    Box::new(move || {
                        scenarios::pg_join("pg_join_shared", Some(variant), n, batch, false)
                    }),
                    Some((otp, json!({ "variant": variant, "n": n }))),
                );
            }
        }
        "global_reg" => {
            for mode in [TableMode::Locked, TableMode::Eventual] {
                if a.mode.as_deref().is_some_and(|m| m != mode.as_str()) {
                    continue;
                }
                // Side by side with OTP: 2,000 and 10,000 names, since
                // OTP `global`'s rate falls as names grow.
                let ns = match a.n {
                    Some(n) => vec![n],
                    None if quick => vec![1_000],
                    None if a.vs_otp => vec![2_000, 10_000],
                    None => vec![10_000],
                };
                for n in ns {
                    if n < 3 {
                        bail!("global_reg needs --n of at least 3");
                    }
                    for &tls in &tls_modes {
                        let otp = (mode == TableMode::Locked && !tls).then(|| {
                            (
                                args(&[&"global_reg", &n]),
                                json!({ "mode": mode.as_str(), "n": n }),
                            )
                        });
                        push(
                            format!("{} n={n}{}", mode.as_str(), tls_label(tls)),
                            Box::new(move || scenarios::global_reg(mode, n, tls)),
                            otp,
                        );
                    }
                }
            }
        }
        "netsplit" => {
            let ks = match a.n {
                Some(k) => vec![k],
                None if quick => vec![100],
                None => vec![1_000, 10_000],
            };
            let ns = match a.nodes {
                Some(n) => vec![n],
                None if quick => vec![3],
                None => vec![3, 5],
            };
            for &k in &ks {
                for &n in &ns {
                    if n < 3 {
                        bail!("netsplit needs --nodes of at least 3");
                    }
                    push(
                        format!("nodes={n} k={k}"),
                        Box::new(move || scenarios::netsplit(n, k)),
                        Some((args(&[&"netsplit", &n, &k]), json!({ "nodes": n, "k": k }))),
                    );
                }
            }
        }
        "nodedown" => {
            let xs = match a.n {
                Some(x) => vec![x],
                None if quick => vec![100],
                None => vec![1_000, 10_000],
            };
            for x in xs {
                push(
                    format!("names={x} members={}", 10 * x),
                    Box::new(move || scenarios::nodedown(x, 10 * x)),
                    Some((
                        args(&[&"nodedown", &x, &(10 * x)]),
                        json!({ "names": x, "members": 10 * x }),
                    )),
                );
            }
        }
        "scale" => {
            let ns = match a.nodes {
                Some(n) => vec![n],
                None if quick => vec![3, 5],
                None => vec![3, 5, 10, 20],
            };
            let idle = match a.idle {
                Some(0) => bail!("scale needs --idle of at least 1 s"),
                Some(s) => Duration::from_secs(s),
                None if quick => Duration::from_secs(5),
                None => scale::IDLE,
            };
            for n in ns {
                if !(2..=scale::MAX_NODES).contains(&n) {
                    bail!("scale needs --nodes between 2 and {}", scale::MAX_NODES);
                }
                push(
                    format!("nodes={n}"),
                    Box::new(move || scale::scale(n, idle)),
                    None,
                );
            }
        }
        "rtt" => push("rounds=20000".into(), Box::new(limits::rtt), None),
        "interop_pg" => {
            let n = a.n.unwrap_or(if quick { 1_000 } else { 10_000 });
            if n == 0 {
                bail!("interop_pg needs --n of at least 1");
            }
            push(
                format!("n={n}"),
                Box::new(move || interop::interop_pg(n)),
                None,
            );
        }
        other => bail!(
            "unknown scenario {other:?}; expected one of {} or all",
            SCENARIOS.join(", ")
        ),
    }
    Ok(v)
}

fn print(sums: &[Summary], json: bool, pb: &ProgressBar) {
    pb.suspend(|| {
        for s in sums {
            if json {
                crate::out::out!("{}", s.to_json());
            } else {
                let range = if s.reps > 1 {
                    format!(
                        "  (min {}, max {})",
                        show(s.min, &s.unit),
                        show(s.max, &s.unit)
                    )
                } else {
                    String::new()
                };
                let otp = match s.otp {
                    Some(o) => format!(
                        "  OTP {}{}",
                        show(o.value, &s.unit),
                        s.ratio()
                            .map(|r| format!(" (Cohort {r:.1}× better)"))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                };
                crate::out::out!(
                    "{:<15} {:<34} {:>14}{range}{otp}  {}",
                    s.scenario,
                    s.metric,
                    show(s.value, &s.unit),
                    s.fields_text()
                );
            }
        }
    });
}

/// Runs `cohort bench`; the exit code is 0 when every run succeeded.
pub fn run(a: BenchArgs) -> Result<i32> {
    if a.reps == 0 || a.reps > 100 {
        bail!("--reps must be between 1 and 100");
    }
    let names: Vec<&'static str> = if a.scenario == "all" {
        SCENARIOS.to_vec()
    } else {
        match SCENARIOS
            .iter()
            .chain(NAMED_ONLY.iter())
            .find(|s| **s == a.scenario)
        {
            Some(s) => vec![*s],
            None => bail!(
                "unknown scenario {:?}; expected one of {}, all, or {}",
                a.scenario,
                SCENARIOS.join(", "),
                NAMED_ONLY.join(", ")
            ),
        }
    };
    if a.report.is_some() && a.scenario != "all" {
        bail!("--report goes with `cohort bench all`");
    }
    let mut all_jobs = Vec::new();
    for s in &names {
        all_jobs.extend(jobs(s, &a)?);
    }
    let otp = if a.vs_otp {
        if !all_jobs.iter().any(|j| j.otp.is_some()) {
            bail!("--vs-otp goes with pg_join, pg_join_shared, global_reg (locked), netsplit, nodedown or all");
        }
        Some(otp::Otp::prepare()?)
    } else {
        None
    };
    let pb = ProgressBar::new((all_jobs.len() * a.reps) as u64);
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::SystemTime::now();
    let load_before = load_average();
    let mut results: Vec<Summary> = Vec::new();
    let mut failures = Vec::new();
    // Job by job; with `--tls both`, repetition by repetition (each job
    // once, then again), so that plain and TLS runs share the same minutes.
    let interleave = a.tls.as_deref() == Some("both");
    let order: Vec<usize> = if interleave {
        (0..a.reps).flat_map(|_| 0..all_jobs.len()).collect()
    } else {
        (0..all_jobs.len())
            .flat_map(|j| std::iter::repeat_n(j, a.reps))
            .collect()
    };
    let mut reps: Vec<Vec<Vec<Sample>>> = vec![Vec::new(); all_jobs.len()];
    let mut otp_reps: Vec<Vec<Vec<Sample>>> = vec![Vec::new(); all_jobs.len()];
    let mut runs = vec![0usize; all_jobs.len()];
    for (i, &j) in order.iter().enumerate() {
        let job = &all_jobs[j];
        runs[j] += 1;
        pb.set_message(format!(
            "{} {} (rep {}/{})",
            job.scenario, job.label, runs[j], a.reps
        ));
        // The OTP side first, at the same sizes, in the same minutes.
        if let (Some(o), Some((args, fields))) = (&otp, &job.otp) {
            pb.set_message(format!(
                "{} {} on OTP (rep {}/{})",
                job.scenario, job.label, runs[j], a.reps
            ));
            match o.run(args, fields) {
                Ok(s) => otp_reps[j].push(s),
                Err(e) => {
                    pb.suspend(|| {
                        crate::out::err!(
                            "cohort bench: {} {} on OTP: {e:#}",
                            job.scenario,
                            job.label
                        )
                    });
                    failures.push(format!("{} {} on OTP: {e:#}", job.scenario, job.label));
                }
            }
            pb.set_message(format!(
                "{} {} (rep {}/{})",
                job.scenario, job.label, runs[j], a.reps
            ));
        }
        match (job.run)() {
            Ok(s) => reps[j].push(s),
            Err(e) => {
                pb.suspend(|| {
                    crate::out::err!("cohort bench: {} {}: {e:#}", job.scenario, job.label)
                });
                failures.push(format!("{} {}: {e:#}", job.scenario, job.label));
            }
        }
        pb.inc(1);
        // Print a job's figures once its last repetition ran.
        let last = order[i + 1..].iter().all(|&k| k != j);
        if last {
            let mut sums = summarize(job.scenario, &reps[j]);
            let otp_sums = summarize(job.scenario, &otp_reps[j]);
            for s in &mut sums {
                s.otp = otp_sums
                    .iter()
                    .find(|o| o.metric == s.metric && o.fields == s.fields)
                    .map(|o| OtpFigure {
                        value: o.value,
                        min: o.min,
                        max: o.max,
                        reps: o.reps,
                    });
            }
            print(&sums, a.json, &pb);
            results.extend(sums);
        }
    }
    let derived = limits::derive(&results);
    print(&derived, a.json, &pb);
    results.extend(derived);
    pb.finish_and_clear();
    if let Some(dir) = &a.report {
        let meta = report::Meta {
            started,
            load_before,
            load_after: load_average(),
            reps: a.reps,
            quick: a.quick,
            failures: failures.clone(),
            otp_release: otp.as_ref().map(|o| o.release.clone()),
        };
        report::write(dir, &results, &meta)?;
        crate::out::err!(
            "cohort bench: report in {}",
            dir.join("report.md").display()
        );
    }
    if failures.is_empty() {
        Ok(0)
    } else {
        Ok(1)
    }
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
