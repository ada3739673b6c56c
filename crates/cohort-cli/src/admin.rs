//! The admin and client API of a node daemon: HTTP with JSON (documented in
//! `openapi.yaml`), a WebSocket through which an external program attaches
//! as a process, and Prometheus metrics.
//!
//! Every answer is JSON; a refusal is a 4xx or 5xx with `{"error": "..."}`
//! naming the problem. Nothing a client sends can take the node down.
//!
//! Every request but `GET /healthz` carries `Authorization: Bearer TOKEN`
//! (see [`crate::token`]); its `Host` must name this API (DNS rebinding),
//! and a browser's `Origin`, when sent, must be this API's own (cross-site
//! requests and WebSockets). See [`guard`].
//!
//! Any process-group scope can be read (and joined) from any node: a scope
//! this node does not run yet is started on its first use and answers once
//! it has heard from every connected peer (see [`Scopes`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cohort::GlobalGroupsInfo;
use cohort::{ExitReason, Message, Node, NodeName, PgEventKind, Pid, Where};
use cohort::{NameEvent, NamesError, UnregisterReason};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

pub(crate) mod state;

use self::state::{audit_unregister, bad};
use self::state::{Admin, ApiError, Scopes};
use crate::config::{check_name, AdminConfig, ScopeLimits};
pub use crate::listen::bind;
use crate::listen::{Client, Limits, Listener};
use crate::outbox::Outbox;
use crate::sync::lock;

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Parses `node:NAME` or `group:NAME`.
pub fn parse_where(s: &str) -> Result<Where, String> {
    match s.split_once(':') {
        Some(("node", n)) => NodeName::new(n).map(Where::Node).map_err(|e| e.to_string()),
        Some(("group", g)) if !g.is_empty() => Ok(Where::Group(g.to_string())),
        _ => Err(format!("bad where {s:?}: expected node:NAME or group:NAME")),
    }
}

#[derive(Deserialize)]
struct WhereQuery {
    #[serde(rename = "where")]
    at: Option<String>,
}

impl WhereQuery {
    fn parsed(&self) -> Result<Option<Where>, ApiError> {
        self.at.as_deref().map(parse_where).transpose().map_err(bad)
    }
}

#[derive(Deserialize)]
struct MembersQuery {
    filter: Option<String>,
}

#[derive(Deserialize)]
struct NodesQuery {
    hidden: Option<bool>,
}

#[derive(Deserialize)]
struct SendBody {
    name: String,
    message: String,
    #[serde(rename = "where")]
    at: Option<String>,
}

#[derive(Deserialize)]
struct NodeBody {
    node: String,
}

#[derive(Deserialize)]
struct ConnectBody {
    addr: String,
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| bad(e.body_text()))
}

