//! The web dashboard of the admin API: a page embedded in the binary
//! (`GET /`, `/assets/...`, served without the token) and the WebSocket it
//! reads the cluster through (`GET /dashboard/ws`).
//!
//! A browser cannot put a header on a WebSocket, so the dashboard's socket
//! is let through [`crate::admin::guard`] without `Authorization` (the Host
//! and Origin checks still apply) and authenticates with its first message,
//! `{"op":"auth","token":"..."}`, within [`AUTH_WAIT`]; a wrong or missing
//! token gets `{"kind":"auth_error"}` and a close frame. The token thus
//! never appears in a URL or a header the node could log: `cohort ctl
//! dashboard` hands it to the browser in the URL's fragment, which browsers
//! do not send.
//!
//! After the token: `hello`, then `state` (the nodes, global groups, scopes
//! and counters; sent again when it changes, checked on every event and
//! every [`STATE_EVERY`]), the recent `event`s (the timeline), then every
//! new `event`. Large lists (groups, members, names) are read page by page
//! on request. Everything goes through the bounded outgoing queue of the
//! other admin WebSockets; events reach it from a bounded broadcast
//! channel, and a client that falls behind it is told (`lagged`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cohort::{DownReason, LossPolicy, NameEvent, Node, NodeEvent, NodeName, PgEventKind};
use futures::StreamExt;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;

pub(crate) mod hub;

use crate::admin::state::{audit_unregister, Admin, ApiError};
use crate::config::check_name;
use crate::listen::Client;
use crate::outbox::Outbox;
use crate::sync::lock;
use hub::Hub;

/// How long a dashboard socket may take to send the token.
pub const AUTH_WAIT: Duration = Duration::from_secs(5);
/// How often the state is recomputed when no event says it changed
/// (traffic counters, sync errors).
pub const STATE_EVERY: Duration = Duration::from_secs(2);
/// Joins plus leaves in one scope and one second from which the timeline
/// shows a rate line (below it, joins and leaves only move the counts).
pub const PG_RATE_THRESHOLD: u64 = 50;
/// Registrations and unregistrations of one table shown one by one in a
/// second; past them, the second's count is one line.
pub const NAME_EVENTS_PER_SECOND: u64 = 20;
/// The largest page of a list.
const MAX_PAGE: usize = 500;

/// A file of the page.
struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        mime: "text/html; charset=utf-8",
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "icon.svg",
        mime: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

/// What the page may load and where it may connect: its own files and its
/// own origin only; never framed (clickjacking of the actions).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

fn asset(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "no such dashboard asset").into_response();
    };
    let mut r = (StatusCode::OK, a.body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the page.
pub async fn index() -> Response {
    asset("index.html")
}

/// `GET /assets/{file}`.
pub async fn assets(Path(file): Path<String>) -> Response {
    asset(&file)
}

/// Whether `path` is served without the token: the page's files and the
/// dashboard socket (which checks the token itself).
pub fn is_open(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::GET
        && (path == "/" || path == "/dashboard/ws" || path.starts_with("/assets/"))
}

fn down_reason(r: &DownReason) -> String {
    r.to_string()
}

fn policy(p: LossPolicy) -> &'static str {
    match p {
        LossPolicy::Kill => "kill",
        LossPolicy::Notify => "notify",
        LossPolicy::DropBoth => "drop_both",
        _ => "other",
    }
}

