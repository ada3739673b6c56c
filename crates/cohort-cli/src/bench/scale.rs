//! scale: N separate `cohort node` processes on one host, over loopback
//! TCP (each its own peer and admin port). Reports how long the full mesh
//! takes to form, how long one name and one process-group join take to be
//! seen on every node, the memory of a node at rest, and the CPU an idle
//! node spends keeping its sessions alive (ticks) over an idle window
//! (60 s unless told), and that no session went down or came up again
//! during it (every node's session counters, read before and after).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use super::cluster::{ms_between, now_ns, Cluster, NodeProc, TableMode, WaitFor, Waited};
use super::scenarios::{no_errors, u64_of, Out, Sample};

/// How long any convergence may take before the run fails.
const CONVERGE: Duration = Duration::from_secs(600);

/// The idle window unless told: long enough for a session that flaps
/// (a missed tick, a peer timeout of 5 s, a redial) to show.
pub const IDLE: Duration = Duration::from_secs(60);

/// Clock ticks per second of the times in `/proc/PID/stat` (`USER_HZ`,
/// which Linux fixes at 100 for user space on every architecture).
const USER_HZ: f64 = 100.0;

/// The most nodes one run starts (each is a process with a few threads and
/// a connection to every other).
pub const MAX_NODES: usize = 200;

/// User plus system CPU time of a node process so far, in seconds.
fn cpu_secs(nd: &NodeProc) -> Result<f64> {
    let pid = nd
        .pid()
        .ok_or_else(|| anyhow!("{} is not running", nd.name))?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis are plain: state is field 3, utime 14, stime 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected stat {text:?}"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|t| t as f64 / USER_HZ)
            .ok_or_else(|| anyhow!("unexpected stat {text:?}"))
    };
    // Field 14 is the 12th after field 2.
    Ok(tick(11)? + tick(12)?)
}

/// Counters of a node's metrics, by their full key (name and labels).
fn counters(nd: &NodeProc, keys: &[&str]) -> Result<Vec<u64>> {
    let text = nd.get_text("/metrics")?;
    keys.iter()
        .map(|key| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow!("{}: no {key} in its metrics", nd.name))
        })
        .collect()
}

/// A node's session counters: sessions that came up and went down since
/// it started (`cohort_sessions_total` of its metrics).
fn sessions(nd: &NodeProc) -> Result<(u64, u64)> {
    let v = counters(
        nd,
        &[
            "cohort_sessions_total{event=\"up\"}",
            "cohort_sessions_total{event=\"down\"}",
        ],
    )?;
    Ok((v[0], v[1]))
}

fn latest(w: &[Waited], f: impl Fn(&Waited) -> Option<u64>) -> u64 {
    w.iter().filter_map(f).max().unwrap_or(0)
}

/// Waits on every node of `c` for `what`.
fn wait_all(c: &Cluster, what: WaitFor) -> super::cluster::Waiter {
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    c.start_wait(&all, what, CONVERGE).settle()
}