fn info_json(node: &Node, info: GlobalGroupsInfo, monitors: usize) -> Value {
    json!({
        "node": node.name().as_str(),
        "creation": node.creation(),
        "state": info.state,
        "own_group_name": info.own_group_name,
        "own_group_nodes": info.own_group_nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "synced_nodes": info.synced_nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "sync_error": info.sync_error.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "no_contact": info.no_contact.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "other_groups": info.other_groups.iter().map(|g| json!({
            "name": g.name,
            "publish": g.publish.to_string(),
            "nodes": g.nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "monitors": monitors,
        "unreached": node.unreached().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "redialing": node.redialing().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "discovery": node.discovery().iter().map(discovery_json).collect::<Vec<_>>(),
    })
}

/// Milliseconds since the Unix epoch.
fn epoch_ms(t: Option<std::time::SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// One discovery strategy in `/info`.
fn discovery_json(s: &cohort::discovery::StrategyStatus) -> Value {
    json!({
        "strategy": s.strategy,
        "resolver": s.resolver.map(|r| r.to_string()),
        "last_lookup_ms": epoch_ms(s.last_lookup),
        "last_ok_ms": epoch_ms(s.last_ok),
        "last_result": s.last_result,
        "last_error": s.last_error,
        "lookups": s.lookups,
        "errors": s.errors,
        "forgotten": s.forgotten,
        "discovered": s.discovered.iter().map(|d| json!({
            "addr": d.addr,
            "node": d.node.as_ref().map(|n| n.as_str()),
            "connected": d.connected,
            "listed": d.listed,
            "error": d.error,
        })).collect::<Vec<_>>(),
    })
}

/// The Erlang side of the node: `null` without an endpoint.
fn erlang_json(b: Option<&cohort_erl::Bridge>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => {
            let mut nodes = b.nodes();
            nodes.sort();
            json!({
                "node": b.name(),
                "port": b.port(),
                "connected": nodes,
                "scopes": b.scopes(),
            })
        }
    }
}

async fn info(State(a): State<Admin>) -> ApiResult {
    let node = &a.node;
    let mut v = info_json(node, node.global_group_info(), node.global_group_monitors());
    v["erlang"] = erlang_json(a.erlang.as_deref());
    Ok(Json(v))
}

async fn nodes(State(a): State<Admin>, Query(q): Query<NodesQuery>) -> ApiResult {
    let mut v = a.node.nodes();
    if q.hidden.unwrap_or(false) {
        v.extend(a.node.nodes_hidden());
        v.sort();
    }
    Ok(Json(
        json!({ "nodes": v.iter().map(|n| n.as_str()).collect::<Vec<_>>() }),
    ))
}

async fn names(State(a): State<Admin>, Query(q): Query<WhereQuery>) -> ApiResult {
    let names = match q.parsed()? {
        Some(at) => a.node.registered_names_at(&at).await,
        None => {
            let mut v = a.node.names().registered_names();
            v.sort();
            v
        }
    };
    Ok(Json(json!({ "names": names })))
}

async fn whereis(
    State(a): State<Admin>,
    Path(name): Path<String>,
    Query(q): Query<WhereQuery>,
) -> ApiResult {
    check_name("name", &name).map_err(bad)?;
    let at = q.parsed()?;
    let pid = a.node.whereis_at(at.as_ref(), &name).await;
    Ok(Json(
        json!({ "name": name, "pid": pid.map(|p| p.to_string()) }),
    ))
}

async fn members(
    State(a): State<Admin>,
    Path((scope, group)): Path<(String, String)>,
    Query(q): Query<MembersQuery>,
) -> ApiResult {
    check_name("group", &group).map_err(bad)?;
    let filter = match q.filter.as_deref() {
        None | Some("local") | Some("remote") => q.filter.as_deref(),
        Some(other) => {
            return Err(bad(format!(
                "bad filter {other:?}: expected local or remote"
            )))
        }
    };
    let s = a.scope(&scope).await?;
    let pids: Vec<Pid> = match filter {
        Some("local") => s.local_members(&group),
        Some("remote") => s.remote_members(&group),
        _ => s.members(&group).to_vec(),
    };
    let mut v = json!({ "members": pids.iter().map(|p| p.to_string()).collect::<Vec<_>>() });
    // Members that stand for BEAM processes (proxies of this node's
    // Erlang endpoint): the BEAM pid each stands for.
    if let Some(b) = &a.erlang {
        let beam: serde_json::Map<String, Value> = pids
            .iter()
            .filter_map(|p| {
                b.beam_pid(p)
                    .map(|e| (p.to_string(), json!(cohort_erl::pid_text(&e))))
            })
            .collect();
        if !beam.is_empty() {
            v["beam"] = Value::Object(beam);
        }
    }
    Ok(Json(v))
}

async fn groups(State(a): State<Admin>, Path(scope): Path<String>) -> ApiResult {
    let g = a.scope(&scope).await?.which_groups();
    Ok(Json(
        json!({ "groups": g.iter().map(|g| g.as_ref()).collect::<Vec<_>>() }),
    ))
}

async fn scopes(State(a): State<Admin>) -> ApiResult {
    let started = lock(&a.scopes.started);
    let list: Vec<Value> = crate::sessions::user_scopes(&a.node)
        .iter()
        .map(|s| {
            let scope = a.node.scope(s);
            json!({
                "name": s.as_ref(),
                "groups": scope.which_groups().len(),
                "members": scope.membership_count(),
                "started_by_admin": started.contains_key(s.as_ref()),
            })
        })
        .collect();
    Ok(Json(json!({ "scopes": list })))
}

async fn send(State(a): State<Admin>, b: Result<Json<SendBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    check_name("name", &b.name).map_err(bad)?;
    let at = b.at.as_deref().map(parse_where).transpose().map_err(bad)?;
    match a
        .node
        .send_at(at.as_ref(), &b.name, b.message.into_bytes())
        .await
    {
        Some(pid) => Ok(Json(json!({ "name": b.name, "pid": pid.to_string() }))),
        None => Err(not_found(format!("name {:?} is not registered", b.name))),
    }
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn unregister(
    State(a): State<Admin>,
    client: Option<Extension<Client>>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    check_name("name", &b.name).map_err(bad)?;
    let table = a.node.names();
    let Some(pid) = table.whereis(&b.name) else {
        return Err(not_found(format!("name {:?} is not registered", b.name)));
    };
    match table.unregister(&b.name).await {
        Ok(()) => {
            audit_unregister(client.as_deref(), "http", &b.name, &pid);
            Ok(Json(json!({ "name": b.name, "pid": pid.to_string() })))
        }
        Err(e) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
    }
}

async fn sync(State(a): State<Admin>) -> ApiResult {
    a.node.global_group_sync().await;
    a.node
        .names()
        .sync()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "ok": true })))
}