/// Starts the hub's watchers: node up/down, every name table, the process
/// groups of every running scope (rates), sync errors.
pub fn start_hub(a: &Admin) -> Arc<Hub> {
    let hub = Arc::new(Hub::new());
    let node = a.node.clone();
    let h = hub.clone();
    let mut nodes = node.subscribe();
    tokio::spawn(async move {
        while let Some(ev) = nodes.recv().await {
            let Ok(ev) = ev else {
                // Lagged: missed node events; the next ones still show.
                continue;
            };
            match ev {
                NodeEvent::Up { node, creation } => {
                    h.mark(node.as_str(), Some(creation));
                    h.event(json!({"type": "nodeup", "node": node.as_str(), "creation": creation}));
                }
                NodeEvent::Down {
                    node,
                    creation,
                    reason,
                } => {
                    h.mark(node.as_str(), None);
                    h.event(json!({"type": "nodedown", "node": node.as_str(),
                                   "creation": creation, "reason": down_reason(&reason)}));
                }
                _ => {}
            }
        }
    });
    for t in a.tables.iter() {
        let Some(table) = node.names_table(&t.0) else {
            continue;
        };
        let mut rx = table.subscribe();
        // Subscribed first: an event the snapshot already holds replays
        // harmlessly (the last event of a name decides).
        hub.reindex(&t.0, &table.registered_names());
        let h = hub.clone();
        let tname = t.0.clone();
        tokio::spawn(async move {
            // Registrations and unregistrations past the first
            // NAME_EVENTS_PER_SECOND of a second are counted, and the count is
            // one line at the end of the second; conflicts always show.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let (mut shown, mut reg, mut unreg) = (0u64, 0u64, 0u64);
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(Ok(ev)) => ev,
                        // Lagged: the dashboard shows what follows; the
                        // index is read afresh.
                        Some(Err(_)) => {
                            h.reindex(&tname, &table.registered_names());
                            continue;
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        if reg + unreg > 0 {
                            h.event(json!({"type": "names_rate", "table": tname,
                                           "registered": reg, "unregistered": unreg, "per": "1s"}));
                        }
                        (shown, reg, unreg) = (0, 0, 0);
                        continue;
                    }
                };
                match &ev {
                    NameEvent::Registered { name, .. } => h.index_name(&tname, name, true),
                    NameEvent::Unregistered { name, .. } => h.index_name(&tname, name, false),
                    _ => {}
                }
                if !matches!(ev, NameEvent::ConflictResolved { .. }) {
                    if shown >= NAME_EVENTS_PER_SECOND {
                        match ev {
                            NameEvent::Registered { .. } => reg += 1,
                            _ => unreg += 1,
                        }
                        h.changed.notify_waiters();
                        continue;
                    }
                    shown += 1;
                }
                let v = match ev {
                    NameEvent::Registered { name, pid, .. } => json!({
                        "type": "registered", "table": tname, "name": name, "pid": pid.to_string(),
                    }),
                    NameEvent::Unregistered { name, pid, reason } => json!({
                        "type": "unregistered", "table": tname, "name": name,
                        "pid": pid.to_string(), "reason": format!("{reason:?}").to_lowercase(),
                    }),
                    NameEvent::ConflictResolved {
                        name,
                        winner,
                        loser,
                        action,
                    } => json!({
                        "type": "conflict", "table": tname, "name": name,
                        "winner": winner.map(|p| p.to_string()), "loser": loser.to_string(),
                        "action": policy(action),
                    }),
                    _ => continue,
                };
                h.event(v);
            }
        });
    }
    // Process groups: per scope, joins and leaves are counted per second;
    // a second at or over the threshold is one timeline line. Scopes that
    // start later are picked up at the next round.
    let h = hub.clone();
    let n = node.clone();
    tokio::spawn(async move {
        let (ptx, mut prx) = tokio::sync::mpsc::channel::<(String, PgEventKind, usize)>(4096);
        let mut watched: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut sync_round = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    for (scope, (joins, leaves)) in std::mem::take(&mut counts) {
                        if joins + leaves >= PG_RATE_THRESHOLD {
                            h.event(json!({"type": "pg_rate", "scope": scope,
                                           "joins": joins, "leaves": leaves, "per": "1s"}));
                        }
                    }
                    let running: Vec<String> = crate::sessions::user_scopes(&n).iter().map(|s| s.to_string()).collect();
                    watched.retain(|s, t| {
                        let keep = running.contains(s) && !t.is_finished();
                        if !keep { t.abort(); }
                        keep
                    });
                    for s in running {
                        if watched.contains_key(&s) {
                            continue;
                        }
                        let Ok((mut mon, _)) = n.scope(&s).monitor_scope() else { continue };
                        let tx = ptx.clone();
                        let name = s.clone();
                        watched.insert(s, tokio::spawn(async move {
                            while let Some(ev) = mon.recv().await {
                                let Ok(ev) = ev else { continue };
                                // A full channel drops the count, never blocks the node.
                                let _ = tx.try_send((name.clone(), ev.kind, ev.pids.len()));
                            }
                        }));
                    }
                    sync_round += 1;
                    if sync_round % 2 == 0 {
                        check_sync_errors(&n, &h);
                    }
                }
                Some((scope, kind, k)) = prx.recv() => {
                    let c = counts.entry(scope).or_default();
                    match kind {
                        PgEventKind::Join => c.0 += k as u64,
                        PgEventKind::Leave => c.1 += k as u64,
                        PgEventKind::Meta => {}
                        _ => {}
                    }
                    h.changed.notify_waiters();
                }
            }
        }
    });
    hub
}