/// Runs the scenario on `nodes` nodes, idling for `idle` at the end.
pub fn scale(nodes: usize, idle: Duration) -> Result<Vec<Sample>> {
    if !(2..=MAX_NODES).contains(&nodes) {
        bail!("scale needs --nodes between 2 and {MAX_NODES}");
    }
    let mut out = Out::new(json!({ "nodes": nodes }));
    let mut push =
        |metric: &'static str, unit: &'static str, value: f64| out.push(metric, unit, value);
    let c = Cluster::start(nodes, TableMode::Locked, false)?;
    let peers = nodes as u64 - 1;

    // Every node dials the first; the mesh forms from what they tell each other.
    let w = wait_all(
        &c,
        WaitFor {
            nodes: Some(peers),
            ..Default::default()
        },
    );
    let t0 = now_ns();
    let first = c.nodes[0].listen.clone();
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = c.nodes[1..]
            .iter()
            .map(|nd| s.spawn(|| nd.post("/connect", json!({ "addr": first }))))
            .collect();
        for h in hs {
            h.join().map_err(|_| anyhow!("connect thread panicked"))??;
        }
        Ok(())
    })?;
    let waited = w.join()?;
    // Inbound handshakes refused because `max_handshakes` were under way
    // (the dialer retries later): what all nodes dialing at once costs.
    let mut busy = 0;
    for nd in &c.nodes {
        busy += counters(nd, &["cohort_handshakes_total{outcome=\"refused_busy\"}"])?[0];
    }
    push(
        "mesh_formed_ms",
        "ms",
        ms_between(t0, latest(&waited, |w| w.nodes_at)),
    );
    push("handshakes_refused_busy", "handshakes", busy as f64);

    // One name, registered on the first node (locked table: every node
    // takes part in the registration).
    c.nodes[0].post("/bench/spawn", json!({ "count": 1 }))?;
    let w = wait_all(
        &c,
        WaitFor {
            names: Some(1),
            present: vec![("x".into(), 1)],
            ..Default::default()
        },
    );
    let r = c.nodes[0].post(
        "/bench/register",
        json!({"prefix": "x", "offset": 0, "count": 1, "concurrency": 1,
               "unregister": false, "record": false}),
    )?;
    no_errors(&r, "register")?;
    let waited = w.join()?;
    push(
        "name_visible_all_ms",
        "ms",
        ms_between(
            u64_of(&r, "first_call_ns")?,
            latest(&waited, |w| w.names_at),
        ),
    );

    // One process-group join, on the last node.
    let last = &c.nodes[nodes - 1];
    last.post("/bench/spawn", json!({ "count": 1 }))?;
    let w = wait_all(
        &c,
        WaitFor {
            members: Some(1),
            ..Default::default()
        },
    );
    let r = last.post(
        "/bench/join",
        json!({"scope": "pg", "prefix": "scale", "groups": 1, "count": 1, "batch": 1}),
    )?;
    no_errors(&r, "join")?;
    let waited = w.join()?;
    push(
        "pg_join_visible_all_ms",
        "ms",
        ms_between(
            u64_of(&r, "first_call_ns")?,
            latest(&waited, |w| w.members_at),
        ),
    );

    // Idle: memory at rest, CPU over the window, and no session that went
    // down or came up during it, on any node.
    let before: Vec<(u64, u64)> = c.nodes.iter().map(sessions).collect::<Result<_>>()?;
    let cpu0: Vec<f64> = c.nodes.iter().map(cpu_secs).collect::<Result<_>>()?;
    let started = Instant::now();
    // The window itself is what is measured, not a wait for a condition.
    std::thread::sleep(idle);
    let cpu1: Vec<f64> = c.nodes.iter().map(cpu_secs).collect::<Result<_>>()?;
    let secs = started.elapsed().as_secs_f64();
    let after: Vec<(u64, u64)> = c.nodes.iter().map(sessions).collect::<Result<_>>()?;
    let mut rss = 0;
    for nd in &c.nodes {
        rss += nd.rss()?;
    }
    push("idle_s", "s", secs);
    push("rss_bytes_per_node_idle", "B", rss as f64 / nodes as f64);
    let cpu: f64 = cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).sum();
    push(
        "cpu_ms_per_node_idle_s",
        "ms/s",
        cpu * 1e3 / secs / nodes as f64,
    );
    let mut flaps = Vec::new();
    let (mut ups, mut downs) = (0, 0);
    for ((nd, b), a) in c.nodes.iter().zip(&before).zip(&after) {
        let (up, down) = (a.0 - b.0, a.1 - b.1);
        ups += up;
        downs += down;
        if up + down > 0 {
            flaps.push(format!("{} ({down} down, {up} up)", nd.name));
        }
    }
    push("sessions_down_idle", "sessions", downs as f64);
    push("sessions_up_idle", "sessions", ups as f64);
    if !flaps.is_empty() {
        bail!(
            "sessions flapped during {secs:.0} s of idling on {} of {nodes} nodes: {}",
            flaps.len(),
            flaps.join(", ")
        );
    }
    // And each node still sees every other.
    let still = c.wait_all(
        &(0..nodes).collect::<Vec<_>>(),
        WaitFor {
            nodes: Some(peers),
            ..Default::default()
        },
        Duration::from_secs(5),
    );
    still.context("a session was down after the idle window")?;
    Ok(out.samples)
}