async fn tls_reload(State(a): State<Admin>) -> ApiResult {
    use cohort::transport::tls::TlsError;
    match crate::tls::reload_tls(&a.node, "POST /tls/reload") {
        Ok(()) => Ok(Json(json!({ "ok": true }))),
        Err(e @ TlsError::NotEnabled) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("TLS reload failed; the old certificate stays in use: {e}"),
        )),
    }
}

fn node_arg(b: Result<Json<NodeBody>, JsonRejection>) -> Result<NodeName, ApiError> {
    let b = body(b)?;
    NodeName::new(&b.node).map_err(|e| bad(e.to_string()))
}

async fn block(State(a): State<Admin>, b: Result<Json<NodeBody>, JsonRejection>) -> ApiResult {
    let n = node_arg(b)?;
    a.node.block(&n).await;
    lock(&a.blocked).insert(n);
    Ok(Json(json!({ "ok": true })))
}

async fn unblock(State(a): State<Admin>, b: Result<Json<NodeBody>, JsonRejection>) -> ApiResult {
    let n = node_arg(b)?;
    lock(&a.blocked).remove(&n);
    let was = a.node.unblock(&n).await;
    Ok(Json(json!({ "ok": true, "was_blocked": was })))
}

async fn connect(State(a): State<Admin>, b: Result<Json<ConnectBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    match a.node.connect(&b.addr).await {
        Ok(n) => Ok(Json(json!({ "node": n.as_str() }))),
        Err(e) => {
            // The caller learns only that it failed: telling a refused port
            // from an open one that is not a cohort node would make this a
            // port scanner. The operator finds the class in the log.
            let class = match &e {
                cohort::ConnectError::Io(m) if m.contains("refused") => "refused",
                cohort::ConnectError::Io(m) if m.contains("timed out") => "timed out",
                cohort::ConnectError::Io(_) => "unreachable",
                cohort::ConnectError::Timeout => "timed out",
                cohort::ConnectError::Refused(_) => "refused by a cohort node",
                cohort::ConnectError::Closed(_) => "not a cohort node",
                cohort::ConnectError::ShuttingDown => "shutting down",
                cohort::ConnectError::Version { .. } => "refused by a cohort node",
                _ => "unreachable",
            };
            tracing::warn!(addr = %b.addr, class, error = %e, "admin /connect: could not connect");
            Err(ApiError(
                StatusCode::BAD_GATEWAY,
                format!(
                    "could not connect to {:?} (the reason is in the node's log)",
                    b.addr
                ),
            ))
        }
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn metrics(State(a): State<Admin>) -> impl IntoResponse {
    let n = &a.node;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    metric(
        "cohort_nodes",
        "Connected nodes.",
        "gauge",
        vec![
            ("{kind=\"visible\"}".into(), n.nodes().len() as u64),
            ("{kind=\"hidden\"}".into(), n.nodes_hidden().len() as u64),
        ],
    );
    metric(
        "cohort_runtime_workers",
        "Worker threads of the node's runtime (`threads` in the config, --threads).",
        "gauge",
        vec![(
            String::new(),
            tokio::runtime::Handle::current().metrics().num_workers() as u64,
        )],
    );
    metric(
        "cohort_unreached_nodes",
        "Nodes of the name tables that peers have a session with and this node has not (a partial mesh; 0 in a full mesh).",
        "gauge",
        vec![(String::new(), n.unreached().len() as u64)],
    );
    metric(
        "cohort_names",
        "Names registered in the default table, as seen here.",
        "gauge",
        vec![(String::new(), n.names().registered_names().len() as u64)],
    );
    let mut groups = Vec::new();
    let mut members = Vec::new();
    for s in crate::sessions::user_scopes(n) {
        let scope = n.scope(&s);
        let gs = scope.which_groups();
        let m: usize = gs.iter().map(|g| scope.members(g).len()).sum();
        groups.push((format!("{{scope={s:?}}}"), gs.len() as u64));
        members.push((format!("{{scope={s:?}}}"), m as u64));
    }
    metric(
        "cohort_pg_groups",
        "Process groups per scope.",
        "gauge",
        groups,
    );
    metric(
        "cohort_pg_members",
        "Memberships per scope (local and remote).",
        "gauge",
        members,
    );
    let st = n.stats();
    metric(
        "cohort_frames_total",
        "Frames exchanged with peers.",
        "counter",
        vec![
            ("{dir=\"in\"}".into(), st.frames_in),
            ("{dir=\"out\"}".into(), st.frames_out),
        ],
    );
    metric(
        "cohort_bytes_total",
        "Frame bytes exchanged with peers.",
        "counter",
        vec![
            ("{dir=\"in\"}".into(), st.bytes_in),
            ("{dir=\"out\"}".into(), st.bytes_out),
        ],
    );
    metric(
        "cohort_sync_lag",
        "Process-group stream positions this node is behind its peers' advertised heads.",
        "gauge",
        vec![(String::new(), st.pg_lag)],
    );
    let peers = n.peers();
    let per = |f: &dyn Fn(&cohort::PeerStats) -> (u64, u64)| -> Vec<(String, u64)> {
        peers
            .iter()
            .flat_map(|p| {
                let (i, o) = f(p);
                let peer = p.node.as_str();
                [
                    (format!("{{peer={peer:?},dir=\"in\"}}"), i),
                    (format!("{{peer={peer:?},dir=\"out\"}}"), o),
                ]
            })
            .collect()
    };
    metric(
        "cohort_peer_frames_total",
        "Frames exchanged with each up peer over its current session (from 0 when a session starts).",
        "counter",
        per(&|p| (p.frames_in, p.frames_out)),
    );
    metric(
        "cohort_peer_bytes_total",
        "Frame bytes exchanged with each up peer over its current session (from 0 when a session starts).",
        "counter",
        per(&|p| (p.bytes_in, p.bytes_out)),
    );
    metric(
        "cohort_peer_sync_lag",
        "Process-group stream positions this node is behind each up peer's advertised heads.",
        "gauge",
        peers
            .iter()
            .map(|p| (format!("{{peer={:?}}}", p.node.as_str()), p.sync_lag))
            .collect(),
    );
    metric(
        "cohort_handshakes_total",
        "Cluster-port handshakes that did not end in a session, by outcome.",
        "counter",
        vec![
            ("{outcome=\"timeout\"}".into(), st.handshake_timeouts),
            (
                "{outcome=\"refused_busy\"}".into(),
                st.handshakes_refused_busy,
            ),
            (
                "{outcome=\"refused_alive\"}".into(),
                st.handshakes_refused_alive,
            ),
        ],
    );
    metric(
        "cohort_sessions_replaced_total",
        "Sessions replaced by a newer creation of the same node.",
        "counter",
        vec![(String::new(), st.sessions_replaced)],
    );
    metric(
        "cohort_sessions_total",
        "Sessions with other nodes that came up and that went down (node-down events) since the node started.",
        "counter",
        vec![
            ("{event=\"up\"}".into(), st.sessions_up),
            ("{event=\"down\"}".into(), st.sessions_down),
        ],
    );
    metric(
        "cohort_attached_processes",
        "Processes attached over the WebSocket API.",
        "gauge",
        vec![(String::new(), a.attached.load(Ordering::Relaxed))],
    );
    let disc = n.discovery();
    let per = |f: &dyn Fn(&cohort::discovery::StrategyStatus) -> u64| {
        disc.iter()
            .map(|s| (format!("{{strategy={:?}}}", s.strategy), f(s)))
            .collect::<Vec<_>>()
    };
    metric(
        "cohort_discovery_lookups_total",
        "Lookups done by each discovery strategy.",
        "counter",
        per(&|s| s.lookups),
    );
    metric(
        "cohort_discovery_errors_total",
        "Lookups of each discovery strategy that failed (an empty answer is not an error).",
        "counter",
        per(&|s| s.errors),
    );
    metric(
        "cohort_discovery_nodes",
        "Nodes each discovery strategy found that are connected.",
        "gauge",
        per(&|s| s.discovered.iter().filter(|d| d.connected).count() as u64),
    );
    metric(
        "cohort_discovery_addresses",
        "Addresses listed by each discovery strategy's last successful lookup.",
        "gauge",
        per(&|s| s.last_result.len() as u64),
    );
    metric(
        "cohort_discovery_forgotten_total",
        "Nodes each discovery strategy forgot (gone from its results and unreachable).",
        "counter",
        per(&|s| s.forgotten),
    );
    metric(
        "cohort_admin_requests_total",
        "Admin API requests served.",
        "counter",
        vec![(String::new(), a.requests.load(Ordering::Relaxed))],
    );
    ([("content-type", "text/plain; version=0.0.4")], out)
}

async fn attach(
    State(a): State<Admin>,
    client: Option<Extension<Client>>,
    ws: WebSocketUpgrade,
) -> Response {
    let client = Client::of(client);
    ws.on_upgrade(move |socket| attached(a, socket, client))
}

fn pid_arg(v: &Value, key: &str) -> Option<Result<Pid, String>> {
    v.get(key)?
        .as_str()
        .map(|s| s.parse::<Pid>().map_err(|e| e.to_string()))
}

/// What an attached process is told about its process's own message. A
/// message from a BEAM process (sent by the Erlang endpoint) also carries
/// the term in Erlang's text syntax, `erlang`.
fn message_event(m: Message, erlang: Option<&cohort_erl::Bridge>) -> (Vec<Value>, bool) {
    match m {
        Message::Data { from, payload } => {
            let mut v = json!({
                "event": "message",
                "from": from.as_ref().map(|p| p.to_string()),
                "message": String::from_utf8_lossy(&payload),
            });
            if let (Some(b), Some(f)) = (erlang, &from) {
                if f == b.from_beam() {
                    v["erlang"] = match cohort_erl::decode_term(&payload) {
                        Ok(t) => json!(cohort_erl::erlang_text(&t)),
                        Err(e) => json!(format!("(undecodable term: {e})")),
                    };
                }
            }
            (vec![v], false)
        }
        Message::NameConflict {
            table,
            name,
            winner,
        } => (
            vec![json!({
                "event": "conflict", "table": table, "name": name,
                "winner": winner.map(|p| p.to_string()), "killed": false,
            })],
            false,
        ),
        Message::Exit { reason } => {
            let mut evs = Vec::new();
            if let ExitReason::Killed(why) = &reason {
                if let Some(name) = why.strip_prefix("name conflict: ") {
                    evs.push(json!({"event": "conflict", "name": name, "killed": true}));
                }
            }
            evs.push(json!({"event": "exit", "reason": reason.to_string()}));
            (evs, true)
        }
        Message::Down { mref, pid, reason } => (
            vec![json!({
                "event": "down", "ref": mref.0, "pid": pid.to_string(), "reason": reason.to_string(),
            })],
            false,
        ),
        other => {
            tracing::warn!(message = ?other, "a process message the admin API does not know; not forwarded");
            (Vec::new(), false)
        }
    }
}

/// One attached process.
struct Session {
    admin: Admin,
    pid: Pid,
    /// The connection it is attached through (for the audit log).
    client: Client,
    /// Events from group monitors and from the name service.
    events: mpsc::UnboundedSender<Value>,
    /// Group monitors: (scope, group) → the task forwarding its events.
    monitors: HashMap<(String, String), tokio::task::JoinHandle<()>>,
    /// Names this process is unregistering itself: their loss is the
    /// answer to its own command, not news.
    unregistering: HashSet<String>,
}

/// One attached process: commands in, events out, until either side
/// closes or the client stops reading.
async fn attached(a: Admin, socket: WebSocket, client: Client) {
    a.attached.fetch_add(1, Ordering::Relaxed);
    // Before the process can hold a name: from here on, its losses are seen.
    a.holders_watch
        .get_or_init(|| tokio::spawn(tell_holders(a.clone())));
    let (sink, mut incoming) = socket.split();
    let (outbox, writer) = Outbox::start(sink, a.ws_queue_bytes, client.clone());
    let mut proc_ = a.node.spawn();
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let mut session = Session {
        admin: a.clone(),
        pid: proc_.pid().clone(),
        client,
        events: events.clone(),
        monitors: HashMap::new(),
        unregistering: HashSet::new(),
    };
    lock(&a.holders).insert(session.pid.clone(), events);
    let ready = json!({"event": "ready", "pid": session.pid.to_string()});
    if outbox.push(ready) {
        loop {
            let (out, last) = tokio::select! {
                msg = incoming.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    let t = match msg {
                        WsMessage::Text(t) => t.to_string(),
                        WsMessage::Close(_) => break,
                        _ => continue,
                    };
                    (vec![session.command(&t).await], false)
                }
                m = proc_.recv() => {
                    let Some(m) = m else { break };
                    message_event(m, a.erlang.as_deref())
                }
                Some(ev) = event_rx.recv() => {
                    if ev["event"] == "name_lost" {
                        let name = ev["name"].as_str().unwrap_or_default();
                        if session.unregistering.remove(name) {
                            continue;
                        }
                    }
                    (vec![ev], false)
                }
            };
            if !out.into_iter().all(|v| outbox.push(v)) || last {
                break;
            }
        }
    }
    // Closing the connection ends the process: its names and memberships go.
    lock(&a.holders).remove(&session.pid);
    for ((scope, _), task) in session.monitors.drain() {
        task.abort();
        a.scopes.watch(&scope, false);
    }
    drop(proc_);
    drop(outbox);
    a.attached.fetch_sub(1, Ordering::Relaxed);
    let _ = writer.await;
}

impl Session {
    /// Runs one attach command and returns the reply.
    async fn command(&mut self, text: &str) -> Value {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return json!({"event": "error", "error": format!("bad JSON: {e}")}),
        };
        let op = v
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match self.run(&op, &v).await {
            Ok(reply) => reply,
            Err(e) => {
                let mut r = json!({"event": "error", "op": op, "error": e});
                if let Some(name) = v.get("name").and_then(Value::as_str) {
                    r["name"] = json!(name);
                }
                r
            }
        }
    }

    async fn run(&mut self, op: &str, v: &Value) -> Result<Value, String> {
        let arg = |k: &str| -> Result<String, String> {
            let s = v
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("missing \"{k}\""))?;
            check_name(k, s)?;
            Ok(s.to_string())
        };
        let node = &self.admin.node;
        match op {
            "register" => {
                let name = arg("name")?;
                match node.names().register(name.clone(), &self.pid).await {
                    Ok(()) => Ok(json!({"event": "registered", "name": name})),
                    Err(e) => Ok(json!({"event": "error", "op": op, "name": name,
                                        "error": e.to_string(),
                                        "taken": matches!(e, NamesError::Taken)})),
                }
            }
            "unregister" => {
                let name = arg("name")?;
                let holder = node.names().whereis(&name);
                self.unregistering.insert(name.clone());
                match node.names().unregister(&name).await {
                    Ok(()) => {
                        if let Some(h) = holder.filter(|h| *h != self.pid) {
                            audit_unregister(Some(&self.client), "attach", &name, &h);
                        }
                        Ok(json!({"event": "unregistered", "name": name}))
                    }
                    Err(e) => {
                        self.unregistering.remove(&name);
                        Err(e.to_string())
                    }
                }
            }
            "join" | "leave" => {
                let (scope, group) = (arg("scope")?, arg("group")?);
                let s = self.admin.scope(&scope).await.map_err(|e| e.1)?;
                let (r, event) = if op == "join" {
                    (s.join(&group, &self.pid), "joined")
                } else {
                    (s.leave(&group, &self.pid), "left")
                };
                r.map_err(|e| e.to_string())?;
                Ok(json!({"event": event, "scope": scope, "group": group}))
            }
            "monitor" => {
                let (scope, group) = (arg("scope")?, arg("group")?);
                let key = (scope.clone(), group.clone());
                if self.monitors.contains_key(&key) {
                    return Err(format!("already monitoring {scope}/{group}"));
                }
                let s = self.admin.scope(&scope).await.map_err(|e| e.1)?;
                let (mut mon, members) = s.monitor(&group).map_err(|e| e.to_string())?;
                self.admin.scopes.watch(&scope, true);
                let tx = self.events.clone();
                let (scope_name, group_name) = (scope.clone(), group.clone());
                let task = tokio::spawn(async move {
                    while let Some(ev) = mon.recv().await {
                        let ev = match ev {
                            Ok(ev) => ev,
                            Err(cohort::Lagged(missed)) => {
                                // The client learns it missed changes and
                                // may read the members again.
                                let v = json!({
                                    "event": "pg_lagged", "scope": scope_name, "group": group_name,
                                    "missed": missed,
                                });
                                if tx.send(v).is_err() {
                                    break;
                                }
                                continue;
                            }
                        };
                        let kind = match ev.kind {
                            PgEventKind::Join => "join",
                            PgEventKind::Leave => "leave",
                            PgEventKind::Meta => "meta",
                            _ => continue,
                        };
                        let v = json!({
                            "event": "pg", "scope": ev.scope.as_ref(), "group": ev.group.as_ref(),
                            "kind": kind,
                            "pids": ev.pids.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        });
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                });
                self.monitors.insert(key, task);
                Ok(json!({
                    "event": "monitoring", "scope": scope, "group": group,
                    "members": members.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }))
            }
            "demonitor" => {
                let (scope, group) = (arg("scope")?, arg("group")?);
                let task = self
                    .monitors
                    .remove(&(scope.clone(), group.clone()))
                    .ok_or_else(|| format!("not monitoring {scope}/{group}"))?;
                task.abort();
                self.admin.scopes.watch(&scope, false);
                Ok(json!({"event": "demonitored", "scope": scope, "group": group}))
            }
            "send" => {
                let message = v
                    .get("message")
                    .and_then(Value::as_str)
                    .ok_or("missing \"message\"")?
                    .to_string();
                if let Some(to) = pid_arg(v, "to") {
                    let p = to?;
                    node.send(&p, message.into_bytes());
                    return Ok(json!({"event": "sent", "pid": p.to_string()}));
                }
                if v.get("name").is_none() {
                    return Err("missing \"to\" or \"name\"".into());
                }
                let name = arg("name")?;
                match node.whereis_at(None, &name).await {
                    Some(p) => {
                        node.send(&p, message.into_bytes());
                        Ok(json!({"event": "sent", "pid": p.to_string()}))
                    }
                    None => Err(format!("name {name:?} is not registered")),
                }
            }
            "" => Err("missing \"op\"".into()),
            other => Err(format!("unknown op {other:?}")),
        }
    }
}

