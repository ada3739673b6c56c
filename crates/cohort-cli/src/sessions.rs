//! Every node's sessions, readable on any node: each `cohort node`
//! publishes the peers it has an up session with as the metadata of one
//! membership (a process of its own) of group [`GROUP`] in the internal
//! scope [`SCOPE`]. Process-group replication carries it to every node of
//! the scope, so a node's dashboard draws the sessions between two other
//! nodes too, and a netsplit between them (their lists lose each other).
//!
//! The list is republished on every node up/down event and checked every
//! [`EVERY`] (a block drops a session without an event on some paths). The
//! scope is left out of what the admin API lists and counts (`/scopes`,
//! `max_scopes`, `/metrics`, the dashboard's scopes): it is the node's own.

use std::collections::BTreeMap;
use std::time::Duration;

use cohort::Node;

/// The internal scope the session lists travel in.
pub const SCOPE: &str = "cohort.sessions";
/// The group of the scope each node's lister joins.
pub const GROUP: &str = "sessions";
/// How often a node checks its own list when no event said it changed.
pub const EVERY: Duration = Duration::from_secs(1);
/// The shortest time between two publications: while a mesh forms, every
/// session that comes up changes the list, and each publication goes to
/// every peer; changes within this time go out together.
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// Peers listed at most (the metadata must stay far below the limit of a
/// membership's metadata, 64 KiB by default: 1,000 names of up to 255
/// bytes would not).
pub const MAX_LISTED: usize = 200;

/// Whether `scope` is the node's own (not a user's).
pub fn is_internal(scope: &str) -> bool {
    scope == SCOPE
}

/// The peers with an up session (visible or hidden), in name order, at
/// most [`MAX_LISTED`], as the JSON array that is published.
fn own_list(node: &Node) -> Vec<u8> {
    let mut up: Vec<String> = node
        .nodes()
        .into_iter()
        .chain(node.nodes_hidden())
        .map(|n| n.to_string())
        .collect();
    up.sort();
    up.truncate(MAX_LISTED);
    serde_json::to_vec(&up).unwrap_or_default()
}

/// Starts publishing this node's sessions (for the life of the node).
pub fn publish(node: &Node) {
    let scope = node.scope(SCOPE);
    let lister = node.spawn();
    let node = node.clone();
    tokio::spawn(async move {
        let mut events = node.subscribe();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Vec<u8>> = None;
        let mut sent_at: Option<tokio::time::Instant> = None;
        loop {
            let list = own_list(&node);
            // A change within MIN_GAP of the last publication waits for it.
            let wait = sent_at
                .map(|t| t + MIN_GAP)
                .filter(|&t| t > tokio::time::Instant::now());
            let changed = last.as_ref() != Some(&list);
            if changed && wait.is_none() {
                let r = if last.is_none() {
                    scope.join_with_meta(GROUP, lister.pid(), list.clone())
                } else {
                    scope.update_meta(GROUP, lister.pid(), Some(list.clone().into()))
                };
                match r {
                    Ok(()) => {
                        last = Some(list);
                        sent_at = Some(tokio::time::Instant::now());
                    }
                    // Tried again at the next tick.
                    Err(e) => tracing::warn!(error = %e, "could not publish this node's sessions"),
                }
            }
            let due = wait.filter(|_| changed);
            tokio::select! {
                ev = events.recv() => if ev.is_none() { break },
                _ = tick.tick() => {}
                _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {}
            }
        }
        drop(lister);
    });
}

/// What each node of the scope last published (this one included): node
/// name → the peers it has an up session with. A node that publishes
/// nothing readable is left out.
pub fn views(node: &Node) -> BTreeMap<String, Vec<String>> {
    if !node.scopes().iter().any(|s| is_internal(s.as_ref())) {
        return BTreeMap::new();
    }
    let members = node.scope(SCOPE).members(GROUP);
    let mut out = BTreeMap::new();
    for m in members.iter() {
        let Some(meta) = members.meta(&m.pid()) else {
            continue;
        };
        if let Ok(list) = serde_json::from_slice::<Vec<String>>(meta) {
            out.insert(m.node().to_string(), list);
        }
    }
    out
}

/// The scopes running on `node` but [`SCOPE`]: the ones the admin API and
/// the dashboard list, count and serve.
pub fn user_scopes(node: &Node) -> Vec<cohort::core::pg::ScopeName> {
    let mut v = node.scopes();
    v.retain(|s| !is_internal(s.as_ref()));
    v
}
