//! The shared state of the admin server, its error answer, and the audit
//! line that the API and the dashboard both write.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohort::{Node, NodeName, Pid, Scope};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{check_name, ScopeLimits};
use crate::dashboard::hub::Hub;
use crate::listen::Client;
use crate::sync::lock;

/// One scope that an admin call started.
pub(super) struct Started {
    /// When it started (reads wait for its first sync until `sync_wait`).
    pub(super) at: Instant,
    /// The last admin call that used it.
    pub(super) used: Instant,
}

/// The scopes admin calls started, and who watches which scope.
pub struct Scopes {
    pub(super) limits: ScopeLimits,
    /// Configured scopes (and `pg`): never stopped here.
    pub(super) configured: HashSet<String>,
    pub(super) started: Mutex<HashMap<String, Started>>,
    /// Monitors held by attached processes, per scope.
    pub(super) watchers: Mutex<HashMap<String, usize>>,
}

impl Scopes {
    pub(super) fn new(limits: ScopeLimits, configured: impl IntoIterator<Item = String>) -> Self {
        Scopes {
            limits,
            configured: configured.into_iter().collect(),
            started: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn watch(&self, scope: &str, on: bool) {
        let mut w = lock(&self.watchers);
        let n = w.entry(scope.to_string()).or_insert(0);
        if on {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.remove(scope);
            }
        }
    }

    /// Stops the started scopes that nobody uses any more.
    pub(super) fn collect_idle(&self, node: &Node) {
        let now = Instant::now();
        let idle: Vec<String> = {
            let started = lock(&self.started);
            let watchers = lock(&self.watchers);
            started
                .iter()
                .filter(|(name, s)| {
                    now.duration_since(s.used) >= self.limits.idle && !watchers.contains_key(*name)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in idle {
            let mut started = lock(&self.started);
            // Checked again under the lock: a call may have used it since.
            let still_idle = started
                .get(&name)
                .is_some_and(|s| now.duration_since(s.used) >= self.limits.idle);
            if still_idle
                && !lock(&self.watchers).contains_key(&name)
                && node.scope(&name).which_local_groups().is_empty()
            {
                node.stop_scope(&name);
                started.remove(&name);
                tracing::debug!(scope = %name, "stopped an idle scope started by an admin call");
            }
        }
    }
}

/// Shared state of the admin server.
#[derive(Clone)]
pub struct Admin {
    pub(crate) node: Node,
    pub(super) attached: Arc<AtomicU64>,
    pub(super) requests: Arc<AtomicU64>,
    pub(super) scopes: Arc<Scopes>,
    /// Attached processes, to tell each when its name goes.
    pub(super) holders: Arc<Mutex<HashMap<Pid, mpsc::UnboundedSender<Value>>>>,
    /// Watches the default table for [`super::tell_holders`], from the first
    /// attach on: a node nobody attaches to pays nothing per name.
    pub(super) holders_watch: Arc<std::sync::OnceLock<tokio::task::JoinHandle<()>>>,
    /// Bytes queued for one WebSocket client at most.
    pub(crate) ws_queue_bytes: usize,
    /// The bearer token (the dashboard's socket checks it itself).
    pub(crate) token: Arc<str>,
    /// Peers blocked through this API (`/block`, the dashboard), which
    /// the node's own API does not list.
    pub(crate) blocked: Arc<Mutex<BTreeSet<NodeName>>>,
    /// What the dashboards share, from the first dashboard on.
    pub(crate) hub: Arc<std::sync::OnceLock<Arc<Hub>>>,
    /// `--dashboard-read-only`.
    pub(crate) dashboard_read_only: bool,
    /// The name tables and their modes.
    pub(crate) tables: Arc<[(String, String)]>,
    /// The Erlang distribution endpoint, when configured.
    pub(super) erlang: Option<Arc<cohort_erl::Bridge>>,
}

impl Admin {
    /// The scope `name`, started here if it is not running yet (within the
    /// cap); a scope started by an admin call answers once it has heard
    /// from every connected peer of the scope, or after `sync_wait`.
    pub(super) async fn scope(&self, name: &str) -> Result<Scope, ApiError> {
        check_name("scope", name).map_err(bad)?;
        if crate::sessions::is_internal(name) {
            return Err(bad(format!(
                "scope {name:?} is the node's own (its session list for the dashboard)"
            )));
        }
        let now = Instant::now();
        let (scope, wait_until) = {
            let mut started = lock(&self.scopes.started);
            let running = crate::sessions::user_scopes(&self.node);
            if running.iter().any(|s| s.as_ref() == name) {
                let wait = started.get_mut(name).map(|s| {
                    s.used = now;
                    s.at + self.scopes.limits.sync_wait
                });
                (self.node.scope(name), wait)
            } else {
                if running.len() >= self.scopes.limits.max_scopes {
                    return Err(ApiError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "cannot start scope {name:?}: {} scopes run on this node (max_scopes = {})",
                            running.len(),
                            self.scopes.limits.max_scopes
                        ),
                    ));
                }
                if !self.scopes.configured.contains(name) {
                    started.insert(name.to_string(), Started { at: now, used: now });
                }
                (
                    self.node.scope(name),
                    Some(now + self.scopes.limits.sync_wait),
                )
            }
        };
        if let Some(until) = wait_until.filter(|u| *u > now) {
            if !scope.synced(until - now).await {
                tracing::debug!(scope = %name, "scope answers before every peer was heard from");
            }
        }
        Ok(scope)
    }
}

/// An error answer: status and message.
pub struct ApiError(pub(super) StatusCode, pub(super) String);

impl ApiError {
    /// An error answer with this status and message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(status, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// The audit line of an unregister of a name held by another process:
/// the holder is told (`name_lost`), the log names who did it.
pub(crate) fn audit_unregister(client: Option<&Client>, how: &str, name: &str, holder: &Pid) {
    let by = client.map_or_else(|| "unknown client".to_string(), |c| c.to_string());
    tracing::info!(target: "cohort::audit", client = %by, via = how, name, holder = %holder,
        "admin: unregistered a name held by another process");
}