fn check_sync_errors(n: &Node, h: &Hub) {
    let now: BTreeSet<String> = n
        .global_group_info()
        .sync_error
        .iter()
        .map(|n| n.as_str().to_string())
        .collect();
    let mut last = lock(&h.sync_errors);
    for node in now.difference(&last) {
        h.event(json!({"type": "sync_error", "node": node}));
    }
    *last = now;
}

/// The state a dashboard shows at the top: one row per known node, the
/// global groups and the scopes.
fn state(a: &Admin, hub: &Hub) -> Value {
    let node = &a.node;
    let info = node.global_group_info();
    let me = node.name().as_str().to_string();
    let visible: BTreeSet<String> = node.nodes().iter().map(|n| n.to_string()).collect();
    let hidden: BTreeSet<String> = node.nodes_hidden().iter().map(|n| n.to_string()).collect();
    let blocked: BTreeSet<String> = lock(&a.blocked).iter().map(|n| n.to_string()).collect();
    let set = |v: &[NodeName]| -> BTreeSet<String> { v.iter().map(|n| n.to_string()).collect() };
    let sync_error = set(&info.sync_error);
    let no_contact = set(&info.no_contact);
    let unreached = set(&node.unreached());
    let redialing = set(&node.redialing());
    // Which global group lists a node.
    let mut group_of: BTreeMap<String, String> = BTreeMap::new();
    let mut groups = Vec::new();
    if let Some(g) = &info.own_group_name {
        for n in &info.own_group_nodes {
            group_of.insert(n.to_string(), g.clone());
        }
        groups.push(json!({"name": g, "own": true,
            "nodes": info.own_group_nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>()}));
    }
    for g in &info.other_groups {
        for n in &g.nodes {
            group_of.insert(n.to_string(), g.name.clone());
        }
        groups.push(
            json!({"name": g.name, "own": false, "publish": g.publish.to_string(),
            "nodes": g.nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>()}),
        );
    }
    let seen = lock(&hub.seen).clone();
    let mut all: BTreeSet<String> = BTreeSet::new();
    all.extend(visible.iter().cloned());
    all.extend(hidden.iter().cloned());
    all.extend(blocked.iter().cloned());
    all.extend(sync_error.iter().cloned());
    all.extend(no_contact.iter().cloned());
    all.extend(unreached.iter().cloned());
    all.extend(redialing.iter().cloned());
    all.extend(group_of.keys().cloned());
    all.extend(seen.keys().cloned());
    all.remove(&me);
    let st = node.stats();
    let mut rows = vec![json!({
        "name": me, "self": true, "creation": node.creation(), "address": node.local_addr(),
        "state": "self", "group": group_of.get(&me), "hidden": false,
        "bytes_in": st.bytes_in, "bytes_out": st.bytes_out, "frames_in": st.frames_in,
        "frames_out": st.frames_out, "sync_lag": st.pg_lag,
    })];
    let peers: BTreeMap<String, cohort::PeerStats> = node
        .peers()
        .into_iter()
        .map(|p| (p.node.to_string(), p))
        .collect();
    for n in all {
        let state = if blocked.contains(&n) {
            "blocked"
        } else if sync_error.contains(&n) {
            "sync_error"
        } else if visible.contains(&n) || hidden.contains(&n) {
            "up"
        } else if no_contact.contains(&n) {
            "no_contact"
        } else {
            "down"
        };
        let (creation, since) = seen.get(&n).copied().unwrap_or((0, 0));
        let mut row = json!({
            "name": n, "self": false,
            "creation": (creation != 0).then_some(creation),
            "state": state, "group": group_of.get(&n), "hidden": hidden.contains(&n),
            "since": (since != 0).then_some(since),
        });
        // An up session: where the peer is, its traffic and lag, and since
        // when the session is up.
        if let Some(p) = peers.get(&n) {
            let opened = p
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            row["creation"] = json!(p.creation);
            row["address"] = json!(p.addr);
            row["since"] = json!(opened);
            row["bytes_in"] = json!(p.bytes_in);
            row["bytes_out"] = json!(p.bytes_out);
            row["frames_in"] = json!(p.frames_in);
            row["frames_out"] = json!(p.frames_out);
            row["sync_lag"] = json!(p.sync_lag);
        }
        rows.push(row);
    }
    let scopes: Vec<Value> = crate::sessions::user_scopes(node)
        .iter()
        .map(|s| {
            let scope = node.scope(s);
            json!({"name": s.as_ref(), "groups": scope.which_groups().len(),
                   "members": scope.membership_count()})
        })
        .collect();
    let tables: Vec<Value> = a
        .tables
        .iter()
        .map(|(t, mode)| {
            let len = node.names_table(t).map_or(0, |x| x.len());
            json!({"name": t, "mode": mode, "names": len})
        })
        .collect();
    json!({
        "kind": "state",
        "node": node.name().as_str(),
        "global_group_state": info.state,
        "nodes": rows,
        "global_groups": groups,
        "scopes": scopes,
        "tables": tables,
        "unreached": unreached,
        // Each node's sessions as it publishes them (see crate::sessions).
        "views": crate::sessions::views(node),
    })
}

