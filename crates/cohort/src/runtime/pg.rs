//! The runtime side of process groups: [`Scope`] handles with the pg/cpg
//! API, and delivery of monitor events.
//!
//! Writes go through the node's lock (they are applied at once, then
//! streamed to peers); reads use the scope's published view and never
//! take the lock.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{EventStream, Lagged};
use bytes::Bytes;

use super::Node;
use crate::core::pg::{
    Group, Members, PgError, PgEvent, ScopeName, ScopeView, Select, Span, DEFAULT_SCOPE,
};
use crate::core::pid::Pid;

impl Node {
    /// The default scope (`"pg"`), running on every node.
    pub fn pg(&self) -> Scope {
        self.scope(DEFAULT_SCOPE)
    }

    /// The scope `name`, started on this node if it is not running yet. A
    /// scope replicates only between nodes that run it.
    ///
    /// # Panics
    ///
    /// When `name` is longer than 255 bytes; [`Node::try_scope`] returns
    /// an error instead.
    pub fn scope(&self, name: &str) -> Scope {
        self.scope_with(name, Span::OwnGroup)
    }

    /// The scope `name`, or [`PgError::TooLong`] when the name is longer
    /// than 255 bytes.
    pub fn try_scope(&self, name: &str) -> Result<Scope, PgError> {
        self.try_scope_with(name, Span::OwnGroup)
    }

    /// [`Node::scope_with`], or [`PgError::TooLong`] when the name is
    /// longer than 255 bytes.
    pub fn try_scope_with(&self, name: &str, span: Span) -> Result<Scope, PgError> {
        let view = self
            .shared()
            .with(|core, now, _| core.pg_try_start_scope_with(name, span, now))?;
        Ok(Scope {
            node: self.clone(),
            name: name.into(),
            view,
        })
    }

    /// The scope `name` replicating over `span` — [`Span::Cluster`] makes it
    /// cross global-group boundaries (default scopes stay inside the own
    /// group). A scope already running keeps the span it started with.
    ///
    /// # Panics
    ///
    /// When `name` is longer than 255 bytes (see [`Node::try_scope_with`]).
    pub fn scope_with(&self, name: &str, span: Span) -> Scope {
        self.try_scope_with(name, span)
            .unwrap_or_else(|e| panic!("Node::scope_with: {e}"))
    }

    /// Stops scope `name` here: local memberships are lost (peers drop
    /// them) and remote ones forgotten. False when it was not running.
    pub fn stop_scope(&self, name: &str) -> bool {
        self.shared()
            .with(|core, now, _| core.pg_stop_scope(name, now))
    }

    /// The scopes running on this node.
    pub fn scopes(&self) -> Vec<ScopeName> {
        self.shared().with(|core, _, _| core.pg().scopes())
    }
}

