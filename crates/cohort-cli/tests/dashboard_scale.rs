//! The dashboard at scale, in real browsers: 50 `cohort node` processes
//! (a release build of the binary when `COHORT_SCALE_BIN` names one)
//! holding 10,000 process groups with 100,000 memberships and 100,000
//! global names between them, and headless Chromium and Firefox on the
//! dashboard of one of them. It checks what the page must show (every
//! node, every session of the picture, a split between two other nodes
//! and one of this node's, the heal, every page of the names) and prints
//! how long each step took and how long the page's main thread was busy;
//! the README reports those figures. It asserts no time.
//!
//! Not part of the normal run (50 nodes and two browsers want a machine
//! of their own for a few minutes); the README's Dashboard section gives
//! the command:
//!
//! ```sh
//! cargo build --release -p cohort-cli
//! COHORT_SCALE_BIN=target/release/cohort cargo test -p cohort-cli --test dashboard_scale -- --ignored --nocapture
//! ```
//!
//! `COHORT_SCALE_NODES` and `COHORT_SCALE_NAMES` change the 50 nodes and
//! the 100,000 names (and memberships). Screenshots go to
//! `target/tmp/dashboard/<browser>/scale-*.png` (not committed).

mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::*;
use common::*;
use fantoccini::Client;
use serde_json::{json, Value};

/// Process groups in the scope `pg`, whatever the number of nodes.
const GROUPS: u64 = 10_000;
/// Names registered by one request (the test's HTTP client waits 20 s).
const CHUNK: u64 = 100;
/// How long one request of the load may take: a hundred locked
/// registrations among fifty nodes, all loading at once on a shared
/// machine, have taken more than 20 s.
const LOAD: Duration = Duration::from_secs(300);
/// How long the page may take for anything at this scale.
const SLOW: Duration = Duration::from_secs(120);

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v}: a number")))
        .unwrap_or(default)
}

