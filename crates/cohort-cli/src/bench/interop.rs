//! `cohort bench interop_pg`: OTP `pg` membership between a `cohort node`
//! (with its Erlang endpoint) and real BEAM nodes, beside the same scenario
//! between two BEAM nodes, in one run.
//!
//! The BEAM nodes run `interop_bench.erl` (shipped beside this file,
//! compiled with `erlc` into a temporary directory) and take one command a
//! line on stdin; the Cohort node runs the workload through its bench API.
//! All stamps are wall-clock ns of the same host.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use super::cluster::{ms_between, Cluster, TableMode, WaitFor};
use super::scenarios::Sample;

/// The BEAM side's module.
const MODULE: &str = include_str!("interop_bench.erl");

/// How long any wait may take, in ms (the run fails past it).
const WAIT_MS: u64 = 600_000;

/// What to tell a user whose machine lacks Erlang.
const INSTALL: &str = "interop_pg needs Erlang/OTP 23 or later (`erl`, `erlc`, `epmd` on PATH): \
     `apt-get install erlang-base` on Debian and Ubuntu, `brew install erlang` on macOS";

/// One `erl` node running `interop_bench:serve/0`.
struct Beam {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Beam {
    fn start(name: &str, cookie: &str, code: &Path, log: &Path) -> Result<Beam> {
        let mut child = Command::new("erl")
            .args(["-name", name, "-setcookie", cookie, "-noshell"])
            .args(["-kernel", "start_pg", "true", "-pa"])
            .arg(code)
            .args(["-s", "interop_bench", "serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .map_err(|e| anyhow!("starting erl: {e}; {INSTALL}"))?;
        let stdin = child.stdin.take().context("erl stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("erl stdout")?);
        let mut b = Beam {
            name: name.to_string(),
            child,
            stdin,
            stdout,
        };
        // The first answer says the node is up and serving.
        let r = b.call("start_scope pg")?;
        if r != "ok" {
            bail!("{name}: {r} (log in {})", log.display());
        }
        Ok(b)
    }

    fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}")
            .and_then(|_| self.stdin.flush())
            .with_context(|| format!("{}: the node is gone", self.name))
    }

    fn read(&mut self) -> Result<String> {
        let mut l = String::new();
        if self.stdout.read_line(&mut l)? == 0 {
            bail!("{}: the node ended", self.name);
        }
        Ok(l.trim().to_string())
    }

    fn call(&mut self, line: &str) -> Result<String> {
        self.send(line)?;
        self.read()
    }

    /// `seen T` → T.
    fn seen(&mut self) -> Result<u64> {
        let r = self.read()?;
        r.strip_prefix("seen ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| anyhow!("{}: waited in vain: {r}", self.name))
    }

    /// `join SCOPE GROUP` → (first call, last return).
    fn join(&mut self, scope: &str, group: &str) -> Result<(u64, u64)> {
        let r = self.call(&format!("join {scope} {group}"))?;
        let w: Vec<u64> = r
            .strip_prefix("joined ")
            .map(|t| t.split(' ').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        match w[..] {
            [t0, t1] => Ok((t0, t1)),
            _ => bail!("{}: join answered {r}", self.name),
        }
    }
}

impl Drop for Beam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// One repetition: `n` joins on each side, and the same between two BEAM
/// nodes.
pub fn interop_pg(n: u64) -> Result<Vec<Sample>> {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let tag = format!("i{}x{run}", std::process::id());
    let dir = Dir(std::env::temp_dir().join(format!("cohort-bench-{tag}")));
    std::fs::create_dir_all(&dir.0)?;
    let src = dir.0.join("interop_bench.erl");
    std::fs::write(&src, MODULE)?;
    let out = Command::new("erlc")
        .arg("-o")
        .arg(&dir.0)
        .arg(&src)
        .output()
        .map_err(|e| anyhow!("running erlc: {e}; {INSTALL}"))?;
    if !out.status.success() {
        bail!(
            "erlc interop_bench.erl: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let cookie = format!("bench-{tag}");
    let cookie_file = dir.0.join("erlang.cookie");
    std::fs::write(&cookie_file, &cookie)?;
    let mut b1 = Beam::start(
        &format!("beam1{tag}@127.0.0.1"),
        &cookie,
        &dir.0,
        &dir.0.join("beam1.log"),
    )?;
    let mut b2 = Beam::start(
        &format!("beam2{tag}@127.0.0.1"),
        &cookie,
        &dir.0,
        &dir.0.join("beam2.log"),
    )?;
    let fields = json!({ "n": n });
    let fields = fields.as_object().cloned().unwrap_or_default();
    let mut samples = Vec::new();
    let mut push = |metric: &'static str, unit: &'static str, value: f64| {
        samples.push(Sample {
            metric,
            unit,
            value,
            fields: fields.clone(),
        })
    };

    // BEAM -> BEAM, in a scope of their own (the Cohort node is not up yet).
    if b2.call(&format!("connect {}", b1.name))? != "true" {
        bail!("{} could not connect to {}", b2.name, b1.name);
    }
    for b in [&mut b1, &mut b2] {
        let r = b.call("start_scope interop_bb")?;
        if r != "ok" {
            bail!("{}: {r}", b.name);
        }
    }
    if b1.call(&format!("spawn {n}"))? != "ok" {
        bail!("{}: spawn failed", b1.name);
    }
    b2.send(&format!("wait interop_bb beam {n} {WAIT_MS}"))?;
    settle();
    let (t0, t1) = b1.join("interop_bb", "beam")?;
    let seen = b2.seen()?;
    push("beam_to_beam_ms", "ms", ms_between(t0, seen));
    push("beam_join_ops_per_s", "ops/s", rate(n, t0, t1));

    // The Cohort node, bridging scope pg with b1 (b2 may connect too).
    let me = format!("cohort{tag}@127.0.0.1");
    let extra: Vec<String> = [
        "--erlang-node",
        &me,
        "--erlang-cookie-file",
        cookie_file.to_str().context("temporary path")?,
        "--erlang-connect",
        &b1.name,
        "--erlang-scope",
        "pg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let c = Cluster::start_with(1, TableMode::Locked, false, &extra, false)?;
    let a = &c.nodes[0];
    a.post("/bench/spawn", json!({ "count": n + 1 }))?;
    // Warm-up: one Cohort member seen on b1 means both scope processes know
    // each other (pg ignores joins from a scope it has not discovered).
    a.post(
        "/bench/join",
        json!({"scope": "pg", "prefix": "warm", "count": 1}),
    )?;
    b1.send(&format!("wait pg warm 1 {WAIT_MS}"))?;
    b1.seen()?;

    // Cohort -> BEAM: n joins on the Cohort node until b1's pg lists them all.
    b1.send(&format!("wait pg cohort {n} {WAIT_MS}"))?;
    settle();
    let r = a.post(
        "/bench/join",
        json!({"scope": "pg", "prefix": "cohort", "offset": 1, "count": n}),
    )?;
    let (first, last) = (
        r["first_call_ns"].as_u64().context("join answer")?,
        r["last_return_ns"].as_u64().context("join answer")?,
    );
    let seen = b1.seen()?;
    push("cohort_to_beam_ms", "ms", ms_between(first, seen));
    push("cohort_join_ops_per_s", "ops/s", rate(n, first, last));

    // BEAM -> Cohort: n joins on b1 until the Cohort node's scope pg holds
    // them all (its own 1 + n members, and n proxies).
    let w = c
        .start_wait(
            &[0],
            WaitFor {
                members: Some(1 + 2 * n),
                ..Default::default()
            },
            Duration::from_millis(WAIT_MS),
        )
        .settle();
    let (t0, _) = b1.join("pg", "beam")?;
    let waited = w.join()?;
    let at = waited
        .first()
        .and_then(|w| w.members_at)
        .context("wait answer")?;
    push("beam_to_cohort_ms", "ms", ms_between(t0, at));
    let _ = b1.send("quit");
    let _ = b2.send("quit");
    Ok(samples)
}

/// Gives a waiter time to start polling before the workload starts.
fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

fn rate(n: u64, first: u64, last: u64) -> f64 {
    n as f64 / (last.saturating_sub(first).max(1) as f64 / 1e9)
}
