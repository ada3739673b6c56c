//! A cluster of `cohort node --bench-api` processes on loopback, started and
//! stopped by the bench driver, and a small blocking HTTP client for them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Nanoseconds since the Unix epoch (comparable with the nodes' stamps).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Name-table mode of a bench cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableMode {
    /// OTP `global`'s contract.
    Locked,
    /// Local write, replicated afterwards.
    Eventual,
}

impl TableMode {
    /// `locked` or `eventual`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableMode::Locked => "locked",
            TableMode::Eventual => "eventual",
        }
    }
}

/// One node process.
pub struct NodeProc {
    child: Option<Child>,
    /// Node name.
    pub name: String,
    /// Peer listen address.
    pub listen: String,
    base: String,
    agent: ureq::Agent,
    /// `Bearer TOKEN` of the admin API.
    auth: String,
}

impl NodeProc {
    /// OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident set size in bytes, from /proc/PID/statm.
    pub fn rss(&self) -> Result<u64> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .with_context(|| format!("reading /proc/{pid}/statm"))?;
        let pages: u64 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("unexpected statm {text:?}"))?;
        // SAFETY-free: the page size of Linux on x86_64/aarch64 defaults.
        Ok(pages * page_size())
    }

    /// POSTs `body` to `path` and returns the JSON answer; a non-2xx
    /// answer is an error naming the node.
    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .send_json(&body);
        self.answer(path, resp)
    }

    /// GETs `path` and returns the body as text; a non-2xx answer is an
    /// error naming the node.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .call()
            .map_err(|e| anyhow!("{} {path}: {e}", self.name))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{} {path}: answer {status}", self.name);
        }
        resp.body_mut()
            .read_to_string()
            .with_context(|| format!("{} {path}: reading the answer", self.name))
    }

    fn answer(
        &self,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut resp = resp.map_err(|e| anyhow!("{} {path}: {e}", self.name))?;
        let status = resp.status();
        let v: Value = resp
            .body_mut()
            .read_json()
            .with_context(|| format!("{} {path}: answer {status} without JSON", self.name))?;
        if !status.is_success() {
            bail!(
                "{} {path}: {}",
                self.name,
                v.get("error").and_then(Value::as_str).unwrap_or("failed")
            );
        }
        Ok(v)
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Blocks traffic with `other` on this node.
    pub fn block(&self, other: &str, on: bool) -> Result<()> {
        let path = if on { "/block" } else { "/unblock" };
        self.post(path, json!({ "node": other }))?;
        Ok(())
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM would make it say goodbye; a bench run just ends it.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn page_size() -> u64 {
    // /proc/self/smaps would tell; 4 KiB is the page size on the machines
    // this runs on (x86_64 and aarch64 Linux defaults).
    4096
}

/// Running node processes.
pub struct Cluster {
    /// The nodes, in start order (A, B, C, ...).
    pub nodes: Vec<NodeProc>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

fn node_letter(i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if i < letters.len() {
        (letters[i] as char).to_string()
    } else {
        format!("n{i}")
    }
}

impl Cluster {
    /// Starts `n` nodes (names a, b, c, ... with a per-run tag) with one
    /// name table `global` in `mode`; with `mesh_now` each node after the
    /// first dials the first and this waits for the full mesh.
    pub fn start(n: usize, mode: TableMode, mesh_now: bool) -> Result<Cluster> {
        Cluster::start_with(n, mode, mesh_now, &[], false)
    }

    /// [`Cluster::start`] with more `cohort node` arguments for every node,
    /// and with mutual TLS between the nodes when `tls` (a development CA
    /// made for this run, a certificate per node).
    pub fn start_with(
        n: usize,
        mode: TableMode,
        mesh_now: bool,
        extra: &[String],
        tls: bool,
    ) -> Result<Cluster> {
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        let tag = format!("b{}x{run}", std::process::id());
        let dir = std::env::temp_dir().join(format!("cohort-bench-{tag}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "[[name_tables]]\nname = \"global\"\nmode = \"{}\"\n",
                mode.as_str()
            ),
        )?;
        let exe = std::env::current_exe().context("locating the cohort executable")?;
        let cookie = format!("bench-{tag}");
        // The nodes' admin token, for this run only.
        let token = {
            use rand::distr::{Alphanumeric, SampleString};
            Alphanumeric.sample_string(&mut rand::rng(), 32)
        };
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir: dir.clone(),
        };
        // Start them all at once, then read their first lines.
        let mut children = Vec::new();
        let ca = if tls {
            let (cert, key) = crate::cert::make_ca()?;
            std::fs::write(dir.join("ca.pem"), &cert)?;
            Some((cert, key))
        } else {
            None
        };
        for i in 0..n {
            let name = format!("{}{tag}@127.0.0.1", node_letter(i));
            let log = std::fs::File::create(dir.join(format!("{}.log", node_letter(i))))?;
            let mut cmd = Command::new(&exe);
            if let Some((ca_cert, ca_key)) = &ca {
                let (cert, key) = crate::cert::make_node(ca_cert, ca_key, &name, &[])?;
                let letter = node_letter(i);
                let (cert_path, key_path) = (
                    dir.join(format!("{letter}.pem")),
                    dir.join(format!("{letter}-key.pem")),
                );
                std::fs::write(&cert_path, cert)?;
                std::fs::write(&key_path, key)?;
                cmd.arg("node")
                    .arg("--tls-cert")
                    .arg(&cert_path)
                    .arg("--tls-key")
                    .arg(&key_path)
                    .arg("--tls-ca")
                    .arg(dir.join("ca.pem"));
            } else {
                cmd.arg("node");
            }
            let child = cmd
                .args(["--bench-api", "--name", &name])
                .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
                .arg("--config")
                .arg(&config)
                .args(extra)
                .env("COHORT_COOKIE", &cookie)
                .env("COHORT_ADMIN_TOKEN", &token)
                .env("COHORT_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", exe.display()))?;
            children.push((name, child));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(900)))
            // The nodes close a connection that waits 10 s for a request.
            .max_idle_age(Duration::from_secs(5))
            .build()
            .into();
        for (name, mut child) in children {
            let Some(out) = child.stdout.take() else {
                bail!("{name}: no stdout");
            };
            let mut line = String::new();
            // The first line arrives once the node is up; a node that
            // fails to start closes stdout at once.
            BufReader::new(out).read_line(&mut line)?;
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"node") || words.len() < 7 {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{name} did not start (first line {line:?}; log in {})",
                    dir.display()
                );
            }
            cluster.nodes.push(NodeProc {
                child: Some(child),
                name: name.clone(),
                listen: words[4].to_string(),
                base: words[6].to_string(),
                agent: agent.clone(),
                auth: format!("Bearer {token}"),
            });
        }
        if mesh_now {
            let first = cluster.nodes[0].listen.clone();
            for nd in &cluster.nodes[1..] {
                nd.post("/connect", json!({ "addr": first }))?;
            }
            cluster.wait_all(
                &(0..n).collect::<Vec<_>>(),
                WaitFor {
                    nodes: Some(n as u64 - 1),
                    ..Default::default()
                },
                Duration::from_secs(60),
            )?;
        }
        Ok(cluster)
    }

    /// Runs `/bench/wait` with `what` on the given nodes at once; returns
    /// their answers (in the order of `which`) once all have answered.
    /// Fails if any timed out.
    pub fn wait_all(
        &self,
        which: &[usize],
        what: WaitFor,
        timeout: Duration,
    ) -> Result<Vec<Waited>> {
        let waiter = self.start_wait(which, what, timeout);
        waiter.join()
    }

    /// Starts `/bench/wait` on the given nodes in background threads; the
    /// polls begin before this returns (give them a moment with
    /// [`Waiter::settle`]).
    pub fn start_wait(&self, which: &[usize], what: WaitFor, timeout: Duration) -> Waiter {
        let mut handles = Vec::new();
        for &i in which {
            let nd = &self.nodes[i];
            let (agent, url, name, auth) = (
                nd.agent.clone(),
                format!("{}/bench/wait", nd.base),
                nd.name.clone(),
                nd.auth.clone(),
            );
            let body = what.body(timeout);
            handles.push(std::thread::spawn(move || -> Result<Waited> {
                let mut resp = agent
                    .post(&url)
                    .header("authorization", &auth)
                    .send_json(&body)
                    .map_err(|e| anyhow!("{name} /bench/wait: {e}"))?;
                let v: Value = resp.body_mut().read_json()?;
                if v.get("ok") != Some(&Value::Bool(true)) {
                    bail!("{name}: the expected view did not arrive in time: {v}");
                }
                Ok(Waited {
                    members_at: v["members_at_ns"].as_u64(),
                    names_at: v["names_at_ns"].as_u64(),
                    nodes_at: v["nodes_at_ns"].as_u64(),
                })
            }));
        }
        Waiter { handles }
    }
}

