//! The scenarios of docs/BENCHMARKS.md, one repetition each: start a fresh
//! cluster, run the workload inside the nodes, collect the metrics.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::cluster::{ms_between, now_ns, Cluster, TableMode, WaitFor, Waited};

/// How long any convergence may take before the run fails.
const CONVERGE: Duration = Duration::from_secs(600);

/// One measured value.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Metric key as in docs/BENCHMARKS.md.
    pub metric: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// The value.
    pub value: f64,
    /// Extra fields (variant, mode, nodes, k, ...).
    pub fields: Map<String, Value>,
}

/// Collects samples sharing the same extra fields.
pub(super) struct Out {
    fields: Map<String, Value>,
    pub(super) samples: Vec<Sample>,
}

impl Out {
    pub(super) fn new(fields: Value) -> Out {
        Out {
            fields: fields.as_object().cloned().unwrap_or_default(),
            samples: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, metric: &'static str, unit: &'static str, value: f64) {
        self.samples.push(Sample {
            metric,
            unit,
            value,
            fields: self.fields.clone(),
        });
    }
}

pub(super) fn u64_of(v: &Value, key: &str) -> Result<u64> {
    v[key]
        .as_u64()
        .with_context(|| format!("answer without {key}: {v}"))
}

/// Checks a workload answer had no failed operations.
pub(super) fn no_errors(v: &Value, what: &str) -> Result<()> {
    match v["errors"].as_u64() {
        Some(0) | None => Ok(()),
        Some(n) => bail!("{what}: {n} operations failed"),
    }
}

/// Operations per second over `[first, last]` ns.
fn rate(n: u64, first: u64, last: u64) -> f64 {
    let s = last.saturating_sub(first).max(1) as f64 / 1e9;
    n as f64 / s
}

fn max_of(w: &[Waited], f: impl Fn(&Waited) -> Option<u64>) -> u64 {
    w.iter().filter_map(f).max().unwrap_or(0)
}

fn all(c: &Cluster) -> Vec<usize> {
    (0..c.nodes.len()).collect()
}

/// Reads timed in-process on node `i`.
fn read_ns(c: &Cluster, i: usize, body: Value) -> Result<f64> {
    let v = c.nodes[i].post("/bench/read", body)?;
    v["ns_per_op"]
        .as_f64()
        .with_context(|| format!("read answer {v}"))
}

fn members_ns(c: &Cluster, i: usize, group: &str, iters: u64) -> Result<f64> {
    read_ns(
        c,
        i,
        json!({"op": "members", "scope": "pg", "group": group, "iters": iters}),
    )
}

fn whereis_ns(c: &Cluster, i: usize, name: &str, iters: u64) -> Result<f64> {
    read_ns(c, i, json!({"op": "whereis", "name": name, "iters": iters}))
}

/// Reads timed one by one on node `i`: the answer's `latency`.
fn read_latency(c: &Cluster, i: usize, mut body: Value, n: u64) -> Result<Value> {
    body["iters"] = json!(1);
    body["latency_iters"] = json!(n);
    let v = c.nodes[i].post("/bench/read", body)?;
    Ok(v["latency"].clone())
}

/// Reads timed one by one for the percentiles.
const LATENCY_ITERS: u64 = 200_000;

impl Out {
    /// p50, p99 and p99.9 of a `latency` answer, as `{what}_p50_ns` etc.
    fn percentiles(&mut self, names: [&'static str; 3], latency: &Value) -> Result<()> {
        for (metric, key) in names.into_iter().zip(["p50_ns", "p99_ns", "p999_ns"]) {
            let v = latency[key]
                .as_f64()
                .with_context(|| format!("latency answer without {key}: {latency}"))?;
            self.push(metric, "ns", v);
        }
        Ok(())
    }
}

/// Lets the allocator and the nodes settle before an RSS reading.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// pg_join and both pg_join_shared variants: N processes on A join their
/// groups from one caller, in calls of `batch` pids.
pub fn pg_join(
    scenario: &str,
    variant: Option<&str>,
    n: u64,
    batch: u64,
    tls: bool,
) -> Result<Vec<Sample>> {
    let mut out = Out::new(match variant {
        Some(v) => json!({ "variant": v, "n": n }),
        None if tls => json!({ "n": n, "tls": true }),
        None => json!({ "n": n }),
    });
    let shared = scenario == "pg_join_shared";
    let c = Cluster::start_with(3, TableMode::Locked, true, &[], tls)?;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    a.post("/bench/spawn", json!({ "count": n }))?;
    settle();
    let (rss_a0, rss_b0) = (a.rss()?, b.rss()?);
    let w = c
        .start_wait(
            &all(&c),
            WaitFor {
                members: Some(n + 1),
                sentinel: Some("sentinel".into()),
                ..Default::default()
            },
            CONVERGE,
        )
        .settle();
    let groups = if shared { 0 } else { (n / 10).max(1) };
    let r = a.post(
        "/bench/join",
        json!({"scope": "pg", "prefix": if shared { "shared" } else { "g" },
               "groups": groups, "count": n, "batch": batch, "sentinel": "sentinel"}),
    )?;
    no_errors(&r, "join")?;
    let waited = w.join()?;
    let (first, last) = (u64_of(&r, "first_call_ns")?, u64_of(&r, "last_return_ns")?);
    let conv = max_of(&waited, |w| w.members_at);
    out.push("join_ops_per_s", "ops/s", rate(n, first, last));
    out.push(
        "conv_all_nodes_ms_from_start",
        "ms",
        ms_between(first, conv),
    );
    out.push("conv_lag_after_last_join_ms", "ms", ms_between(last, conv));
    settle();
    let (rss_a1, rss_b1) = (a.rss()?, b.rss()?);
    out.push(
        "mem_bytes_per_member_local",
        "B",
        rss_a1.saturating_sub(rss_a0) as f64 / n as f64,
    );
    out.push(
        "mem_bytes_per_member_remote",
        "B",
        rss_b1.saturating_sub(rss_b0) as f64 / n as f64,
    );
    let group = if shared { "shared" } else { "g0" };
    let iters = if shared { 20_000 } else { 1_000_000 };
    out.push("members_ns_local", "ns", members_ns(&c, 0, group, iters)?);
    out.push("members_ns_remote", "ns", members_ns(&c, 1, group, iters)?);
    out.push(
        "members_missing_ns",
        "ns",
        members_ns(&c, 0, "absent", 1_000_000)?,
    );
    for (i, names) in [
        (
            0,
            [
                "members_local_p50_ns",
                "members_local_p99_ns",
                "members_local_p999_ns",
            ],
        ),
        (
            1,
            [
                "members_remote_p50_ns",
                "members_remote_p99_ns",
                "members_remote_p999_ns",
            ],
        ),
    ] {
        let lat = read_latency(
            &c,
            i,
            json!({"op": "members", "scope": "pg", "group": group}),
            iters.min(LATENCY_ITERS),
        )?;
        out.percentiles(names, &lat)?;
    }
    Ok(out.samples)
}

/// Registers (or unregisters) names `{prefix}{i}` on node `i` from
/// `conc` callers; answers (first call, last return) in ns.
fn register(
    c: &Cluster,
    node: usize,
    prefix: &str,
    offset: u64,
    count: u64,
    conc: u64,
    unregister: bool,
) -> Result<(u64, u64)> {
    register_timed(c, node, prefix, offset, count, conc, unregister).map(|r| (r.0, r.1))
}

/// As [`register`], with the answer's per-call `latency`.
fn register_timed(
    c: &Cluster,
    node: usize,
    prefix: &str,
    offset: u64,
    count: u64,
    conc: u64,
    unregister: bool,
) -> Result<(u64, u64, Value)> {
    let r = c.nodes[node].post(
        "/bench/register",
        json!({"prefix": prefix, "offset": offset, "count": count,
               "concurrency": conc, "unregister": unregister,
               "record": prefix == "clash_"}),
    )?;
    no_errors(&r, if unregister { "unregister" } else { "register" })?;
    Ok((
        u64_of(&r, "first_call_ns")?,
        u64_of(&r, "last_return_ns")?,
        r["latency"].clone(),
    ))
}

/// Waits on every node for `n` names in all, with the names of `ranges`
/// present (or, with `n` = 0, absent).
fn wait_names(c: &Cluster, n: u64, ranges: &[(&str, u64)]) -> super::cluster::Waiter {
    let ranges: Vec<(String, u64)> = ranges.iter().map(|(p, k)| (p.to_string(), *k)).collect();
    let (present, absent) = if n == 0 {
        (Vec::new(), ranges)
    } else {
        (ranges, Vec::new())
    };
    c.start_wait(
        &all(c),
        WaitFor {
            names: Some(n),
            present,
            absent,
            ..Default::default()
        },
        CONVERGE,
    )
    .settle()
}

/// global_reg: 10,000 names registered from A one by one, from 10 callers,
/// and from one caller on each node; then unregistered.
pub fn global_reg(mode: TableMode, n: u64, tls: bool) -> Result<Vec<Sample>> {
    let mut out = Out::new(if tls {
        json!({ "mode": mode.as_str(), "n": n, "tls": true })
    } else {
        json!({ "mode": mode.as_str(), "n": n })
    });
    let c = Cluster::start_with(3, mode, true, &[], tls)?;
    let per_node = n / 3;
    c.nodes[0].post("/bench/spawn", json!({ "count": n }))?;
    for nd in &c.nodes[1..] {
        nd.post("/bench/spawn", json!({ "count": per_node }))?;
    }
    settle();
    let (rss_a0, rss_b0) = (c.nodes[0].rss()?, c.nodes[1].rss()?);

    // (a) one caller.
    let w = wait_names(&c, n, &[("s", n)]);
    let (first, last, lat) = register_timed(&c, 0, "s", 0, n, 1, false)?;
    let waited = w.join()?;
    out.push("reg_seq_ops_per_s", "ops/s", rate(n, first, last));
    out.percentiles(
        ["reg_seq_p50_ns", "reg_seq_p99_ns", "reg_seq_p999_ns"],
        &lat,
    )?;
    out.push(
        "visible_lag_after_last_return_ms",
        "ms",
        ms_between(last, max_of(&waited, |w| w.names_at)),
    );
    settle();
    let (rss_a1, rss_b1) = (c.nodes[0].rss()?, c.nodes[1].rss()?);
    out.push(
        "mem_bytes_per_name_local",
        "B",
        rss_a1.saturating_sub(rss_a0) as f64 / n as f64,
    );
    out.push(
        "mem_bytes_per_name_remote",
        "B",
        rss_b1.saturating_sub(rss_b0) as f64 / n as f64,
    );
    out.push(
        "whereis_ns_local",
        "ns",
        whereis_ns(&c, 0, "s0", 1_000_000)?,
    );
    out.push(
        "whereis_ns_remote",
        "ns",
        whereis_ns(&c, 1, "s0", 1_000_000)?,
    );
    out.push(
        "whereis_missing_ns",
        "ns",
        whereis_ns(&c, 0, "absent", 1_000_000)?,
    );
    for (i, names) in [
        (
            0,
            [
                "whereis_local_p50_ns",
                "whereis_local_p99_ns",
                "whereis_local_p999_ns",
            ],
        ),
        (
            1,
            [
                "whereis_remote_p50_ns",
                "whereis_remote_p99_ns",
                "whereis_remote_p999_ns",
            ],
        ),
    ] {
        let lat = read_latency(&c, i, json!({"op": "whereis", "name": "s0"}), LATENCY_ITERS)?;
        out.percentiles(names, &lat)?;
    }
    let w = wait_names(&c, 0, &[("s", n)]);
    let (first, last) = register(&c, 0, "s", 0, n, 1, true)?;
    w.join()?;
    out.push("unreg_seq_ops_per_s", "ops/s", rate(n, first, last));

    // (b) ten callers.
    let w = wait_names(&c, n, &[("t", n)]);
    let (first, last, lat) = register_timed(&c, 0, "t", 0, n, 10, false)?;
    w.join()?;
    out.push("reg_conc10_ops_per_s", "ops/s", rate(n, first, last));
    out.percentiles(
        [
            "reg_conc10_p50_ns",
            "reg_conc10_p99_ns",
            "reg_conc10_p999_ns",
        ],
        &lat,
    )?;
    let w = wait_names(&c, 0, &[("t", n)]);
    register(&c, 0, "t", 0, n, 10, true)?;
    w.join()?;

    // (c) one caller on each node at once.
    let w = wait_names(
        &c,
        per_node * 3,
        &[("p0_", per_node), ("p1_", per_node), ("p2_", per_node)],
    );
    let spans = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let c = &c;
                s.spawn(move || register(c, i, &format!("p{i}_"), 0, per_node, 1, false))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("caller thread panicked")))
            .collect::<Result<Vec<_>>>()
    })?;
    w.join()?;
    let first = spans.iter().map(|s| s.0).min().unwrap_or(0);
    let last = spans.iter().map(|s| s.1).max().unwrap_or(0);
    out.push(
        "reg_1proc_per_node_ops_per_s",
        "ops/s",
        rate(per_node * 3, first, last),
    );
    Ok(out.samples)
}