/// A handle on one process-group scope of a node (OTP's `pg` scope):
/// [`join`](Scope::join) and [`leave`](Scope::leave) groups, read
/// [`members`](Scope::members) and [`select`](Scope::select) one locally,
/// [`monitor`](Scope::monitor) a group's changes.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cohort_registry::{Node, PgEventKind, Select};
///
/// let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
/// let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
/// b.connect(&a.local_addr()).await?;
/// let (on_a, on_b) = (a.scope("jobs"), b.scope("jobs"));
///
/// // Watch the group on b, then join two processes on a.
/// let (mut changes, now) = on_b.monitor("workers")?;
/// assert!(now.is_empty());
/// let (w1, w2) = (a.spawn(), a.spawn());
/// on_a.join("workers", w1.pid())?;
/// on_a.join("workers", w2.pid())?;
/// let mut seen = Vec::new();
/// while seen.len() < 2 {
///     let change = changes.recv().await.unwrap()?;
///     assert_eq!(change.kind, PgEventKind::Join);
///     seen.extend(change.pids);
/// }
/// assert_eq!(on_b.members("workers").len(), 2);
///
/// // Local reads: a member near b (none is local to b, so a remote one).
/// let picked = on_b.select("workers", Select::Closest, None).unwrap();
/// assert!(picked == *w1.pid() || picked == *w2.pid());
/// assert_eq!(on_a.local_members("workers").len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Scope {
    node: Node,
    name: ScopeName,
    view: Arc<ScopeView>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Scope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this node has heard from every connected peer of the scope
    /// since it asked them (at its start or their connection): each sent
    /// its entries or said it does not run the scope. A scope started just
    /// now may read empty until then. False when the scope was stopped.
    pub fn is_synced(&self) -> bool {
        self.node
            .shared()
            .with(|core, _, _| core.pg().synced(&self.name))
            .unwrap_or(false)
    }

    /// Waits until [`Scope::is_synced`] holds, at most `timeout`; returns
    /// whether it does.
    pub async fn synced(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            if self.is_synced() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(10));
        }
    }

    // ---- writes -------------------------------------------------------

    /// Adds a local process to `group` once more (a second join needs a
    /// second leave). A remote pid is refused with `NotLocal`.
    pub fn join(&self, group: &str, pid: &Pid) -> Result<(), PgError> {
        self.join_many(group, std::slice::from_ref(pid))
    }

    /// Adds local processes to `group` in one step, all or nothing.
    pub fn join_many(&self, group: &str, pids: &[Pid]) -> Result<(), PgError> {
        self.node
            .shared()
            .with(|core, now, _| core.pg_join(&self.name, group, pids, None, now))
    }

    /// Adds a local process to `group` with a small metadata value, readable
    /// with the members and carried in events.
    pub fn join_with_meta(
        &self,
        group: &str,
        pid: &Pid,
        meta: impl Into<Bytes>,
    ) -> Result<(), PgError> {
        let meta = Some(meta.into());
        self.node.shared().with(|core, now, _| {
            core.pg_join(&self.name, group, std::slice::from_ref(pid), meta, now)
        })
    }

    /// Replaces the metadata of a local process's memberships in `group`.
    pub fn update_meta(&self, group: &str, pid: &Pid, meta: Option<Bytes>) -> Result<(), PgError> {
        self.node
            .shared()
            .with(|core, now, _| core.pg_update_meta(&self.name, group, pid, meta, now))
    }

    /// Removes one membership of a local process; `NotJoined` if it had none.
    pub fn leave(&self, group: &str, pid: &Pid) -> Result<(), PgError> {
        self.leave_many(group, std::slice::from_ref(pid))
    }

    /// Removes one membership of each process; `NotJoined` when none of
    /// them had joined.
    pub fn leave_many(&self, group: &str, pids: &[Pid]) -> Result<(), PgError> {
        self.node
            .shared()
            .with(|core, now, _| core.pg_leave(&self.name, group, pids, now))
    }

    /// pg2 compatibility: groups need no creation; this does nothing.
    pub fn create(&self, _group: &str) {}

    /// pg2 compatibility: groups vanish when their last member leaves; this
    /// does nothing (only a member's own node may remove it).
    pub fn delete(&self, _group: &str) {}

    // ---- reads (no lock, no round trip) --------------------------------

    /// A snapshot of `group`'s members: cheap, never copied per member.
    pub fn members(&self, group: &str) -> Members {
        self.view.members(group)
    }

    /// The pids of local members (a copy).
    pub fn local_members(&self, group: &str) -> Vec<Pid> {
        self.view
            .members(group)
            .local()
            .iter()
            .map(|m| m.pid().clone())
            .collect()
    }

    /// The pids of remote members (a copy).
    pub fn remote_members(&self, group: &str) -> Vec<Pid> {
        self.view
            .members(group)
            .remote()
            .iter()
            .map(|m| m.pid().clone())
            .collect()
    }

    /// Memberships in all groups of the scope, counted as they change (a
    /// pid that joined twice counts twice): an O(1) read.
    pub fn membership_count(&self) -> usize {
        self.view.membership_count()
    }

    /// Every group with a member, sorted.
    pub fn which_groups(&self) -> Vec<Group> {
        let mut g = self.view.which_groups();
        g.sort();
        g
    }

    /// Every group with a local member, sorted.
    pub fn which_local_groups(&self) -> Vec<Group> {
        let mut g = self.view.which_local_groups();
        g.sort();
        g
    }

    /// How many times `pid` joined `group`.
    pub fn join_count(&self, group: &str, pid: &Pid) -> usize {
        self.view.members(group).count(pid)
    }

    /// Every group `pid` joined, with how many times, sorted by group.
    pub fn join_counts(&self, pid: &Pid) -> Vec<(Group, usize)> {
        self.which_groups()
            .into_iter()
            .filter_map(|g| {
                let n = self.view.members(&g).count(pid);
                (n > 0).then_some((g, n))
            })
            .collect()
    }

    /// Picks one member of `group` (cpg's selection helpers), never `exclude`;
    /// random choices use the thread's generator.
    pub fn select(&self, group: &str, how: Select, exclude: Option<&Pid>) -> Option<Pid> {
        self.view
            .members(group)
            .select(how, exclude, &mut rand::rng())
    }

    // ---- monitors -----------------------------------------------------

    fn subscribe(&self, group: Option<&str>) -> Result<ScopeSnapshot, PgError> {
        let shared = self.node.shared();
        let sub = shared.next_ref.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = super::stream::channel();
        shared.pg_subs.insert(sub, tx);
        // Snapshot and subscription happen under the same lock: no event
        // is missed or doubled between them.
        match shared.with(|core, _, _| core.pg_monitor(&self.name, group, sub)) {
            Ok(snapshot) => Ok((
                PgMonitor {
                    scope: self.clone(),
                    sub,
                    rx,
                },
                snapshot,
            )),
            Err(e) => {
                shared.pg_subs.remove(sub);
                Err(e)
            }
        }
    }

    /// Watches the whole scope: the current groups with their members, then
    /// every join, leave and metadata change in the order this node applies them.
    pub fn monitor_scope(&self) -> Result<ScopeSnapshot, PgError> {
        self.subscribe(None)
    }

    /// Watches one group: its current members, then its changes.
    pub fn monitor(&self, group: &str) -> Result<(PgMonitor, Vec<Pid>), PgError> {
        let (m, snap) = self.subscribe(Some(group))?;
        Ok((
            m,
            snap.into_iter().next().map(|(_, p)| p).unwrap_or_default(),
        ))
    }
}