/// What `/bench/wait` waits for.
#[derive(Clone, Debug, Default)]
pub struct WaitFor {
    /// Total memberships of scope `pg`.
    pub members: Option<u64>,
    /// Count the memberships once this group has its sentinel member.
    pub sentinel: Option<String>,
    /// Names in the table.
    pub names: Option<u64>,
    /// Connected visible nodes.
    pub nodes: Option<u64>,
    /// Names `{prefix}{i}`, i < count, that must all be present (checked
    /// incrementally; much cheaper than counting a large table).
    pub present: Vec<(String, u64)>,
    /// Names that must all be absent.
    pub absent: Vec<(String, u64)>,
}

impl WaitFor {
    fn body(&self, timeout: Duration) -> Value {
        let mut b = json!({ "timeout_ms": timeout.as_millis() as u64 });
        if let Some(m) = self.members {
            b["scope"] = json!("pg");
            b["members"] = json!(m);
        }
        if let Some(g) = &self.sentinel {
            b["sentinel"] = json!(g);
        }
        if let Some(n) = self.names {
            b["names"] = json!(n);
        }
        if let Some(n) = self.nodes {
            b["nodes"] = json!(n);
        }
        let ranges = |v: &[(String, u64)]| {
            v.iter()
                .map(|(p, c)| json!({"prefix": p, "count": c}))
                .collect::<Vec<_>>()
        };
        b["present"] = json!(ranges(&self.present));
        b["absent"] = json!(ranges(&self.absent));
        b
    }
}

/// When each awaited count first held on one node (ns since the epoch).
#[derive(Clone, Copy, Debug)]
pub struct Waited {
    /// Memberships.
    pub members_at: Option<u64>,
    /// Names.
    pub names_at: Option<u64>,
    /// Nodes.
    pub nodes_at: Option<u64>,
}

impl Waited {
    /// The latest of the stamps present.
    pub fn last(&self) -> u64 {
        [self.members_at, self.names_at, self.nodes_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
    }
}

/// Waits running in background threads.
pub struct Waiter {
    handles: Vec<std::thread::JoinHandle<Result<Waited>>>,
}

impl Waiter {
    /// Gives the pollers time to reach their nodes before the workload starts.
    pub fn settle(self) -> Self {
        std::thread::sleep(Duration::from_millis(30));
        self
    }

    /// The answers, once all are in.
    pub fn join(self) -> Result<Vec<Waited>> {
        self.handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("wait thread panicked"))?)
            .collect()
    }
}

/// ms between two ns stamps (negative becomes 0).
pub fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}