/// Runs `f` for each index at once in threads.
fn par<T: Send>(idx: &[usize], f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = idx.iter().map(|&i| s.spawn(move || f(i))).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("worker thread panicked")))
            .collect()
    })
}

/// netsplit: A and C hold K names and K memberships each; C is cut off;
/// both sides write while split (with K/10 clashing names); the heal.
pub fn netsplit(nodes: usize, k: u64) -> Result<Vec<Sample>> {
    if nodes < 3 {
        bail!("netsplit needs at least 3 nodes");
    }
    let mut out = Out::new(json!({ "nodes": nodes, "k": k }));
    let c = Cluster::start(nodes, TableMode::Locked, true)?;
    let (ia, ic) = (0usize, 2usize);
    let others: Vec<usize> = (0..nodes).filter(|&i| i != ic).collect();
    let clash = (k / 10).max(1);
    let sides = [(ia, "a"), (ic, "c")];
    par(&[0, 1], |s| {
        let (i, tag) = sides[s];
        let nd = &c.nodes[i];
        nd.post("/bench/spawn", json!({ "count": 2 * k + clash }))?;
        register(&c, i, &format!("{tag}_pre_"), 0, k, 10, false)?;
        let r = nd.post(
            "/bench/join",
            json!({"scope": "pg", "prefix": "g", "groups": 100, "offset": 0, "count": k}),
        )?;
        no_errors(&r, "join")
    })?;
    c.wait_all(
        &all(&c),
        WaitFor {
            members: Some(2 * k),
            names: Some(2 * k),
            ..Default::default()
        },
        CONVERGE,
    )?;

    // The cut: C blocks everyone, everyone blocks C.
    // Each side waits for the other side's names to go.
    let drop = |gone: &str| WaitFor {
        members: Some(k),
        names: Some(k),
        absent: vec![(format!("{gone}_pre_"), k)],
        ..Default::default()
    };
    let w_a = c.start_wait(&others, drop("c"), CONVERGE);
    let w_c = c.start_wait(&[ic], drop("a"), CONVERGE).settle();
    let t_split = now_ns();
    let c_name = c.nodes[ic].name.clone();
    for &o in &others {
        c.nodes[ic].block(&c.nodes[o].name, true)?;
    }
    for &o in &others {
        c.nodes[o].block(&c_name, true)?;
    }
    let mut waited = w_a.join()?;
    waited.extend(w_c.join()?);
    out.push(
        "split_cleanup_ms",
        "ms",
        ms_between(t_split, max_of(&waited, |w| Some(w.last()))),
    );

    // Writes on both sides while split.
    par(&[0, 1], |s| {
        let (i, tag) = sides[s];
        let nd = &c.nodes[i];
        register(&c, i, &format!("{tag}_split_"), k, k, 10, false)?;
        register(&c, i, "clash_", 2 * k, clash, 10, false)?;
        let r = nd.post(
            "/bench/join",
            json!({"scope": "pg", "prefix": "g", "groups": 100, "offset": k, "count": k}),
        )?;
        no_errors(&r, "join")
    })?;
    let side = WaitFor {
        members: Some(2 * k),
        names: Some(2 * k + clash),
        ..Default::default()
    };
    c.wait_all(&all(&c), side, CONVERGE)?;

    // The heal: unblock, then C connects to everyone.
    let full = WaitFor {
        members: Some(4 * k),
        names: Some(4 * k + clash),
        present: ["a_pre_", "c_pre_", "a_split_", "c_split_"]
            .iter()
            .map(|p| (p.to_string(), k))
            .chain([("clash_".to_string(), clash)])
            .collect(),
        ..Default::default()
    };
    let w = c.start_wait(&all(&c), full, CONVERGE).settle();
    let t_heal = now_ns();
    for &o in &others {
        c.nodes[o].block(&c_name, false)?;
        c.nodes[ic].block(&c.nodes[o].name, false)?;
    }
    par(&others, |o| {
        // Already connected (a redial won the race) is fine.
        let _ = c.nodes[ic].post("/connect", json!({ "addr": c.nodes[o].listen }));
        Ok(())
    })?;
    let waited = w.join()?;
    let names_at = max_of(&waited, |w| w.names_at);
    let members_at = max_of(&waited, |w| w.members_at);
    out.push(
        "heal_full_convergence_ms",
        "ms",
        ms_between(t_heal, names_at.max(members_at)),
    );
    out.push(
        "heal_names_convergence_ms",
        "ms",
        ms_between(t_heal, names_at),
    );
    out.push(
        "heal_pg_convergence_ms",
        "ms",
        ms_between(t_heal, members_at),
    );

    // The clashes: who kept each name, on every node.
    settle();
    let views = par(&all(&c), |i| {
        c.nodes[i].post("/bench/owners", json!({"prefix": "clash_", "count": clash}))
    })?;
    let holders: Vec<&Value> = views.iter().map(|v| &v["holders"]).collect();
    let disagreeing = holders.iter().filter(|h| **h != holders[0]).count();
    let kept = |who: usize| {
        holders[0]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|h| h.as_str() == Some(c.nodes[who].name.as_str()))
                    .count()
            })
            .unwrap_or(0)
    };
    let (kept_a, kept_c) = (kept(ia), kept(ic));
    let losers: u64 = views
        .iter()
        .filter_map(|v| v["losers_running"].as_u64())
        .sum();
    out.push("clash_names", "names", clash as f64);
    out.push("clash_kept_by_a", "names", kept_a as f64);
    out.push("clash_kept_by_c", "names", kept_c as f64);
    out.push("clash_nodes_disagreeing", "nodes", disagreeing as f64);
    out.push("clash_losers_still_running", "processes", losers as f64);
    Ok(out.samples)
}