/// A scope monitor and the groups (with members) it started from.
pub type ScopeSnapshot = (PgMonitor, Vec<(Group, Vec<Pid>)>);

/// A stream of group changes, a [`Stream`](futures::Stream) of
/// `Result<PgEvent, Lagged>` with a bounded buffer (see [`EventStream`]:
/// a monitor that falls behind is told how many changes it missed, and
/// should read [`Scope::members`] again). Dropping it (or
/// [`PgMonitor::demonitor`]) ends it.
#[derive(Debug)]
pub struct PgMonitor {
    scope: Scope,
    sub: u64,
    rx: EventStream<PgEvent>,
}

impl PgMonitor {
    /// The next change, `Err(Lagged(n))` after `n` were dropped, or `None`
    /// once the scope or the node stopped.
    pub async fn recv(&mut self) -> Option<Result<PgEvent, Lagged>> {
        self.rx.recv().await
    }

    /// The next change if one is waiting.
    pub fn try_recv(&mut self) -> Option<Result<PgEvent, Lagged>> {
        self.rx.try_recv()
    }

    /// Stops the stream.
    pub fn demonitor(self) {}
}

impl futures::Stream for PgMonitor {
    type Item = Result<PgEvent, Lagged>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl Drop for PgMonitor {
    fn drop(&mut self) {
        let shared = self.scope.node.shared();
        shared.pg_subs.remove(self.sub);
        let (scope, sub) = (self.scope.name.clone(), self.sub);
        shared.with(|core, _, _| core.pg_demonitor(&scope, sub));
    }
}
