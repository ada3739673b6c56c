//! What the bench endpoints of [`super::api`] and [`super::api_limits`]
//! share: their state, their error, and how a request body is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohort::{Node, Pid, Process};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::sync::lock;

/// State of the bench endpoints: the node and the idle processes spawned
/// for the workload (they live until `/bench/reset` or the node stops).
#[derive(Clone)]
pub(super) struct Bench {
    pub(super) node: Node,
    pub(super) procs: Arc<Mutex<Vec<Process>>>,
    /// Name → pid this node registered it to (for the clash analysis).
    pub(super) registered: Arc<Mutex<HashMap<String, Pid>>>,
    /// Latency histograms kept for the next call: allocated with the
    /// node, so a call's histograms (240 KB each) do not show in the
    /// memory a benchmark measures around it.
    pub(super) hists: Arc<Mutex<Vec<Histogram<u64>>>>,
}

pub(super) struct BenchError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for BenchError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(super) fn bad(msg: impl Into<String>) -> BenchError {
    BenchError(StatusCode::BAD_REQUEST, msg.into())
}

pub(super) type BenchResult = Result<Json<Value>, BenchError>;

pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, BenchError> {
    b.map(|Json(v)| v).map_err(|e| bad(e.body_text()))
}

impl Bench {
    /// The pids of processes `offset..offset+count`, or a 400.
    pub(super) fn pids(&self, offset: u64, count: u64) -> Result<Vec<Pid>, BenchError> {
        let procs = lock(&self.procs);
        let end = Self::end(offset, count, procs.len())?;
        Ok(procs[offset as usize..end]
            .iter()
            .map(|p| p.pid().clone())
            .collect())
    }

    /// A 400 unless processes `offset..offset+count` were spawned.
    pub(super) fn check_pids(&self, offset: u64, count: u64) -> Result<(), BenchError> {
        Self::end(offset, count, lock(&self.procs).len()).map(|_| ())
    }

    /// The pid of process `i`, if it was spawned (and not reset since).
    pub(super) fn pid(&self, i: u64) -> Option<Pid> {
        lock(&self.procs)
            .get(usize::try_from(i).ok()?)
            .map(|p| p.pid().clone())
    }

    fn end(offset: u64, count: u64, spawned: usize) -> Result<usize, BenchError> {
        offset
            .checked_add(count)
            .filter(|e| *e <= spawned as u64)
            .map(|e| e as usize)
            .ok_or_else(|| {
                bad(format!(
                    "processes {offset}..{offset}+{count} asked, {spawned} spawned"
                ))
            })
    }

    pub(super) fn table(
        &self,
        table: &Option<String>,
    ) -> Result<cohort::runtime::NameTable, BenchError> {
        match table {
            None => Ok(self.node.names()),
            Some(t) => self
                .node
                .names_table(t)
                .ok_or_else(|| bad(format!("no name table {t:?}"))),
        }
    }

    pub(super) fn scope_running(&self, scope: &str) -> Result<cohort::Scope, BenchError> {
        if scope.is_empty() {
            return Err(bad("empty scope"));
        }
        Ok(self.node.scope(scope))
    }
}