/// nodedown: C owns X names and Y memberships in 1,000 groups; SIGKILL.
pub fn nodedown(x: u64, y: u64) -> Result<Vec<Sample>> {
    let mut out = Out::new(json!({ "names": x, "members": y }));
    let mut c = Cluster::start(3, TableMode::Locked, true)?;
    {
        let nc = &c.nodes[2];
        nc.post("/bench/spawn", json!({ "count": x.max(y) }))?;
        register(&c, 2, "n", 0, x, 10, false)?;
        let r = nc.post(
            "/bench/join",
            json!({"scope": "pg", "prefix": "g", "groups": 1000, "count": y}),
        )?;
        no_errors(&r, "join")?;
    }
    c.wait_all(
        &all(&c),
        WaitFor {
            members: Some(y),
            names: Some(x),
            present: vec![("n".into(), x)],
            ..Default::default()
        },
        CONVERGE,
    )?;
    let w = c
        .start_wait(
            &[0, 1],
            WaitFor {
                members: Some(0),
                names: Some(0),
                absent: vec![("n".into(), x)],
                ..Default::default()
            },
            CONVERGE,
        )
        .settle();
    let t_kill = now_ns();
    // Returns once C is reaped: the kernel closes a dead process's sockets
    // only after it has freed its memory, so the survivors cannot learn of
    // the death before about then (C holds every process and membership).
    c.nodes[2].kill();
    let t_reaped = now_ns();
    let waited = w.join()?;
    let names_at = max_of(&waited, |w| w.names_at);
    let members_at = max_of(&waited, |w| w.members_at);
    out.push(
        "cleanup_all_survivors_ms",
        "ms",
        ms_between(t_kill, names_at.max(members_at)),
    );
    out.push("cleanup_names_ms", "ms", ms_between(t_kill, names_at));
    out.push("cleanup_pg_ms", "ms", ms_between(t_kill, members_at));
    out.push("dead_node_exit_ms", "ms", ms_between(t_kill, t_reaped));
    Ok(out.samples)
}
