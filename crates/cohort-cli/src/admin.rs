//! The admin and client API of a node daemon: HTTP with JSON (documented in
//! `openapi.yaml`), a WebSocket through which an external program attaches
//! as a process, and Prometheus metrics.
//!
//! Bad requests get a 4xx with `{"error": "..."}`; nothing a client sends
//! can take the node down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cohort::core::groups::GroupsInfo;
use cohort::{ExitReason, Message, Node, NodeName, Pid, Where};
use serde::Deserialize;
use serde_json::{json, Value};

/// Shared state of the admin server.
#[derive(Clone)]
pub struct Admin {
    node: Node,
    attached: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

/// An error answer: status and message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

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

fn info_json(node: &Node, info: GroupsInfo, monitors: usize) -> Value {
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
    })
}

async fn info(State(a): State<Admin>) -> ApiResult {
    let node = &a.node;
    Ok(Json(info_json(
        node,
        node.global_group_info(),
        node.global_group_monitors(),
    )))
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
    if !a.node.scopes().iter().any(|s| s.as_ref() == scope) {
        return Err(not_found(format!(
            "scope {scope:?} is not running on this node"
        )));
    }
    let s = a.node.scope(&scope);
    let pids: Vec<Pid> = match q.filter.as_deref() {
        None => s.members(&group).to_vec(),
        Some("local") => s.local_members(&group),
        Some("remote") => s.remote_members(&group),
        Some(other) => {
            return Err(bad(format!(
                "bad filter {other:?}: expected local or remote"
            )))
        }
    };
    Ok(Json(
        json!({ "members": pids.iter().map(|p| p.to_string()).collect::<Vec<_>>() }),
    ))
}

async fn groups(State(a): State<Admin>, Path(scope): Path<String>) -> ApiResult {
    if !a.node.scopes().iter().any(|s| s.as_ref() == scope) {
        return Err(not_found(format!(
            "scope {scope:?} is not running on this node"
        )));
    }
    let g = a.node.scope(&scope).which_groups();
    Ok(Json(
        json!({ "groups": g.iter().map(|g| g.as_ref()).collect::<Vec<_>>() }),
    ))
}

async fn send(State(a): State<Admin>, b: Result<Json<SendBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
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

async fn sync(State(a): State<Admin>) -> ApiResult {
    a.node.global_group_sync().await;
    a.node
        .names()
        .sync()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "ok": true })))
}

fn node_arg(b: Result<Json<NodeBody>, JsonRejection>) -> Result<NodeName, ApiError> {
    let b = body(b)?;
    NodeName::new(&b.node).map_err(|e| bad(e.to_string()))
}

async fn block(State(a): State<Admin>, b: Result<Json<NodeBody>, JsonRejection>) -> ApiResult {
    let n = node_arg(b)?;
    a.node.block(&n).await;
    Ok(Json(json!({ "ok": true })))
}

async fn unblock(State(a): State<Admin>, b: Result<Json<NodeBody>, JsonRejection>) -> ApiResult {
    let n = node_arg(b)?;
    let was = a.node.unblock(&n).await;
    Ok(Json(json!({ "ok": true, "was_blocked": was })))
}

async fn connect(State(a): State<Admin>, b: Result<Json<ConnectBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    match a.node.connect(&b.addr).await {
        Ok(n) => Ok(Json(json!({ "node": n.as_str() }))),
        Err(e) => Err(ApiError(StatusCode::BAD_GATEWAY, e.to_string())),
    }
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
        "cohort_names",
        "Names registered in the default table, as seen here.",
        "gauge",
        vec![(String::new(), n.names().registered_names().len() as u64)],
    );
    let mut groups = Vec::new();
    let mut members = Vec::new();
    for s in n.scopes() {
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
    metric(
        "cohort_attached_processes",
        "Processes attached over the WebSocket API.",
        "gauge",
        vec![(String::new(), a.attached.load(Ordering::Relaxed))],
    );
    metric(
        "cohort_admin_requests_total",
        "Admin API requests served.",
        "counter",
        vec![(String::new(), a.requests.load(Ordering::Relaxed))],
    );
    ([("content-type", "text/plain; version=0.0.4")], out)
}

async fn attach(State(a): State<Admin>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| attached(a, socket))
}

fn pid_arg(v: &Value, key: &str) -> Option<Result<Pid, String>> {
    v.get(key)?
        .as_str()
        .map(|s| s.parse::<Pid>().map_err(|e| e.to_string()))
}