/// `GET /dashboard/ws`.
pub async fn socket(
    State(a): State<Admin>,
    client: Option<Extension<Client>>,
    ws: WebSocketUpgrade,
) -> Response {
    let client = Client::of(client);
    ws.on_upgrade(move |s| dashboard(a, s, client))
}

async fn dashboard(a: Admin, socket: WebSocket, client: Client) {
    let (sink, mut incoming) = socket.split();
    let (outbox, writer) = Outbox::start(sink, a.ws_queue_bytes, client.clone());
    // The token first.
    let first = tokio::time::timeout(AUTH_WAIT, incoming.next()).await;
    let given = match first {
        Ok(Some(Ok(WsMessage::Text(t)))) => serde_json::from_str::<Value>(&t)
            .ok()
            .filter(|v| v["op"] == "auth")
            .and_then(|v| v["token"].as_str().map(str::to_string)),
        _ => None,
    };
    let ok = given.is_some_and(|t| bool::from(t.as_bytes().ct_eq(a.token.as_bytes())));
    if !ok {
        tracing::info!(client = %client, "admin: dashboard socket refused (missing or wrong token)");
        outbox.push(json!({"kind": "auth_error",
            "error": "wrong or missing admin token"}));
        outbox.close(CloseFrame {
            code: 1008,
            reason: "wrong or missing admin token".into(),
        });
        drop(outbox);
        let _ = writer.await;
        return;
    }
    let hub = a.hub.get_or_init(|| start_hub(&a)).clone();
    let mut events = hub.tx.subscribe();
    let read_only = a.dashboard_read_only;
    let tables: Vec<Value> = a
        .tables
        .iter()
        .map(|(t, m)| json!({"name": t, "mode": m}))
        .collect();
    let mut ok = outbox.push(json!({
        "kind": "hello", "node": a.node.name().as_str(), "creation": a.node.creation(),
        "read_only": read_only, "tables": tables,
        "pg_rate_threshold": PG_RATE_THRESHOLD, "state_every_ms": STATE_EVERY.as_millis() as u64,
    }));
    let mut last = state(&a, &hub);
    ok = ok && outbox.push(last.clone());
    let history: Vec<Value> = lock(&hub.history).iter().cloned().collect();
    ok = ok && outbox.push(json!({"kind": "history", "events": history}));
    let mut tick = tokio::time::interval(STATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while ok {
        let changed = hub.changed.notified();
        tokio::select! {
            msg = incoming.next() => {
                let Some(Ok(msg)) = msg else { break };
                let t = match msg {
                    WsMessage::Text(t) => t,
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let reply = request(&a, &client, read_only, &t).await;
                ok = outbox.push(reply);
                // An action may change the state before any event says so.
                let s = state(&a, &hub);
                if s != last {
                    ok = ok && outbox.push(s.clone());
                    last = s;
                }
            }
            ev = events.recv() => match ev {
                Ok(v) => ok = outbox.push(v),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    ok = outbox.push(json!({"kind": "lagged", "missed": n}));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = changed => {
                // Events come in bursts: one state for a burst.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let s = state(&a, &hub);
                if s != last {
                    ok = outbox.push(s.clone());
                    last = s;
                }
            }
            _ = tick.tick() => {
                let s = state(&a, &hub);
                if s != last {
                    ok = outbox.push(s.clone());
                    last = s;
                }
            }
        }
    }
    drop(outbox);
    let _ = writer.await;
}

fn page(v: &Value) -> (String, usize, usize) {
    let q = v["q"].as_str().unwrap_or("").to_lowercase();
    let offset = v["offset"].as_u64().unwrap_or(0) as usize;
    let limit = (v["limit"].as_u64().unwrap_or(50) as usize).clamp(1, MAX_PAGE);
    (q, offset, limit)
}

/// Answers one request of a dashboard: a page of a list, or an action.
async fn request(a: &Admin, client: &Client, read_only: bool, text: &str) -> Value {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json!({"kind": "error", "error": format!("bad JSON: {e}")}),
    };
    let op = v["op"].as_str().unwrap_or("").to_string();
    let mut r = match run(a, client, read_only, &op, &v).await {
        Ok(r) => r,
        Err(e) => json!({"kind": "error", "op": op, "error": e}),
    };
    if let Some(id) = v.get("id") {
        r["id"] = id.clone();
    }
    r
}

fn arg(v: &Value, k: &str) -> Result<String, String> {
    let s = v[k].as_str().ok_or_else(|| format!("missing \"{k}\""))?;
    check_name(k, s)?;
    Ok(s.to_string())
}

async fn run(
    a: &Admin,
    client: &Client,
    read_only: bool,
    op: &str,
    v: &Value,
) -> Result<Value, String> {
    let node = &a.node;
    match op {
        "groups" => {
            let scope_name = arg(v, "scope")?;
            if !crate::sessions::user_scopes(node)
                .iter()
                .any(|s| s.as_ref() == scope_name)
            {
                return Err(format!("scope {scope_name:?} does not run on this node"));
            }
            let scope = node.scope(&scope_name);
            let (q, offset, limit) = page(v);
            let mut rows: Vec<(String, usize)> = scope
                .which_groups()
                .iter()
                .filter(|g| q.is_empty() || g.to_lowercase().contains(&q))
                .map(|g| (g.to_string(), scope.members(g).len()))
                .collect();
            let desc = v["desc"].as_bool().unwrap_or(false);
            match v["sort"].as_str().unwrap_or("name") {
                "members" => rows.sort_by(|x, y| x.1.cmp(&y.1).then_with(|| x.0.cmp(&y.0))),
                _ => rows.sort(),
            }
            if desc {
                rows.reverse();
            }
            let total = rows.len();
            let out: Vec<Value> = rows
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|(g, n)| {
                    let mut per: BTreeMap<String, usize> = BTreeMap::new();
                    for m in scope.members(&g).iter() {
                        *per.entry(m.node().to_string()).or_default() += 1;
                    }
                    json!({"group": g, "members": n, "per_node": per})
                })
                .collect();
            Ok(
                json!({"kind": "groups", "scope": scope_name, "total": total,
                      "offset": offset, "rows": out}),
            )
        }
        "members" => {
            let scope_name = arg(v, "scope")?;
            let group = arg(v, "group")?;
            if !crate::sessions::user_scopes(node)
                .iter()
                .any(|s| s.as_ref() == scope_name)
            {
                return Err(format!("scope {scope_name:?} does not run on this node"));
            }
            let (q, offset, limit) = page(v);
            let members = node.scope(&scope_name).members(&group);
            let matching = members
                .iter()
                .enumerate()
                .filter(|(_, m)| q.is_empty() || m.pid().to_string().to_lowercase().contains(&q));
            let mut total = 0;
            let mut out = Vec::new();
            for (i, m) in matching {
                if total >= offset && out.len() < limit {
                    out.push(
                        json!({"pid": m.pid().to_string(), "node": m.node().as_str(),
                                    "order": i + 1, "local": m.node() == node.name()}),
                    );
                }
                total += 1;
            }
            Ok(
                json!({"kind": "members", "scope": scope_name, "group": group,
                      "total": total, "offset": offset, "rows": out}),
            )
        }
        "names" => {
            let t = arg(v, "table")?;
            let table = node
                .names_table(&t)
                .ok_or_else(|| format!("no name table {t:?} on this node"))?;
            let (q, offset, limit) = page(v);
            let hub = a.hub.get_or_init(|| start_hub(a));
            let (total, names) = hub.names_page(&t, &q, offset, limit);
            let mode = a.tables.iter().find(|x| x.0 == t).map(|x| x.1.clone());
            let rows: Vec<Value> = names
                .into_iter()
                .filter_map(|n| {
                    let (pid, meta) = table.whereis_meta(&n)?;
                    Some(
                        json!({"name": n, "pid": pid.to_string(), "node": pid.node().as_str(),
                                "meta": String::from_utf8_lossy(&meta), "mode": mode}),
                    )
                })
                .collect();
            Ok(json!({"kind": "names", "table": t, "total": total, "offset": offset, "rows": rows}))
        }
        "block" | "unblock" | "disconnect" | "sync" | "unregister" if read_only => {
            Err("this dashboard is read-only (the node runs with --dashboard-read-only)".into())
        }
        "block" | "unblock" | "disconnect" => {
            let n = NodeName::new(&arg(v, "node")?).map_err(|e| e.to_string())?;
            if &n == node.name() {
                return Err(format!("{n} is this node"));
            }
            tracing::info!(target: "cohort::audit", client = %client, via = "dashboard",
                op, node = %n, "admin: dashboard action");
            let done = match op {
                "block" => {
                    node.block(&n).await;
                    lock(&a.blocked).insert(n.clone());
                    true
                }
                "unblock" => {
                    lock(&a.blocked).remove(&n);
                    node.unblock(&n).await
                }
                _ => node.disconnect(&n).await,
            };
            if let Some(h) = a.hub.get() {
                h.mark(n.as_str(), None);
                h.event(json!({"type": op, "node": n.as_str(), "by": "dashboard"}));
            }
            Ok(json!({"kind": "done", "op": op, "node": n.as_str(), "changed": done}))
        }
        "sync" => {
            tracing::info!(target: "cohort::audit", client = %client, via = "dashboard",
                op, "admin: dashboard action");
            node.global_group_sync().await;
            node.names().sync().await.map_err(|e| e.to_string())?;
            Ok(json!({"kind": "done", "op": op}))
        }
        "unregister" => {
            let t = arg(v, "table")?;
            let name = arg(v, "name")?;
            let table = node
                .names_table(&t)
                .ok_or_else(|| format!("no name table {t:?} on this node"))?;
            let holder = table
                .whereis(&name)
                .ok_or_else(|| format!("name {name:?} is not registered"))?;
            table.unregister(&name).await.map_err(|e| e.to_string())?;
            audit_unregister(Some(client), "dashboard", &name, &holder);
            Ok(json!({"kind": "done", "op": op, "table": t, "name": name,
                      "pid": holder.to_string()}))
        }
        "" => Err("missing \"op\"".into()),
        other => Err(format!("unknown op {other:?}")),
    }
}