/// Tells attached processes when a name they hold goes for any reason but
/// their own exit or a clash (those arrive as the process's own messages).
async fn tell_holders(a: Admin) {
    let table = a.node.names();
    let mut events = table.subscribe();
    while let Some(ev) = events.recv().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(lagged) => {
                tracing::error!("names events for attached processes: {lagged}; holders of names lost meanwhile are not told");
                continue;
            }
        };
        let NameEvent::Unregistered { name, pid, reason } = ev else {
            continue;
        };
        let why = match reason {
            UnregisterReason::Unregistered => "unregister",
            UnregisterReason::Replaced => "re_register",
            UnregisterReason::NodeDown => "nodedown",
            _ => continue,
        };
        if let Some(tx) = lock(&a.holders).get(&pid) {
            let _ = tx.send(json!({
                "event": "name_lost", "table": table.name(), "name": name, "reason": why,
            }));
        }
    }
}

/// Makes every error answer JSON: axum's own refusals (unknown route,
/// wrong method, a query or path that does not decode) come as plain text
/// or with no body at all.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let msg = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "method not allowed for this endpoint; see openapi.yaml".into()
    } else {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    };
    // The refusal's own headers (`Allow` on a 405) stay.
    let mut out = ApiError(status, msg).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// What the admin API lets in: the token, the `Host` names that are its