/// One attached process: commands in, events out, until either side closes.
async fn attached(a: Admin, mut socket: WebSocket) {
    a.attached.fetch_add(1, Ordering::Relaxed);
    let node = a.node.clone();
    let mut proc_ = node.spawn();
    let pid = proc_.pid().clone();
    let send = |v: Value| WsMessage::Text(v.to_string().into());
    if socket
        .send(send(json!({"event": "ready", "pid": pid.to_string()})))
        .await
        .is_err()
    {
        a.attached.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let text = match msg {
                    WsMessage::Text(t) => t.to_string(),
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let reply = command(&node, &pid, &text).await;
                if socket.send(send(reply)).await.is_err() {
                    break;
                }
            }
            m = proc_.recv() => {
                let Some(m) = m else { break };
                let (ev, last) = match m {
                    Message::Data { from, payload } => (json!({
                        "event": "message",
                        "from": from.map(|p| p.to_string()),
                        "message": String::from_utf8_lossy(&payload),
                    }), false),
                    Message::NameConflict { table, name, winner } => (json!({
                        "event": "conflict", "table": table, "name": name,
                        "winner": winner.map(|p| p.to_string()), "killed": false,
                    }), false),
                    Message::Exit { reason } => {
                        let conflict = match &reason {
                            ExitReason::Killed(why) => why.strip_prefix("name conflict: ").map(str::to_string),
                            _ => None,
                        };
                        if let Some(name) = conflict {
                            let _ = socket.send(send(json!({
                                "event": "conflict", "name": name, "killed": true,
                            }))).await;
                        }
                        (json!({"event": "exit", "reason": reason.to_string()}), true)
                    }
                    Message::Down { mref, pid, reason } => (json!({
                        "event": "down", "ref": mref.0, "pid": pid.to_string(), "reason": reason.to_string(),
                    }), false),
                };
                if socket.send(send(ev)).await.is_err() || last {
                    break;
                }
            }
        }
    }
    // Closing the connection ends the process: its names and memberships go.
    drop(proc_);
    a.attached.fetch_sub(1, Ordering::Relaxed);
}

/// Runs one attach command and returns the reply.
async fn command(node: &Node, me: &Pid, text: &str) -> Value {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json!({"event": "error", "error": format!("bad JSON: {e}")}),
    };
    let op = v.get("op").and_then(Value::as_str).unwrap_or("");
    let str_arg = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let err = |e: String| json!({"event": "error", "op": op, "error": e});
    match op {
        "register" => {
            let Some(name) = str_arg("name") else {
                return err("missing \"name\"".into());
            };
            match node.names().register(name.clone(), me).await {
                Ok(()) => json!({"event": "registered", "name": name}),
                Err(e) => json!({"event": "error", "op": op, "name": name, "error": e.to_string(),
                                 "taken": matches!(e, cohort::core::names::NamesError::Taken)}),
            }
        }
        "unregister" => {
            let Some(name) = str_arg("name") else {
                return err("missing \"name\"".into());
            };
            match node.names().unregister(&name).await {
                Ok(()) => json!({"event": "unregistered", "name": name}),
                Err(e) => err(e.to_string()),
            }
        }
        "join" | "leave" => {
            let (Some(scope), Some(group)) = (str_arg("scope"), str_arg("group")) else {
                return err("missing \"scope\" or \"group\"".into());
            };
            let s = node.scope(&scope);
            let r = if op == "join" {
                s.join(&group, me)
            } else {
                s.leave(&group, me)
            };
            match r {
                Ok(()) => {
                    json!({"event": if op == "join" { "joined" } else { "left" }, "scope": scope, "group": group})
                }
                Err(e) => err(e.to_string()),
            }
        }
        "send" => {
            let Some(message) = str_arg("message") else {
                return err("missing \"message\"".into());
            };
            if let Some(to) = pid_arg(&v, "to") {
                return match to {
                    Ok(p) => {
                        node.send(&p, message.into_bytes());
                        json!({"event": "sent", "pid": p.to_string()})
                    }
                    Err(e) => err(e),
                };
            }
            let Some(name) = str_arg("name") else {
                return err("missing \"to\" or \"name\"".into());
            };
            match node.whereis_at(None, &name).await {
                Some(p) => {
                    node.send(&p, message.into_bytes());
                    json!({"event": "sent", "pid": p.to_string()})
                }
                None => err(format!("name {name:?} is not registered")),
            }
        }
        "" => err("missing \"op\"".into()),
        other => err(format!("unknown op {other:?}")),
    }
}

/// Serves the admin API on `addr` until the node stops, with the
/// bench-only `/bench/` endpoints when `bench_api` is set (hidden
/// `cohort node --bench-api`).
pub async fn serve(
    node: Node,
    addr: SocketAddr,
    bench_api: bool,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bench = bench_api.then(|| crate::bench::api::router(node.clone()));
    let state = Admin {
        node,
        attached: Arc::new(AtomicU64::new(0)),
        requests: Arc::new(AtomicU64::new(0)),
    };
    let counter = state.requests.clone();
    let mut app = Router::new();
    if let Some(b) = bench {
        app = app.merge(b);
    }
    let app = app
        .route("/info", get(info))
        .route("/nodes", get(nodes))
        .route("/names", get(names))
        .route("/whereis/{name}", get(whereis))
        .route("/members/{scope}/{group}", get(members))
        .route("/groups/{scope}", get(groups))
        .route("/send", post(send))
        .route("/sync", post(sync))
        .route("/block", post(block))
        .route("/unblock", post(unblock))
        .route("/connect", post(connect))
        .route("/metrics", get(metrics))
        .route("/attach", get(attach))
        .fallback(|| async { not_found("no such endpoint; see openapi.yaml") })
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::Relaxed);
                async move { next.run(req).await }
            },
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--admin: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((bound, task))
}
