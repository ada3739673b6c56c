//! The web dashboard (`GET /` of the admin API), driven through WebDriver
//! in a real headless Chromium (Debian's `chromium` and `chromium-driver`)
//! and a real headless Firefox (Debian's `firefox-esr` and Mozilla's
//! `geckodriver`), which `.ci/run` installs, against three `cohort node`
//! processes: the story of a join, two splits, their heal and a name
//! clash; the keyboard alone; a phone-sized screen (390 CSS pixels wide,
//! in both browsers). And the socket's token check and read-only mode,
//! over a plain WebSocket. `dashboard_scale.rs` has the page at 14 and 50
//! nodes.
//!
//! Screenshots of the main views go to `target/tmp/dashboard/<browser>/`
//! (not committed).

mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::*;
use common::*;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, Locator};
use serde_json::json;

/// Runs an action the way an operator does with the keyboard: Enter on
/// the row's button, then Tab from Cancel to Confirm and Enter.
async fn act(c: &Client, node: &str, op: &str) {
    let b = c
        .find(Locator::Css(&format!(
            "#nodes-table tr[data-node='{node}'] button[data-op='{op}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("{op} button of {node}: {e}"));
    b.send_keys("\u{E007}").await.unwrap();
    until(c, "the confirmation", DEADLINE, "return document.getElementById('confirm').open && document.activeElement.id === 'confirm-cancel'").await;
    let cancel = c.find(Locator::Id("confirm-cancel")).await.unwrap();
    cancel.send_keys("\u{E004}").await.unwrap(); // Tab
    let active = js(c, "return document.activeElement.id").await;
    assert_eq!(
        active,
        json!("confirm-ok"),
        "Tab goes from Cancel to Confirm"
    );
    let ok = c.find(Locator::Id("confirm-ok")).await.unwrap();
    ok.send_keys("\u{E007}").await.unwrap();
}

const TAB: char = '\u{E004}';
const ENTER: char = '\u{E007}';
const SPACE: char = '\u{E00D}';
const ESCAPE: char = '\u{E00C}';

/// Presses `key` wherever the focus is (WebDriver's actions, as a
/// keyboard does: no element is focused first).
async fn press(c: &Client, key: char) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(keys).await.expect("a key press");
}

/// What has the focus: an id, an action (`op:node`), a region's label.
const FOCUSED: &str = r##"
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return 'body';
return e.id || (e.dataset.op ? e.dataset.op + ':' + e.dataset.node : '') || e.getAttribute('aria-label') || e.tagName + '.' + e.className"##;

/// How many actions a node's audit log holds.
fn audited(d: &Daemon) -> usize {
    std::fs::read_to_string(&d.log)
        .unwrap()
        .matches("admin: dashboard action")
        .count()
}

/// The cluster view with the keyboard alone, from the top of the page:
/// Tab reaches the views, the nodes table, its actions, in that order;
/// Space opens an action's confirmation and Escape closes it without
/// acting (the node logs no action) and gives the focus back; Space and
/// Enter confirm.
async fn keyboard(br: &Client, a: &Daemon) {
    // A click on the page's title (nothing to focus) starts the Tab order
    // at the top, as a click there does for a user.
    js(br, "document.activeElement.blur(); window.scrollTo(0, 0)").await;
    click(br, ".top h1").await;
    let mut order = Vec::new();
    for _ in 0..12 {
        press(br, TAB).await;
        let f = js(br, FOCUSED).await.as_str().unwrap().to_string();
        let stop = f == "block:b@127.0.0.1";
        order.push(f);
        if stop {
            break;
        }
    }
    let want = [
        "sync-btn",
        "tab-cluster",
        "node-filter",
        "Nodes table",
        "block:b@127.0.0.1",
    ];
    let mut at = 0;
    for f in &order {
        if at < want.len() && f == want[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        want.len(),
        "Tab order {order:?} reaches {want:?} in turn"
    );

    let before = audited(a);
    press(br, SPACE).await;
    until(br, "the confirmation", DEADLINE,
        "return document.getElementById('confirm').open && document.activeElement.id === 'confirm-cancel'").await;
    press(br, ESCAPE).await;
    until(br, "the confirmation closed", DEADLINE, &format!(
        "return !document.getElementById('confirm').open && (() => {{ {FOCUSED} }})() === 'block:b@127.0.0.1'")).await;
    // Space, Tab to Confirm, Space: b is blocked; the focus stays on its
    // row (now its Unblock); Enter, Tab, Enter lifts the block.
    press(br, SPACE).await;
    until(br, "the confirmation", DEADLINE,
        "return document.getElementById('confirm').open && document.activeElement.id === 'confirm-cancel'").await;
    press(br, TAB).await;
    press(br, SPACE).await;
    until(br, "b blocked, its Unblock focused", DEADLINE, &format!(
        "return document.querySelector(\"#nodes-table tr[data-node='b@127.0.0.1']\").dataset.state === 'blocked'
            && (() => {{ {FOCUSED} }})() === 'unblock:b@127.0.0.1'")).await;
    press(br, ENTER).await;
    until(br, "the confirmation", DEADLINE,
        "return document.getElementById('confirm').open && document.activeElement.id === 'confirm-cancel'").await;
    press(br, TAB).await;
    press(br, ENTER).await;
    until(br, "b up again", DEADLINE,
        "return document.querySelector(\"#nodes-table tr[data-node='b@127.0.0.1']\").dataset.state === 'up'").await;
    assert_eq!(
        audited(a),
        before + 2,
        "Escape acted: only the block and the unblock were confirmed"
    );
}

/// The page on a phone-sized screen: a real 390-pixel-wide viewport,
/// every view reached from its tab, nothing wider than the screen, the
/// tables' first column on screen in readable type (a table scrolls in
/// its own box).
async fn phone(kind: Browser, driver: &Driver, url: &str) {
    let br = browser_on(kind, driver, Screen::Phone).await;
    br.goto(url).await.unwrap();
    js(&br, HOOK).await;
    until(&br, "the dashboard on a phone", DEADLINE,
        "return !document.getElementById('app').hidden && document.querySelectorAll('#nodes-table tbody tr').length === 3").await;
    let vp = js(
        &br,
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio]",
    )
    .await;
    let width = vp[0].as_f64().unwrap();
    assert!(
        (320.0..=430.0).contains(&width),
        "a phone-sized viewport, [width, height, pixel ratio] = {vp}"
    );
    for (view, table) in [
        ("cluster", Some("nodes-table")),
        ("groups", Some("groups-table")),
        ("names", Some("names-table")),
        ("metrics", None),
    ] {
        // A WebDriver click fails on a tab off screen or under another element.
        click(&br, &format!("#tab-{view}")).await;
        let rows = table.map_or(String::from("true"), |t| format!(
            r##"(() => {{
                const td = document.querySelector('#{t} tbody tr td');
                if (!td) return false;
                const r = td.getBoundingClientRect(), box = td.closest('.scroll').getBoundingClientRect();
                return parseFloat(getComputedStyle(td).fontSize) >= 12 && r.left >= 0 && r.right <= window.innerWidth
                    && box.right <= window.innerWidth + 0.5;
            }})()"##));
        until(&br, &format!("the {view} view fitting the phone"), DEADLINE, &format!(
            r##"return !document.getElementById('view-{view}').hidden
                && document.documentElement.scrollWidth <= window.innerWidth
                && [...document.querySelectorAll('.tabs button')].every(b => {{
                    const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth && r.height >= 24; }})
                && {rows}"##)).await;
        js(&br, "window.scrollTo(0, 0); document.querySelectorAll('.scroll').forEach(e => { e.scrollLeft = 0; })").await;
        shot(&br, kind, &format!("phone-{view}")).await;
    }
    let errs = js(&br, "return window.__errs").await;
    assert_eq!(errs, json!([]), "the page logged errors on the phone");
    br.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_live_in_chromium() {
    the_dashboard_shows_the_cluster_live(Browser::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_live_in_firefox() {
    the_dashboard_shows_the_cluster_live(Browser::Firefox).await;
}

/// One browser at a time: the story's "within 2 s" is the page's, not a
/// machine shared by two browsers and six nodes.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The same story in each browser.
async fn the_dashboard_shows_the_cluster_live(kind: Browser) {
    let _one = ONE_BROWSER.lock().await;
    let a = daemon_logging("a@127.0.0.1", &[], "cli-test-cookie", &[], "debug");
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    let c = daemon("c@127.0.0.1", &[&a.listen]);
    for d in [&a, &b, &c] {
        wait_for("full mesh", || {
            strings(&ctl_json(d, &["nodes"]), "nodes").len() == 2
        });
    }
    // `ctl dashboard` prints the URL that logs the browser in.
    let out = ctl(&a, &["dashboard"]);
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(url, format!("http://{}/#token={TOKEN}", a.admin));

    let driver = driver(kind);
    let br = browser(kind, &driver).await;

    // Without the token: the login form, which refuses a wrong one.
    let root = format!("http://{}/", a.admin);
    br.goto(&root).await.unwrap();
    js(&br, HOOK).await;
    until(
        &br,
        "the login form",
        DEADLINE,
        "return !document.getElementById('login').hidden",
    )
    .await;
    let input = br.find(Locator::Id("login-token")).await.unwrap();
    input.send_keys("not-the-token").await.unwrap();
    input.send_keys("\u{E007}").await.unwrap();
    until(
        &br,
        "the refusal",
        DEADLINE,
        "return document.getElementById('login-error').textContent.includes('refused this token')",
    )
    .await;
    assert_eq!(
        js(&br, "return document.getElementById('app').hidden").await,
        json!(true)
    );
    shot(&br, kind, "login-refused").await;

    // The printed URL logs in; the token leaves the address bar.
    br.goto(&url).await.unwrap();
    js(&br, HOOK).await;
    until(
        &br,
        "the dashboard",
        DEADLINE,
        "return !document.getElementById('app').hidden",
    )
    .await;
    assert_eq!(js(&br, "return location.hash").await, json!(""));
    assert_eq!(
        js(&br, "return sessionStorage.getItem('cohort-admin-token')").await,
        json!(TOKEN)
    );

    // All three nodes, up, in the table and the picture.
    until(
        &br,
        "three nodes up",
        DEADLINE,
        r##"
        const rows = [...document.querySelectorAll('#nodes-table tbody tr')];
        const up = rows.filter(r => r.dataset.state === 'up').map(r => r.dataset.node).sort();
        return rows.length === 3 && up.join() === 'b@127.0.0.1,c@127.0.0.1'
            && document.querySelectorAll('#cluster line.edge.up').length === 2"##,
    )
    .await;
    shot(&br, kind, "cluster").await;

    // The whole cluster, not only a's sessions: the b–c session is drawn
    // from what b and c publish, and b's row has its figures.
    let b_c = "#cluster line.link[data-a='b@127.0.0.1'][data-b='c@127.0.0.1']";
    until(
        &br,
        "the b–c session",
        DEADLINE,
        &format!(
            "const l = document.querySelector(\"{b_c}\"); return !!l && l.dataset.state === 'up'"
        ),
    )
    .await;
    let figures = format!(
        r##"const c = document.querySelector("#nodes-table tr[data-node='b@127.0.0.1']").cells;
           return c[3].textContent === '{}' && /^[0-9.]+ [KMG]?i?B \/ [0-9.]+ [KMG]?i?B[1-9][0-9]* \/ [1-9][0-9]* frames$/.test(c[6].textContent)
               && /^[0-9]+$/.test(c[7].textContent) && c[8].textContent !== '—'"##,
        b.listen
    );
    until(
        &br,
        "b's address, traffic, lag and since",
        DEADLINE,
        &figures,
    )
    .await;
    // A netsplit between two other nodes: b blocks c; a's page shows
    // their line red and names the pair in the banner, then the heal.
    let out = ctl(&b, &["block", "c@127.0.0.1"]);
    assert!(out.status.success(), "{out:?}");
    until(
        &br,
        "the b–c line red",
        DEADLINE,
        &format!(
            r##"const l = document.querySelector("{b_c}");
               return !!l && l.dataset.state === 'down' && getComputedStyle(l).stroke === 'rgb(214, 40, 57)'
                   && document.getElementById('split-banner').textContent.includes('between b@127.0.0.1 — c@127.0.0.1')"##
        ),
    )
    .await;
    shot(&br, kind, "split-b-c").await;
    let out = ctl(&b, &["unblock", "c@127.0.0.1"]);
    assert!(out.status.success(), "{out:?}");
    until(
        &br,
        "the b–c heal",
        DEADLINE,
        &format!(
            r##"const l = document.querySelector("{b_c}");
               return !!l && l.dataset.state === 'up'
                   && document.getElementById('split-banner').textContent.startsWith('Healed')"##
        ),
    )
    .await;

    // A join on node b shows in a's group table.
    let member = Hold::start(&b, &["--join", "pg/dash-workers"]);
    let pid = member.ready();
    // The keyboard: Right arrow on the selected tab moves to the next view.
    let tab = br.find(Locator::Id("tab-cluster")).await.unwrap();
    tab.send_keys("\u{E014}").await.unwrap();
    until(&br, "the groups view", DEADLINE,
        "return !document.getElementById('view-groups').hidden && document.activeElement.id === 'tab-groups'").await;
    until(
        &br,
        "the joined group",
        DEADLINE,
        r##"
        const r = document.querySelector("#groups-table tr[data-group='dash-workers']");
        return !!r && r.querySelector('.count').textContent === '1'
            && r.textContent.includes('b@127.0.0.1: 1')"##,
    )
    .await;
    click(&br, "#groups-table tr[data-group='dash-workers'] button").await;
    let probe = format!(
        "return [...document.querySelectorAll('#members-table tbody td')].some(t => t.textContent === '{pid}')"
    );
    until(&br, "the member's pid", DEADLINE, &probe).await;
    shot(&br, kind, "groups").await;

    // A netsplit: a blocks b and c from the dashboard (keyboard only); the
    // picture shows it within 2 s of each confirmation.
    click(&br, "#tab-cluster").await;
    act(&br, "c@127.0.0.1", "block").await;
    until(&br, "c's line red", Duration::from_secs(2), r##"
        const l = document.querySelector("#cluster line.edge[data-peer='c@127.0.0.1']");
        return !!l && l.dataset.state === 'blocked' && getComputedStyle(l).stroke === 'rgb(214, 40, 57)'
            && !document.getElementById('split-banner').hidden"##).await;
    act(&br, "b@127.0.0.1", "block").await;
    until(&br, "b's line red", Duration::from_secs(2), r##"
        return document.querySelectorAll("#cluster line.edge[data-state='blocked']").length === 2
            && document.querySelector("#nodes-table tr[data-node='b@127.0.0.1']").dataset.state === 'blocked'"##).await;
    shot(&br, kind, "split").await;

    // The same name on both sides of the split.
    let on_c = Hold::start(&c, &["--register", "dash-clash"]);
    let pid_c = on_c.ready();
    let on_a = Hold::start(&a, &["--register", "dash-clash"]);
    let pid_a = on_a.ready();

    // The heal: both lines green again, then the clash in the timeline,
    // naming one claimant the winner and the other the loser.
    act(&br, "b@127.0.0.1", "unblock").await;
    act(&br, "c@127.0.0.1", "unblock").await;
    until(
        &br,
        "the heal",
        DEADLINE,
        r##"
        return document.querySelectorAll('#cluster line.edge.up').length === 2
            && document.getElementById('split-banner').textContent.startsWith('Healed')"##,
    )
    .await;
    until(
        &br,
        "the clash in the timeline",
        DEADLINE,
        r##"
        return [...document.querySelectorAll("#timeline li[data-type='conflict']")]
            .some(li => li.textContent.includes('dash-clash'))"##,
    )
    .await;
    let line = js(
        &br,
        r##"return [...document.querySelectorAll("#timeline li[data-type='conflict']")]
        .find(li => li.textContent.includes('dash-clash')).textContent"##,
    )
    .await;
    let line = line.as_str().unwrap().to_string();
    let (winner, mut loser_hold) = if line.contains(&format!("winner {pid_a}, loser {pid_c}")) {
        (pid_a.clone(), on_c)
    } else {
        assert!(
            line.contains(&format!("winner {pid_c}, loser {pid_a}")),
            "{line}"
        );
        (pid_c.clone(), on_a)
    };
    assert!(line.contains("action kill"), "{line}");
    assert_eq!(loser_hold.exit_code(), 3, "the loser was killed: {line}");
    // The README's picture: the healed cluster with its timeline.
    js(
        &br,
        "window.scrollTo(0, 0); document.activeElement.blur(); document.getElementById('toast').hidden = true; \
         document.querySelectorAll('.scroll').forEach(e => { e.scrollLeft = 0; })",
    )
    .await;
    shot(&br, kind, "healed").await;

    // The names view finds the survivor.
    click(&br, "#tab-names").await;
    let search = br.find(Locator::Id("name-search")).await.unwrap();
    search.send_keys("clash").await.unwrap();
    let probe = format!(
        r##"const r = document.querySelector("#names-table tr[data-name='dash-clash']");
           return !!r && r.textContent.includes('{winner}')"##
    );
    until(&br, "the name row", DEADLINE, &probe).await;
    shot(&br, kind, "names").await;
    click(&br, "#tab-metrics").await;
    until(
        &br,
        "the charts",
        DEADLINE,
        r##"const c = document.querySelector("#charts .chart[data-metric='Connected nodes'] .val");
            return document.querySelectorAll('#charts .chart').length >= 6 && !!c && c.textContent === '2'"##,
    )
    .await;
    shot(&br, kind, "metrics").await;

    click(&br, "#tab-cluster").await;
    keyboard(&br, &a).await;

    let errs = js(&br, "return window.__errs").await;
    assert_eq!(errs, json!([]), "the page logged errors");
    br.close().await.unwrap();

    // A phone-sized screen, in a window of its own.
    phone(kind, &driver, &url).await;
    drop(member);

    // The token went to the browser in the fragment and over the socket:
    // it is nowhere in the node's log, which did log the dashboard.
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(
        log.contains("dashboard action"),
        "the audit lines are there"
    );
    assert!(!log.contains(TOKEN), "the node logged its admin token");
}

#[test]
fn the_dashboard_socket_needs_the_token_and_honours_read_only() {
    let a = daemon_with("a@127.0.0.1", &[], "cli-test-cookie", &["--bench-api"]);
    let b = daemon_with(
        "b@127.0.0.1",
        &[&a.listen],
        "cli-test-cookie",
        &["--dashboard-read-only"],
    );
    wait_for("b sees a", || {
        strings(&ctl_json(&b, &["nodes"]), "nodes").len() == 1
    });

    // The page needs no token; data does.
    let (code, body) = http_with(&a.admin, "GET", "/", None, &[("Host", &a.admin)]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("/assets/app.js"));
    let (code, _) = http_with(
        &a.admin,
        "GET",
        "/assets/app.js",
        None,
        &[("Host", &a.admin)],
    );
    assert_eq!(code, 200);
    let (code, _) = http_with(&a.admin, "GET", "/info", None, &[("Host", &a.admin)]);
    assert_eq!(code, 401);
    // Another site's page cannot open the socket (Origin).
    let err = Ws::open_at(
        &a.admin,
        "/dashboard/ws",
        &[("Origin", "http://evil.example")],
    )
    .expect_err("a cross-site socket is refused");
    assert!(err.to_string().contains("403"), "{err}");

    // A wrong token: refused and closed; nothing else is sent.
    let mut ws = dashboard_socket(&a);
    send(&mut ws, json!({"op": "auth", "token": "wrong"}));
    assert_eq!(read(&mut ws)["kind"], "auth_error");
    assert_eq!(read(&mut ws)["closed"], "wrong or missing admin token");
    // A request before the token is no token.
    let mut ws = dashboard_socket(&a);
    send(&mut ws, json!({"op": "names", "table": "global"}));
    assert_eq!(read(&mut ws)["kind"], "auth_error");

    // The right token: hello, state, history; actions work on a.
    let mut ws = dashboard_socket(&a);
    send(&mut ws, json!({"op": "auth", "token": TOKEN}));
    let hello = read(&mut ws);
    assert_eq!(hello["kind"], "hello", "{hello}");
    assert_eq!(hello["read_only"], false);
    let state = read(&mut ws);
    assert_eq!(state["kind"], "state");
    let rows = state["nodes"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["name"] == "b@127.0.0.1" && r["state"] == "up"),
        "{state}"
    );
    // b's row: its listen address, the traffic of the session and since
    // when it is up; /metrics has the same per peer.
    let b_row = rows.iter().find(|r| r["name"] == "b@127.0.0.1").unwrap();
    assert_eq!(b_row["address"], json!(b.listen), "{b_row}");
    for k in ["bytes_in", "bytes_out", "frames_in", "frames_out", "since"] {
        assert!(b_row[k].as_u64().is_some_and(|v| v > 0), "{k}: {b_row}");
    }
    assert!(b_row["sync_lag"].is_u64(), "{b_row}");
    assert!(state["views"].is_object(), "{state}");
    wait_for("a's figures of b in /metrics", || {
        let (_, body) = http(&a.admin, "GET", "/metrics", None);
        body.lines().any(|l| {
            l.strip_prefix("cohort_peer_bytes_total{peer=\"b@127.0.0.1\",dir=\"in\"} ")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v > 0)
        }) && body.contains("cohort_peer_sync_lag{peer=\"b@127.0.0.1\"} ")
            && body.contains("cohort_peer_frames_total{peer=\"b@127.0.0.1\",dir=\"out\"} ")
    });
    // The internal scope of the session lists is no user's scope.
    let scopes: Vec<String> = ctl_json(&a, &["scopes"])["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(scopes, ["pg"]);
    send(
        &mut ws,
        json!({"id": 1, "op": "block", "node": "b@127.0.0.1"}),
    );
    assert_eq!(reply(&mut ws, 1)["kind"], "done");
    // The block shows in a state pushed next.
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < DEADLINE, "no state showed b blocked");
        let v = read(&mut ws);
        if v["kind"] == "state" {
            let b_row = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "b@127.0.0.1")
                .cloned();
            if b_row.is_some_and(|r| r["state"] == "blocked") {
                break;
            }
        }
    }
    send(
        &mut ws,
        json!({"id": 2, "op": "unblock", "node": "b@127.0.0.1"}),
    );
    assert_eq!(reply(&mut ws, 2)["kind"], "done");
    // Hostile input: a clear error, the socket keeps serving.
    send(
        &mut ws,
        json!({"id": 3, "op": "names", "table": "x".repeat(300)}),
    );
    let r = reply(&mut ws, 3);
    assert_eq!(r["kind"], "error");
    assert!(r["error"].as_str().unwrap().contains("at most 255"), "{r}");
    send(
        &mut ws,
        json!({"id": 4, "op": "groups", "scope": "pg", "limit": 1_000_000}),
    );
    let r = reply(&mut ws, 4);
    assert_eq!(r["kind"], "groups", "{r}");

    // A burst of 300 registrations: a few one by one, the rest counted
    // (the timeline shows a rate, the socket is not flooded).
    let (code, body) = http(&a.admin, "POST", "/bench/spawn", Some(r#"{"count":300}"#));
    assert_eq!(code, 200, "{body}");
    let (code, body) = http(
        &a.admin,
        "POST",
        "/bench/register",
        Some(r#"{"prefix":"burst-","count":300,"concurrency":8}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (mut single, mut counted) = (0, 0);
    let t = Instant::now();
    while single + counted < 300 {
        assert!(
            t.elapsed() < DEADLINE,
            "{single} + {counted} of 300 registrations shown"
        );
        let v = read(&mut ws);
        match v["type"].as_str() {
            Some("registered") => single += 1,
            Some("names_rate") => counted += v["registered"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(single + counted, 300);
    assert!(
        counted > 0 && single < 300,
        "{single} shown one by one, {counted} counted"
    );

    // b is read-only: it says so and refuses every action.
    let mut ws = dashboard_socket(&b);
    send(&mut ws, json!({"op": "auth", "token": TOKEN}));
    let hello = read(&mut ws);
    assert_eq!(hello["read_only"], true, "{hello}");
    for (i, op) in [
        json!({"op": "block", "node": "a@127.0.0.1"}),
        json!({"op": "unblock", "node": "a@127.0.0.1"}),
        json!({"op": "disconnect", "node": "a@127.0.0.1"}),
        json!({"op": "sync"}),
        json!({"op": "unregister", "table": "global", "name": "x"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut op = op;
        op["id"] = json!(i);
        send(&mut ws, op.clone());
        let r = reply(&mut ws, i as u64);
        assert_eq!(r["kind"], "error", "{op} → {r}");
        assert!(r["error"].as_str().unwrap().contains("read-only"), "{r}");
    }
    assert_eq!(strings(&ctl_json(&b, &["nodes"]), "nodes"), ["a@127.0.0.1"]);
}