/// own, and the origins of those.
pub struct Guard {
    token: String,
    /// Lowercase `Host` values accepted.
    hosts: Vec<String>,
    /// `Origin` values accepted (`http[s]://HOST`).
    origins: Vec<String>,
    metrics_open: bool,
}

impl Guard {
    /// The guard of an API bound as `listener`, with extra host names
    /// (`NAME` or `NAME:PORT`; a bare name is accepted with the port).
    pub fn new(token: String, listener: &Listener, extra: &[String], metrics_open: bool) -> Self {
        let mut hosts = Vec::new();
        match listener.tcp_addr() {
            Some(addr) => {
                let port = addr.port();
                hosts.push(addr.to_string());
                hosts.push(format!("localhost:{port}"));
                if addr.ip().is_unspecified() {
                    hosts.push(format!("127.0.0.1:{port}"));
                    hosts.push(format!("[::1]:{port}"));
                }
                for h in extra {
                    if h.rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                        && !h.ends_with(']')
                    {
                        hosts.push(h.clone());
                    } else {
                        hosts.push(format!("{h}:{port}"));
                    }
                }
            }
            None => {
                // A Unix socket: clients name it `localhost`.
                hosts.push("localhost".into());
                hosts.extend(extra.iter().cloned());
            }
        }
        let scheme = if listener.is_tls() { "https" } else { "http" };
        let origins = hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
        Guard {
            token,
            hosts,
            origins,
            metrics_open,
        }
    }

