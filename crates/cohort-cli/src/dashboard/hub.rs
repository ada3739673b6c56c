//! What the dashboards of a node share.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use crate::sync::lock;

/// Events kept for a dashboard that connects later.
const HISTORY: usize = 500;

/// Events a slow dashboard may be behind before it is told it lags.
const BROADCAST: usize = 1024;

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the dashboards of a node share: the event history, the live
/// events, and what the node's own API cannot tell (peers' creations and
/// since when each node is in its state). Started by the first dashboard.
pub struct Hub {
    pub(super) history: Mutex<VecDeque<Value>>,
    pub(super) tx: broadcast::Sender<Value>,
    /// Node name → (creation, since when in its current state, ms).
    pub(super) seen: Mutex<BTreeMap<String, (u32, u64)>>,
    /// Told on every change that may change the state.
    pub(super) changed: Notify,
    /// Sync errors last seen, to report new ones once.
    pub(super) sync_errors: Mutex<BTreeSet<String>>,
    /// Each name table's names in order (name → its lowercase form, what a
    /// search matches), kept from the table's events: a page of 100k names
    /// is a walk of the index, not a sort of every name per request.
    pub(super) names: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Hub {
    pub(super) fn new() -> Self {
        Hub {
            history: Mutex::new(VecDeque::new()),
            tx: broadcast::channel(BROADCAST).0,
            seen: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            sync_errors: Mutex::new(BTreeSet::new()),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the index of `table` with `names`.
    pub(super) fn reindex(&self, table: &str, names: &[String]) {
        let index = names
            .iter()
            .map(|n| (n.clone(), n.to_lowercase()))
            .collect();
        lock(&self.names).insert(table.to_string(), index);
    }

    /// Adds `name` to the index of `table`, or removes it.
    pub(super) fn index_name(&self, table: &str, name: &str, registered: bool) {
        let mut all = lock(&self.names);
        let index = all.entry(table.to_string()).or_default();
        if registered {
            index.insert(name.to_string(), name.to_lowercase());
        } else {
            index.remove(name);
        }
    }

    /// The names of `table` containing `q` (lowercase; all when empty), in
    /// order: how many, and `limit` of them from `offset`.
    pub(super) fn names_page(
        &self,
        table: &str,
        q: &str,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<String>) {
        let all = lock(&self.names);
        let Some(index) = all.get(table) else {
            return (0, Vec::new());
        };
        if q.is_empty() {
            let page = index.keys().skip(offset).take(limit).cloned().collect();
            return (index.len(), page);
        }
        let mut total = 0;
        let mut page = Vec::new();
        for (name, lower) in index {
            if lower.contains(q) {
                if total >= offset && page.len() < limit {
                    page.push(name.clone());
                }
                total += 1;
            }
        }
        (total, page)
    }

    /// Records and broadcasts one timeline event.
    pub(super) fn event(&self, mut v: Value) {
        v["kind"] = json!("event");
        v["at"] = json!(now_ms());
        {
            let mut h = lock(&self.history);
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(v.clone());
        }
        let _ = self.tx.send(v);
        self.changed.notify_waiters();
    }

    pub(super) fn mark(&self, node: &str, creation: Option<u32>) {
        let mut s = lock(&self.seen);
        let e = s.entry(node.to_string()).or_insert((0, now_ms()));
        if let Some(c) = creation {
            e.0 = c;
        }
        e.1 = now_ms();
    }
}