/// A figure of a node's `/metrics`, by its full key.
fn metric(d: &Daemon, key: &str) -> u64 {
    let (_, m) = http(&d.admin, "GET", "/metrics", None);
    m.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits for `cond`, checking every 100 ms, for at most `limit`.
fn wait_long(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out ({limit:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

/// User plus system CPU of a process so far, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th,
    // stime the 13th.
    let f: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

/// The whole machine's busy and total time so far (`/proc/stat`).
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // idle and iowait
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Watches the page's main thread from now on: the longest gap between
/// two turns of a 5 ms timer (a frame the page could not paint, a key it
/// could not answer), the time spent in gaps over 50 ms, and, where the
/// browser reports them (Chromium), the long tasks' total.
const BUSY: &str = r##"
if (!window.__busy) {
  const b = window.__busy = { max: 0, stalls: 0, long: 0, longs: 0,
    lt: typeof PerformanceObserver !== 'undefined' && (PerformanceObserver.supportedEntryTypes || []).includes('longtask') };
  let last = performance.now();
  const tick = () => {
    const now = performance.now(), gap = now - last;
    last = now;
    if (gap > b.max) b.max = gap;
    if (gap > 50) b.stalls += gap;
    setTimeout(tick, 5);
  };
  setTimeout(tick, 5);
  if (b.lt) new PerformanceObserver((l) => { for (const e of l.getEntries()) { b.long += e.duration; b.longs++; } })
    .observe({ type: 'longtask', buffered: true });
}"##;

/// The main thread's figures since the last call, as text.
async fn busy(c: &Client) -> String {
    let v = js(
        c,
        "const b = window.__busy; const r = [b.max, b.stalls, b.long, b.longs, b.lt];
         b.max = 0; b.stalls = 0; b.long = 0; b.longs = 0; return r",
    )
    .await;
    let f = |i: usize| v[i].as_f64().unwrap_or(0.0);
    let long = if v[4] == json!(true) {
        format!(", long tasks {:.0} ms in {}", f(2), f(3))
    } else {
        String::new()
    };
    format!(
        "main thread: longest stall {:.0} ms, {:.0} ms in stalls over 50 ms{long}",
        f(0),
        f(1)
    )
}

/// Clicks `css` in the page and resolves with the milliseconds until
/// `cond` holds (watching the document) and a frame was painted.
async fn click_until(c: &Client, css: &str, cond: &str) -> f64 {
    ms(
        c,
        &format!(
            r##"const done = arguments[arguments.length - 1];
               const t0 = performance.now();
               const ok = () => {{ {cond} }};
               const fin = () => requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
               document.querySelector("{css}").click();
               if (ok()) return fin();
               const o = new MutationObserver(() => {{ if (ok()) {{ o.disconnect(); fin(); }} }});
               o.observe(document.body, {{subtree: true, childList: true, characterData: true, attributes: true}});"##
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "50 nodes and two browsers; run by hand (see the file's doc)"]
async fn the_dashboard_at_50_nodes_10k_groups_100k_names() {
    let bin = std::env::var("COHORT_SCALE_BIN").unwrap_or_else(|_| BIN.to_string());
    let n = env_or("COHORT_SCALE_NODES", 50) as usize;
    let total = env_or("COHORT_SCALE_NAMES", 100_000);
    at_scale(&bin, n, total, GROUPS).await;
}

/// The same at the size the normal test run affords: 14 nodes of this
/// build (the picture draws a ring past 12), 1,000 groups, 1,400 names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_at_14_nodes() {
    at_scale(BIN, 14, 1_400, 1_000).await;
}

async fn at_scale(bin: &str, n: usize, total: u64, groups: u64) {
    assert!(
        n >= 4,
        "at least 4 nodes (the split takes three besides the dashboard's)"
    );
    let per = total / n as u64;
    let total = per * n as u64;
    assert!(total > 1_050, "more than 21 pages of names");
    println!("binary {bin}; {n} nodes, {groups} groups, {total} memberships, {total} names");

    // The nodes: n00 first, the others told of it; they find each other.
    let name = |k: usize| format!("n{k:02}@127.0.0.1");
    let t = Instant::now();
    let first = daemon_bin(
        bin,
        &name(0),
        &[],
        "cli-test-cookie",
        &["--bench-api"],
        "warn",
        |_| {},
    );
    let mut nodes = vec![first];
    for k in 1..n {
        let seed = nodes[0].listen.clone();
        nodes.push(daemon_bin(
            bin,
            &name(k),
            &[&seed],
            "cli-test-cookie",
            &["--bench-api"],
            "warn",
            |_| {},
        ));
    }
    let mesh = wait_long("the full mesh", Duration::from_secs(600), || {
        nodes
            .iter()
            .all(|d| metric(d, "cohort_nodes{kind=\"visible\"}") == n as u64 - 1)
    });
    println!(
        "{n} nodes started and fully meshed in {:?} (the mesh {mesh:?})",
        t.elapsed()
    );

    // The load, every node at once: its processes, its share of the
    // memberships spread over all the groups, its names.
    let t = Instant::now();
    std::thread::scope(|s| {
        for (k, d) in nodes.iter().enumerate() {
            s.spawn(move || {
                let post = |path: &str, body: Value| {
                    let auth = format!("Bearer {TOKEN}");
                    let (code, out) = http_within(
                        LOAD,
                        &d.admin,
                        "POST",
                        path,
                        Some(&body.to_string()),
                        &[("Host", &d.admin), ("Authorization", &auth)],
                    );
                    assert_eq!(code, 200, "{} {path} {body}: {out}", d.name);
                };
                let offset = (k as u64 * per) % groups;
                post("/bench/spawn", json!({"count": offset + per}));
                post(
                    "/bench/join",
                    json!({"scope": "pg", "prefix": "grp-", "groups": groups, "offset": offset, "count": per}),
                );
                let mut off = 0;
                while off < per {
                    let c = CHUNK.min(per - off);
                    post(
                        "/bench/register",
                        json!({"prefix": format!("name-{k:02}-{:03}-", off / CHUNK), "offset": offset + off,
                               "count": c, "concurrency": 8}),
                    );
                    off += c;
                }
            });
        }
    });
    let a = &nodes[0];
    let seen = wait_long(
        "n00 sees every name and membership",
        Duration::from_secs(600),
        || {
            metric(a, "cohort_names") == total
                && metric(a, "cohort_pg_members{scope=\"pg\"}") == total
                && metric(a, "cohort_pg_groups{scope=\"pg\"}") == groups
        },
    );
    println!(
        "loaded in {:?} ({seen:?} of it waiting for n00 to see all)",
        t.elapsed()
    );
    let rss: u64 = nodes
        .iter()
        .map(|d| {
            std::fs::read_to_string(format!("/proc/{}/statm", d.child.id()))
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
                * 4096
        })
        .sum();
    println!("memory of the {n} nodes: {} MiB in all", rss >> 20);

    // The node's side: pages and searches over the dashboard's socket.
    let mut ws = dashboard_socket(a);
    send(&mut ws, json!({"op": "auth", "token": TOKEN}));
    for (id, req) in [
        (1, json!({"op": "names", "table": "global", "limit": 50})),
        (2, json!({"op": "names", "table": "global", "limit": 50})),
        (
            3,
            json!({"op": "names", "table": "global", "limit": 50, "offset": total - 50}),
        ),
        (
            4,
            json!({"op": "names", "table": "global", "limit": 50, "q": format!("-{:03}-42", (per - 1) / CHUNK)}),
        ),
        (5, json!({"op": "groups", "scope": "pg", "limit": 50})),
        (
            6,
            json!({"op": "groups", "scope": "pg", "limit": 50, "q": "grp-99"}),
        ),
    ] {
        let mut req = req;
        req["id"] = json!(id);
        let t = Instant::now();
        send(&mut ws, req.clone());
        let r = reply(&mut ws, id);
        assert!(r["total"].as_u64().is_some_and(|t| t > 0), "{req}: {r}");
        println!(
            "socket {req}: {:?}, total {}, {} rows",
            t.elapsed(),
            r["total"],
            r["rows"].as_array().map_or(0, |r| r.len())
        );
    }
    drop(ws);

    // The nodes finish their own work (the load's replication, the
    // indexes) before the browsers are timed: under a fifth of a core in
    // all, over one second.
    let pids: Vec<u32> = nodes.iter().map(|d| d.child.id()).collect();
    let calm = wait_long("the nodes idle", Duration::from_secs(300), || {
        let before: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
        std::thread::sleep(Duration::from_secs(1));
        pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() - before < 20
    });
    println!("the nodes idle after {calm:?}");

    let url = String::from_utf8(ctl(a, &["dashboard"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let links = (n - 1) * (n - 2) / 2;
    // One name, which no other name has in it: a two-digit last number.
    let chunk = (per - 1) / CHUNK;
    assert!(
        per - chunk * CHUNK > 42,
        "the last request of a node registers 43 names or more"
    );
    let wanted = format!("name-{:02}-{chunk:03}-42", 7.min(n - 1));
    for kind in [Browser::Chromium, Browser::Firefox] {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let m0 = machine();
        let driver = driver(kind);
        let br = browser(kind, &driver).await;
        br.goto(&url).await.unwrap();
        js(&br, HOOK).await;
        js(&br, BUSY).await;
        // Cluster: every node in the table, every session in the picture.
        let table = ms(
            &br,
            &when(&format!(
                "return document.querySelectorAll('#nodes-table tbody tr').length === {n}"
            )),
        )
        .await;
        let picture = ms(
            &br,
            &when(&format!(
                "return document.querySelectorAll('#cluster line.edge.up').length === {}
                    && document.querySelectorAll('#cluster line.link.up').length === {links}",
                n - 1
            )),
        )
        .await;
        until(
            &br,
            "a label per node, on the picture",
            SLOW,
            &format!(
                r##"const svg = document.querySelector('#cluster svg'), box = svg.getBoundingClientRect();
                   const ls = [...svg.querySelectorAll('text.node-label')];
                   return svg.classList.contains('crowded') && ls.length === {n}
                       && ls.every(l => {{ const r = l.getBoundingClientRect();
                           return r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1; }})"##
            ),
        )
        .await;
        let b0 = busy(&br).await;
        shot(&br, kind, "scale-cluster").await;
        // The nodes table: a count per state, and a filter by name.
        let filter = br
            .find(fantoccini::Locator::Id("node-filter"))
            .await
            .unwrap();
        filter.send_keys("n0").await.unwrap();
        until(
            &br,
            "the filtered nodes table",
            SLOW,
            &format!(
                r##"const shown = [...document.querySelectorAll('#nodes-table tbody tr')].filter(r => !r.hidden);
                   return document.getElementById('nodes-summary').textContent === '{n} (this one; peers: {} up)'
                       && shown.length === {} && shown.every(r => r.dataset.node.startsWith('n0'))"##,
                n - 1,
                n.min(10)
            ),
        )
        .await;
        filter.clear().await.unwrap();
        js(
            &br,
            "document.getElementById('node-filter').dispatchEvent(new Event('input'))",
        )
        .await;

        // The other views, and back.
        let groups_ms = click_until(
            &br,
            "#tab-groups",
            "return document.querySelectorAll('#groups-table tbody tr[data-group]').length === 50",
        )
        .await;
        let b1 = busy(&br).await;
        let names = click_until(
            &br,
            "#tab-names",
            "return document.querySelectorAll('#names-table tbody tr[data-name]').length === 50",
        )
        .await;
        let b2 = busy(&br).await;
        shot(&br, kind, "scale-names").await;
        // Through the 100k names a page at a time, then to the last page.
        let first_row = "document.querySelector('#names-table tbody tr').dataset.name";
        let mut pages = Vec::new();
        for _ in 0..20 {
            let before = js(&br, &format!("return {first_row}")).await;
            pages.push(
                click_until(
                    &br,
                    "#names-pager .next",
                    &format!("return {first_row} !== {before}"),
                )
                .await,
            );
        }
        let pager = js(
            &br,
            "return document.querySelector('#names-pager span').textContent",
        )
        .await;
        assert_eq!(
            pager,
            json!(format!("1001–1050 of {total}")),
            "twenty pages on"
        );
        let last = click_until(
            &br,
            "#names-pager .last",
            &format!(
                "return document.querySelector('#names-pager span').textContent === '{}–{total} of {total}'",
                total - 49
            ),
        )
        .await;
        let b3 = busy(&br).await;
        // A search: from the input event to the painted answer (the page
        // waits 250 ms for more keys before it asks).
        let search = ms(
            &br,
            &format!(
                r##"const done = arguments[arguments.length - 1];
                   const t0 = performance.now();
                   const i = document.getElementById('name-search');
                   i.value = '{wanted}';
                   i.dispatchEvent(new Event('input'));
                   const ok = () => {{ const r = [...document.querySelectorAll('#names-table tbody tr[data-name]')];
                       return r.length === 1 && r[0].dataset.name === '{wanted}'; }};
                   const o = new MutationObserver(() => {{ if (ok()) {{ o.disconnect(); done(performance.now() - t0); }} }});
                   o.observe(document.body, {{subtree: true, childList: true}});"##
            ),
        )
        .await;
        let b4 = busy(&br).await;
        let back = click_until(
            &br,
            "#tab-cluster",
            "return !document.getElementById('view-cluster').hidden",
        )
        .await;
        let b5 = busy(&br).await;

        // A split: n01 blocks n02 (two other nodes), n00 blocks n03 (one
        // of its own sessions); both red at once, then the heal.
        let (p1, p2, p3) = (name(1), name(2), name(3));
        let t = Instant::now();
        assert!(ctl(&nodes[1], &["block", &p2]).status.success());
        assert!(ctl(a, &["block", &p3]).status.success());
        let split = until(
            &br,
            "the split drawn",
            SLOW,
            &format!(
                r##"const l = document.querySelector("#cluster line.link[data-a='{p1}'][data-b='{p2}']");
                   const e = document.querySelector("#cluster line.edge[data-peer='{p3}']");
                   const b = document.getElementById('split-banner').textContent;
                   return !!l && l.dataset.state === 'down' && getComputedStyle(l).stroke === 'rgb(214, 40, 57)'
                       && !!e && e.dataset.state === 'blocked' && getComputedStyle(e).stroke === 'rgb(214, 40, 57)'
                       && b.includes('no session with {p3} (blocked)') && b.includes('{p1} — {p2}')"##
            ),
        )
        .await;
        let split_total = t.elapsed();
        shot(&br, kind, "scale-split").await;
        let t = Instant::now();
        assert!(ctl(&nodes[1], &["unblock", &p2]).status.success());
        assert!(ctl(a, &["unblock", &p3]).status.success());
        until(
            &br,
            "the heal drawn",
            SLOW,
            &format!(
                r##"return document.querySelectorAll('#cluster line[data-state]:not([data-state="up"])').length === 0
                    && document.querySelectorAll('#cluster line.link.up').length === {links}
                    && document.getElementById('split-banner').textContent.startsWith('Healed')"##
            ),
        )
        .await;
        let heal = t.elapsed();
        let b6 = busy(&br).await;
        let heap = js(
            &br,
            "return performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1048576) + ' MiB of JS heap' : ''",
        )
        .await;
        let errs = js(&br, "return window.__errs").await;
        assert_eq!(errs, json!([]), "the page logged errors");

        let m1 = machine();
        println!(
            "{kind:?} (load average {} at the start; the machine {:.0} % busy meanwhile, both cores, \
             this browser included):",
            load.trim(),
            100.0 * (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64
        );
        let avg = pages.iter().sum::<f64>() / pages.len() as f64;
        let worst = pages.iter().cloned().fold(0.0, f64::max);
        println!("  cluster view: {n} rows {table:.0} ms, picture with {} lines {picture:.0} ms after navigation; {b0}", n - 1 + links);
        println!("  groups view ({groups} groups): {groups_ms:.0} ms; {b1}");
        println!("  names view ({total} names): {names:.0} ms; {b2}");
        println!("  20 pages of names: {avg:.0} ms a page on average, {worst:.0} ms the slowest; the last page {last:.0} ms; {b3}");
        println!("  a search: {search:.0} ms after the keystroke (250 ms of it the page's debounce); {b4}");
        println!("  back to the cluster view: {back:.0} ms; {b5}");
        println!(
            "  split (a block between two other nodes and one of this node's) drawn {} ms after the second block returned \
             ({} ms after the first); heal drawn {} ms after the second unblock; {b6}",
            split.as_millis(),
            split_total.as_millis(),
            heal.as_millis()
        );
        println!("  {heap}");
        shot(&br, kind, "scale-healed").await;
        br.close().await.unwrap();
    }
}