    fn token_ok(&self, req: &axum::extract::Request) -> bool {
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        bool::from(given.trim().as_bytes().ct_eq(self.token.as_bytes()))
    }
}

/// Refuses, before anything else runs: a `Host` that is not this API's
/// (421: DNS rebinding), an `Origin` that is not this API's own (403: a
/// web page's request or WebSocket; no `Origin` is a program, allowed),
/// and a missing or wrong token (401). `GET /healthz` needs no token;
/// `/metrics` none with `--metrics-open`; the dashboard's page none (its
/// socket checks the token itself, see [`crate::dashboard`]). No CORS header is ever sent.
pub async fn guard(
    State(g): State<Arc<Guard>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    match host {
        Some(h) if g.hosts.contains(&h) => {}
        Some(h) => {
            return ApiError(
                StatusCode::MISDIRECTED_REQUEST,
                format!("Host {h:?} is not this admin API's (a node accepts other names given with --admin-host)"),
            )
            .into_response()
        }
        None => {
            return ApiError(
                StatusCode::MISDIRECTED_REQUEST,
                "the request has no Host header".into(),
            )
            .into_response()
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let own = origin
            .to_str()
            .is_ok_and(|o| g.origins.iter().any(|x| x.eq_ignore_ascii_case(o)));
        if !own {
            return ApiError(
                StatusCode::FORBIDDEN,
                "cross-origin requests are refused (the Origin is not this admin API)".into(),
            )
            .into_response();
        }
    }
    let path = req.uri().path();
    let open = (path == "/healthz" && req.method() == axum::http::Method::GET)
        || (path == "/metrics" && g.metrics_open)
        || crate::dashboard::is_open(req.method(), path);
    if !open && !g.token_ok(&req) {
        let mut resp = ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer TOKEN (the node's COHORT_ADMIN_TOKEN, --admin-token-file or ~/.cohort.admin-token)".into(),
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    next.run(req).await
}

/// Serves the admin API on `listener` until the node stops, with the
/// bench-only `/bench/` endpoints when `bench_api` is set (hidden
/// `cohort node --bench-api`). `configured` are the scopes the node runs
/// by configuration (never stopped for being idle); `token` is what every
/// request must carry; `erlang` is the node's Erlang endpoint, if any.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    node: Node,
    listener: Listener,
    cfg: &AdminConfig,
    token: String,
    bench_api: bool,
    limits: ScopeLimits,
    configured: Vec<String>,
    erlang: Option<Arc<cohort_erl::Bridge>>,
) -> tokio::task::JoinHandle<()> {
    let bench = bench_api.then(|| crate::bench::api::router(node.clone()));
    let mut configured = configured;
    configured.push(cohort::DEFAULT_SCOPE.to_string());
    let state = Admin {
        node,
        attached: Arc::new(AtomicU64::new(0)),
        requests: Arc::new(AtomicU64::new(0)),
        scopes: Arc::new(Scopes::new(limits, configured)),
        holders: Arc::new(Mutex::new(HashMap::new())),
        holders_watch: Arc::new(std::sync::OnceLock::new()),
        ws_queue_bytes: cfg.ws_queue_bytes,
        erlang,
        token: Arc::from(token.as_str()),
        blocked: Arc::new(Mutex::new(BTreeSet::new())),
        hub: Arc::new(std::sync::OnceLock::new()),
        dashboard_read_only: cfg.dashboard_read_only,
        tables: cfg.name_tables.clone().into(),
    };
    let guard_state = Arc::new(Guard::new(token, &listener, &cfg.hosts, cfg.metrics_open));
    let counter = state.requests.clone();
    let mut app = Router::new();
    if let Some(b) = bench {
        app = app.merge(b);
    }
    let app = app
        .route("/healthz", get(healthz))
        .route("/info", get(info))
        .route("/nodes", get(nodes))
        .route("/names", get(names))
        .route("/whereis/{name}", get(whereis))
        .route("/scopes", get(scopes))
        .route("/members/{scope}/{group}", get(members))
        .route("/groups/{scope}", get(groups))
        .route("/send", post(send))
        .route("/unregister", post(unregister))
        .route("/sync", post(sync))
        .route("/block", post(block))
        .route("/unblock", post(unblock))
        .route("/connect", post(connect))
        .route("/tls/reload", post(tls_reload))
        .route("/metrics", get(metrics))
        .route("/attach", get(attach))
        .route("/", get(crate::dashboard::index))
        .route("/assets/{file}", get(crate::dashboard::assets))
        .route("/dashboard/ws", get(crate::dashboard::socket))
        .fallback(|| async { not_found("no such endpoint; see openapi.yaml") })
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(guard_state, guard))
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::Relaxed);
                async move { next.run(req).await }
            },
        ))
        .with_state(state.clone());
    let gc = state.clone();
    tokio::spawn(async move {
        let every = (gc.scopes.limits.idle / 4).max(Duration::from_millis(20));
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            gc.scopes.collect_idle(&gc.node);
        }
    });
    let conn_limits = Limits {
        max_connections: cfg.max_connections,
        header_timeout: cfg.header_timeout,
        idle_timeout: cfg.idle_timeout,
    };
    tokio::spawn(crate::listen::serve(listener, app, conn_limits))
}
