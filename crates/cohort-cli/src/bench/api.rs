//! Bench-only admin endpoints, served under `/bench/` when the node runs
//! with the hidden `--bench-api` flag.
//!
//! The workload runs inside the node, as OTP's `anchor_bench` does: an HTTP
//! call starts a tight loop of joins or registrations over idle processes
//! the node spawned earlier, and answers with wall-clock timestamps (ns
//! since the Unix epoch, comparable across the node processes of one host).
//! `/bench/wait` polls the node's own local view until it holds the expected
//! counts, and says when each count first held. Every parameter is checked;
//! bad input gets a 400 with `{"error": ...}`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cohort::Node;
use serde::Deserialize;
use serde_json::json;

use super::api_common::{bad, body, Bench, BenchError, BenchResult};
use super::api_limits as limits;
use crate::sync::lock;

/// Largest count one call may ask for.
const MAX_COUNT: u64 = 10_000_000;
/// Largest number of concurrent callers.
const MAX_CONCURRENCY: u64 = 1_000;
/// Longest wait.
const MAX_WAIT_MS: u64 = 600_000;

/// Nanoseconds since the Unix epoch.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn check_count(what: &str, n: u64, max: u64) -> Result<(), BenchError> {
    if n > max {
        return Err(bad(format!("{what} {n} is larger than {max}")));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnBody {
    count: u64,
}

/// Spawns `count` more idle processes.
async fn spawn(State(b): State<Bench>, req: Result<Json<SpawnBody>, JsonRejection>) -> BenchResult {
    let req = body(req)?;
    check_count("count", req.count, MAX_COUNT)?;
    let t = Instant::now();
    let mut procs = lock(&b.procs);
    procs.reserve(req.count as usize);
    for _ in 0..req.count {
        procs.push(b.node.spawn());
    }
    Ok(Json(
        json!({ "total": procs.len(), "elapsed_ns": t.elapsed().as_nanos() as u64 }),
    ))
}

/// Drops every bench process (their entries go with them) and the record
/// of registered names.
async fn reset(State(b): State<Bench>) -> BenchResult {
    let n = std::mem::take(&mut *lock(&b.procs)).len();
    lock(&b.registered).clear();
    Ok(Json(json!({ "dropped": n })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    scope: String,
    /// Group name prefix.
    prefix: String,
    /// Groups `{prefix}{i mod groups}`; 0 means one group called `prefix`.
    #[serde(default)]
    groups: u64,
    /// First process.
    #[serde(default)]
    offset: u64,
    count: u64,
    /// Pids per call (only with one group).
    #[serde(default = "one")]
    batch: u64,
    /// After the timed joins, a fresh process joins this group: a peer
    /// that sees it has seen every join before it (one ordered stream).
    sentinel: Option<String>,
}

fn one() -> u64 {
    1
}

/// Joins processes `offset..offset+count` to their groups, one call per
/// process (or per `batch` pids), from one caller.
async fn join(State(b): State<Bench>, req: Result<Json<JoinBody>, JsonRejection>) -> BenchResult {
    let req = body(req)?;
    check_count("count", req.count, MAX_COUNT)?;
    if req.batch == 0 || req.batch > MAX_COUNT {
        return Err(bad("batch must be between 1 and 10,000,000"));
    }
    if req.batch > 1 && req.groups != 0 {
        return Err(bad("batch > 1 needs one group (groups = 0)"));
    }
    let scope = b.scope_running(&req.scope)?;
    let pids = b.pids(req.offset, req.count)?;
    let sentinel = match req.sentinel.clone() {
        Some(g) if g.is_empty() => return Err(bad("empty sentinel group")),
        Some(g) => {
            let p = b.node.spawn();
            let pid = p.pid().clone();
            lock(&b.procs).push(p);
            Some((g, pid))
        }
        None => None,
    };
    let res = tokio::task::spawn_blocking(move || {
        let first = now_ns();
        let t = Instant::now();
        let mut errors = 0u64;
        if req.groups == 0 {
            for chunk in pids.chunks(req.batch as usize) {
                if scope.join_many(&req.prefix, chunk).is_err() {
                    errors += 1;
                }
            }
        } else {
            // The group name is built in the loop (one reused buffer), so
            // no per-join allocation of the harness stays in the RSS.
            let mut g = String::with_capacity(req.prefix.len() + 20);
            for (i, pid) in (req.offset..).zip(&pids) {
                g.clear();
                let _ = write!(g, "{}{}", req.prefix, i % req.groups);
                if scope.join(&g, pid).is_err() {
                    errors += 1;
                }
            }
        }
        let elapsed = t.elapsed().as_nanos() as u64;
        if let Some((g, p)) = &sentinel {
            if scope.join(g, p).is_err() {
                errors += 1;
            }
        }
        (first, first + elapsed, errors)
    })
    .await
    .map_err(|e| BenchError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        json!({ "first_call_ns": res.0, "last_return_ns": res.1, "errors": res.2 }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    table: Option<String>,
    /// Names `{prefix}{i}` for i in 0..count.
    prefix: String,
    /// First process (process `offset + i` gets name i).
    #[serde(default)]
    offset: u64,
    count: u64,
    /// Concurrent callers (each takes every `concurrency`-th name).
    #[serde(default = "one")]
    concurrency: u64,
    /// Unregister instead of register.
    #[serde(default)]
    unregister: bool,
    /// Remember which pid got each name (for `/bench/owners`); off by
    /// default so the record does not count in the memory per name.
    #[serde(default)]
    record: bool,
}

/// Registers (or unregisters) `count` names from `concurrency` callers.
async fn register(
    State(b): State<Bench>,
    req: Result<Json<RegisterBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    check_count("count", req.count, MAX_COUNT)?;
    if req.concurrency == 0 || req.concurrency > MAX_CONCURRENCY {
        return Err(bad(format!(
            "concurrency must be between 1 and {MAX_CONCURRENCY}"
        )));
    }
    let table = b.table(&req.table)?;
    if !req.unregister {
        b.check_pids(req.offset, req.count)?;
    }
    // Nothing is allocated per name beyond the name itself (no copy of
    // the pids, histograms from the pool), so the node's memory grows by
    // what the registry keeps.
    let mut hists = take_histograms(&b, req.concurrency as usize + 1);
    let mut hist = hists.pop().expect("one histogram per caller and one more");
    let first = now_ns();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut h) in (0..req.concurrency).zip(hists) {
        let (table, b, prefix) = (table.clone(), b.clone(), req.prefix.clone());
        let (offset, count, step, unregister, record) = (
            req.offset,
            req.count,
            req.concurrency,
            req.unregister,
            req.record,
        );
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            let mut done = Vec::new();
            let mut i = c;
            while i < count {
                let name = format!("{prefix}{i}");
                let t = Instant::now();
                if unregister {
                    if table.unregister(&name).await.is_err() {
                        errors += 1;
                    }
                } else {
                    match b.pid(offset + i) {
                        Some(pid) => match table.register(name.clone(), &pid).await {
                            Ok(()) if record => done.push((name, pid)),
                            Ok(()) => {}
                            Err(_) => errors += 1,
                        },
                        // Reset meanwhile.
                        None => errors += 1,
                    }
                }
                limits::record(&mut h, t.elapsed().as_nanos() as u64);
                i += step;
            }
            (errors, done, h)
        }));
    }
    let mut errors = 0;
    let mut all = Vec::new();
    let mut used = Vec::new();
    for t in tasks {
        let (e, done, h) = t
            .await
            .map_err(|e| BenchError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        errors += e;
        all.extend(done);
        let _ = hist.add(&h);
        used.push(h);
    }
    let elapsed = t.elapsed().as_nanos() as u64;
    let mut reg = lock(&b.registered);
    if req.unregister {
        for i in 0..req.count {
            reg.remove(&format!("{}{i}", req.prefix));
        }
    } else {
        reg.extend(all);
    }
    let latency = limits::percentiles(&hist);
    used.push(hist);
    give_back_histograms(&b, used);
    Ok(Json(json!({
        "first_call_ns": first,
        "last_return_ns": first + elapsed,
        "errors": errors,
        "latency": latency,
    })))
}

/// Histograms kept between calls: enough for one caller and the total.
const KEPT_HISTOGRAMS: usize = 2;

/// `n` empty histograms, from the pool where it has them.
fn take_histograms(b: &Bench, n: usize) -> Vec<hdrhistogram::Histogram<u64>> {
    let mut pool = lock(&b.hists);
    let mut v: Vec<_> = (0..n).map_while(|_| pool.pop()).collect();
    drop(pool);
    for h in &mut v {
        h.reset();
    }
    v.resize_with(n, limits::histogram);
    v
}

/// Keeps up to [`KEPT_HISTOGRAMS`] of `used` for the next call.
fn give_back_histograms(b: &Bench, used: Vec<hdrhistogram::Histogram<u64>>) {
    let mut pool = lock(&b.hists);
    let room = KEPT_HISTOGRAMS.saturating_sub(pool.len());
    pool.extend(used.into_iter().take(room));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitBody {
    scope: Option<String>,
    /// Total memberships of `scope` to wait for.
    members: Option<u64>,
    /// Count the memberships only once this group of `scope` has a member
    /// (the joiner's sentinel); the time is when the sentinel arrived.
    sentinel: Option<String>,
    table: Option<String>,
    /// Names of `table` to wait for.
    names: Option<u64>,
    /// Connected visible nodes to wait for.
    nodes: Option<u64>,
    /// Names `{prefix}{i}` that must all be present.
    #[serde(default)]
    present: Vec<NameRange>,
    /// Names `{prefix}{i}` that must all be absent.
    #[serde(default)]
    absent: Vec<NameRange>,
    timeout_ms: u64,
}

/// Names `{prefix}0` .. `{prefix}{count - 1}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameRange {
    prefix: String,
    count: u64,
}

/// An incremental check of named ranges: a name once seen in the wanted
/// state is not looked at again, so polling a large table stays cheap
/// (`whereis` per name, no copy of the table).
struct RangeScan {
    ranges: Vec<(NameRange, bool)>,
    at: (usize, u64),
    buf: String,
}

impl RangeScan {
    fn new(present: Vec<NameRange>, absent: Vec<NameRange>) -> RangeScan {
        let mut ranges: Vec<(NameRange, bool)> = present.into_iter().map(|r| (r, true)).collect();
        ranges.extend(absent.into_iter().map(|r| (r, false)));
        RangeScan {
            ranges,
            at: (0, 0),
            buf: String::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Advances over the names in the wanted state; true when all are.
    fn advance(&mut self, table: &cohort::runtime::NameTable) -> bool {
        while let Some((r, want)) = self.ranges.get(self.at.0) {
            while self.at.1 < r.count {
                self.buf.clear();
                let _ = write!(self.buf, "{}{}", r.prefix, self.at.1);
                if table.whereis(&self.buf).is_some() != *want {
                    return false;
                }
                self.at.1 += 1;
            }
            self.at = (self.at.0 + 1, 0);
        }
        true
    }
}

/// Total memberships of a scope in this node's view.
fn total_members(scope: &cohort::Scope) -> u64 {
    scope.membership_count() as u64
}

/// Polls this node's own view until every given count holds (sleeping
/// `max(1 ms, 4 × cost of one check)` between checks, as OTP's pollers
/// do); answers with the time each first held, or `null` on time-out.
async fn wait(State(b): State<Bench>, req: Result<Json<WaitBody>, JsonRejection>) -> BenchResult {
    let req = body(req)?;
    check_count("timeout_ms", req.timeout_ms, MAX_WAIT_MS)?;
    if req.members.is_some() != req.scope.is_some() {
        return Err(bad("members and scope go together"));
    }
    let scope = req
        .scope
        .as_deref()
        .map(|s| b.scope_running(s))
        .transpose()?;
    let table = b.table(&req.table)?;
    let mut scan = RangeScan::new(req.present, req.absent);
    if scan.ranges.iter().map(|r| r.0.count).sum::<u64>() > MAX_COUNT {
        return Err(bad("present/absent ranges hold too many names"));
    }
    let wants_names = req.names.is_some() || !scan.is_empty();
    // When the ranges first held (the count is confirmed afterwards).
    let mut ranges_at = None;
    let mut recount = false;
    let (mut sentinel_at, mut members_late) = (None, false);
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms);
    let (mut members_at, mut names_at, mut nodes_at) = (None, None, None);
    let (mut seen_members, mut seen_names, mut seen_nodes) = (0, 0, 0);
    let mut max_check = Duration::ZERO;
    loop {
        let t = Instant::now();
        if let (Some(want), Some(s)) = (req.members, &scope) {
            if members_at.is_none() {
                if sentinel_at.is_none() {
                    sentinel_at = match &req.sentinel {
                        Some(g) => (!s.members(g).is_empty()).then(now_ns),
                        None => Some(0),
                    };
                }
                if let Some(at) = sentinel_at {
                    seen_members = total_members(s);
                    if seen_members == want {
                        members_at = Some(if at == 0 || members_late {
                            now_ns()
                        } else {
                            at
                        });
                    } else {
                        members_late = true;
                    }
                }
            }
        }
        if wants_names && names_at.is_none() {
            if ranges_at.is_none() && scan.advance(&table) {
                ranges_at = Some(now_ns());
            }
            if let Some(at) = ranges_at {
                match req.names {
                    None => names_at = Some(at),
                    Some(want) => {
                        // The full count copies the table: only once the
                        // ranges hold (or when there are none).
                        seen_names = table.len() as u64;
                        if seen_names == want {
                            names_at = Some(if scan.is_empty() || recount {
                                now_ns()
                            } else {
                                at
                            });
                        } else {
                            // Something beyond the ranges is still off:
                            // the count decides, checked again later.
                            recount = true;
                        }
                    }
                }
            }
        }
        if let Some(want) = req.nodes {
            if nodes_at.is_none() {
                seen_nodes = b.node.nodes().len() as u64;
                if seen_nodes == want {
                    nodes_at = Some(now_ns());
                }
            }
        }
        let done = (req.members.is_none() || members_at.is_some())
            && (!wants_names || names_at.is_some())
            && (req.nodes.is_none() || nodes_at.is_some());
        max_check = max_check.max(t.elapsed());
        if done || Instant::now() >= deadline {
            return Ok(Json(json!({
                "max_check_ns": max_check.as_nanos() as u64,
                "ok": done,
                "members_at_ns": members_at, "names_at_ns": names_at, "nodes_at_ns": nodes_at,
                "members": seen_members, "names": seen_names, "nodes": seen_nodes,
            })));
        }
        let cost = t.elapsed() * 4;
        tokio::time::sleep(cost.max(Duration::from_millis(1))).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    /// `members` (needs scope and group) or `whereis` (needs name).
    op: String,
    scope: Option<String>,
    group: Option<String>,
    table: Option<String>,
    name: Option<String>,
    iters: u64,
    /// Then time this many reads one by one (percentiles; each includes
    /// the cost of reading the clock, answered as `clock_ns`).
    #[serde(default)]
    latency_iters: u64,
}

/// Times `iters` local reads; answers ns per read and the result size.
async fn read(State(b): State<Bench>, req: Result<Json<ReadBody>, JsonRejection>) -> BenchResult {
    let req = body(req)?;
    if req.iters == 0 || req.iters > MAX_COUNT {
        return Err(bad("iters must be between 1 and 10,000,000"));
    }
    let iters = req.iters;
    let lat = req.latency_iters;
    if lat > MAX_COUNT {
        return Err(bad("latency_iters must be at most 10,000,000"));
    }
    let (ns, size, hist) = match req.op.as_str() {
        "members" => {
            let scope = b.scope_running(req.scope.as_deref().unwrap_or(""))?;
            let group = req.group.ok_or_else(|| bad("members needs group"))?;
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let mut size = 0;
                for _ in 0..iters {
                    size = std::hint::black_box(scope.members(std::hint::black_box(&group))).len();
                }
                let ns = t.elapsed().as_nanos() as f64 / iters as f64;
                let h = time_each(lat, || {
                    std::hint::black_box(scope.members(std::hint::black_box(&group)));
                });
                (ns, size, h)
            })
            .await
        }
        "whereis" => {
            let table = b.table(&req.table)?;
            let name = req.name.ok_or_else(|| bad("whereis needs name"))?;
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let mut size = 0;
                for _ in 0..iters {
                    size = usize::from(
                        std::hint::black_box(table.whereis(std::hint::black_box(&name))).is_some(),
                    );
                }
                let ns = t.elapsed().as_nanos() as f64 / iters as f64;
                let h = time_each(lat, || {
                    std::hint::black_box(table.whereis(std::hint::black_box(&name)));
                });
                (ns, size, h)
            })
            .await
        }
        other => return Err(bad(format!("unknown op {other:?}: members or whereis"))),
    }
    .map_err(|e| BenchError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut v = json!({ "ns_per_op": ns, "size": size });
    if let Some((h, clock)) = hist {
        v["latency"] = limits::percentiles(&h);
        v["clock_ns"] = json!(clock);
    }
    Ok(Json(v))
}

/// Times `n` calls of `f` one by one; with the median cost of reading the
/// clock twice around nothing. `None` for `n` = 0.
fn time_each(n: u64, mut f: impl FnMut()) -> Option<(hdrhistogram::Histogram<u64>, u64)> {
    if n == 0 {
        return None;
    }
    let mut clock = limits::histogram();
    for _ in 0..n.min(100_000) {
        let t = Instant::now();
        limits::record(
            &mut clock,
            std::hint::black_box(t).elapsed().as_nanos() as u64,
        );
    }
    let mut h = limits::histogram();
    for _ in 0..n {
        let t = Instant::now();
        f();
        limits::record(&mut h, t.elapsed().as_nanos() as u64);
    }
    Some((h, clock.value_at_quantile(0.5)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnersBody {
    table: Option<String>,
    prefix: String,
    count: u64,
}

/// For names `{prefix}{i}`: the holder's node as this node sees it, and
/// how many of the names this node registered are held by someone else
/// while the process it registered still runs.
async fn owners(
    State(b): State<Bench>,
    req: Result<Json<OwnersBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    check_count("count", req.count, MAX_COUNT)?;
    let table = b.table(&req.table)?;
    let reg = lock(&b.registered);
    let mut holders = Vec::with_capacity(req.count as usize);
    let mut losers_running = 0u64;
    for i in 0..req.count {
        let name = format!("{}{i}", req.prefix);
        let holder = table.whereis(&name);
        if let Some(mine) = reg.get(&name) {
            if holder.as_ref() != Some(mine) && b.node.is_alive(mine) {
                losers_running += 1;
            }
        }
        holders.push(holder.map(|p| p.node().as_str().to_string()));
    }
    Ok(Json(
        json!({ "holders": holders, "losers_running": losers_running }),
    ))
}

/// The `/bench/...` routes, with their own state.
pub fn router<S: Clone + Send + Sync + 'static>(node: Node) -> Router<S> {
    let state = Bench {
        node,
        procs: Arc::new(Mutex::new(Vec::new())),
        registered: Arc::new(Mutex::new(HashMap::new())),
        hists: Arc::new(Mutex::new(
            (0..KEPT_HISTOGRAMS)
                .map(|_| {
                    let mut h = limits::histogram();
                    // Written once now (its pages resident), so clearing
                    // it for a call does not grow the node's RSS then.
                    h.reset();
                    h
                })
                .collect(),
        )),
    };
    Router::new()
        .route("/bench/spawn", post(spawn))
        .route("/bench/reset", post(reset))
        .route("/bench/join", post(join))
        .route("/bench/register", post(register))
        .route("/bench/wait", post(wait))
        .route("/bench/read", post(read))
        .route("/bench/owners", post(owners))
        .route("/bench/echo_listen", post(limits::echo_listen))
        .route("/bench/tcp_ping", post(limits::tcp_ping))
        .route("/bench/task_ping", post(limits::task_ping))
        .route("/bench/echo", post(limits::echo))
        .route("/bench/ping", post(limits::ping))
        .with_state(state)
}
