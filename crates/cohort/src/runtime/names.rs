//! The runtime side of global names: the [`NameTable`] API. Reads use the
//! lock-free views of `names_state`; writes go through the engine.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{EventStream, Node, Shared};
use crate::core::names::{LockId, LossPolicy, NameEvent, NamesError, Outcome, RegisterArgs};
use crate::core::pid::{NodeName, Pid};
use crate::core::time::Time;
use crate::core::NodeCore;

/// A name table of a node: register, look up and send by name.
///
/// Reads (`whereis`, `registered_names`, `send`) are local and never wait
/// for the node's engine; writes follow the table's [`Mode`](crate::core::names::Mode).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cohort_registry::{Message, NameEvent, NamesError, Node};
///
/// let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
/// let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
/// b.connect(&a.local_addr()).await?;
///
/// // b follows the table; a registers a name in it.
/// let mut events = b.names().subscribe();
/// let mut db = a.spawn();
/// a.names().register("db", db.pid()).await?;
/// // The name is taken cluster-wide: b cannot have it too.
/// let other = b.spawn();
/// assert!(matches!(
///     b.names().register("db", other.pid()).await,
///     Err(NamesError::Taken)
/// ));
/// let Some(Ok(NameEvent::Registered { name, pid, .. })) = events.recv().await else { panic!() };
/// assert_eq!((name.as_str(), &pid), ("db", db.pid()));
///
/// // Local lookups on b, and a send by name.
/// assert_eq!(b.names().whereis("db").as_ref(), Some(db.pid()));
/// assert_eq!(b.names().registered_names(), vec!["db".to_string()]);
/// b.names().send("db", "hello")?;
/// assert!(matches!(db.recv().await, Some(Message::Data { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct NameTable {
    node: Node,
    idx: usize,
}

impl NameTable {
    fn shared(&self) -> &Arc<Shared> {
        self.node.shared()
    }

    fn table(&self) -> Result<&str, NamesError> {
        self.shared()
            .names
            .tables
            .get(self.idx)
            .map(|(n, _)| n.as_str())
            .ok_or_else(|| NamesError::UnknownTable("(default)".into()))
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        self.table().unwrap_or("")
    }

    /// Registers local `pid` as `name`: `Taken` if another process holds
    /// it, `AlreadyNamed` if `pid` has another name and the table allows one.
    pub async fn register(&self, name: impl Into<String>, pid: &Pid) -> Result<(), NamesError> {
        self.register_with(name, pid, Bytes::new(), None).await
    }

    /// Registers with metadata and, optionally, a loss policy of its own.
    pub async fn register_with(
        &self,
        name: impl Into<String>,
        pid: &Pid,
        meta: impl Into<Bytes>,
        policy: Option<LossPolicy>,
    ) -> Result<(), NamesError> {
        self.write(name.into(), pid, meta.into(), policy, false)
            .await
    }

    /// Registers `pid` as `name` even if another process holds it (which
    /// then loses the name, without being killed).
    pub async fn re_register(&self, name: impl Into<String>, pid: &Pid) -> Result<(), NamesError> {
        self.write(name.into(), pid, Bytes::new(), None, true).await
    }

    /// `re_register` with metadata and a loss policy.
    pub async fn re_register_with(
        &self,
        name: impl Into<String>,
        pid: &Pid,
        meta: impl Into<Bytes>,
        policy: Option<LossPolicy>,
    ) -> Result<(), NamesError> {
        self.write(name.into(), pid, meta.into(), policy, true)
            .await
    }

    async fn write(
        &self,
        name: String,
        pid: &Pid,
        meta: Bytes,
        policy: Option<LossPolicy>,
        replace: bool,
    ) -> Result<(), NamesError> {
        let args = RegisterArgs {
            table: self.table()?.to_string(),
            name,
            pid: pid.clone(),
            meta,
            policy,
            replace,
        };
        call(self.shared(), |core, now, op| {
            core.names_register(now, op, args)
        })
        .await
        .map(|_| ())
    }

    /// Unregisters `name`, whichever node holds it: the claim this node
    /// sees, never a newer one made meanwhile.
    ///
    /// `Ok` means the holder's node retracted that claim (in a locked
    /// table under the name's lock, so it serialises with registrations
    /// of the name). `NotRegistered` when this node sees no holder, or
    /// the holder's node found the claim gone (unregistered, replaced or
    /// lost). [`NamesError::OutcomeUnknown`] when the name is held on
    /// another node that did not answer within 3 s or went away: the
    /// request may or may not have been applied (read `whereis` again;
    /// retrying is safe), as with a database driver whose connection
    /// dropped mid-commit.
    pub async fn unregister(&self, name: &str) -> Result<(), NamesError> {
        let table = self.table()?.to_string();
        call(self.shared(), |core, now, op| {
            core.names_unregister(now, op, &table, name)
        })
        .await
        .map(|_| ())
    }

    /// The process registered as `name`, from this node's view (no round
    /// trip). A local process that has ended reads as absent.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        let s = self.shared();
        let (_, view) = s.names.tables.get(self.idx)?;
        let e = view.get(name)?;
        let r = &e.key().0;
        // One lookup: a local process's names leave the view under the
        // engine lock before its exit returns, so only a stopped node's
        // entries are left to hide.
        if r.is_local() && s.names.stopped() {
            return None;
        }
        Some(r.pid())
    }

    /// The process registered as `name` and its metadata.
    pub fn whereis_meta(&self, name: &str) -> Option<(Pid, Bytes)> {
        let s = self.shared();
        let (_, view) = s.names.tables.get(self.idx)?;
        let e = view.get(name)?;
        let r = &e.key().0;
        if r.is_local() && s.names.stopped() {
            return None;
        }
        Some((r.pid(), r.meta()))
    }

    /// Sends `payload` to the process registered as `name`; returns its pid.
    pub fn send(&self, name: &str, payload: impl Into<Bytes>) -> Result<Pid, NamesError> {
        let pid = self.whereis(name).ok_or(NamesError::NotRegistered)?;
        self.node.send(&pid, payload);
        Ok(pid)
    }

    /// The names this node sees, sorted.
    pub fn registered_names(&self) -> Vec<String> {
        let Some((_, view)) = self.shared().names.tables.get(self.idx) else {
            return Vec::new();
        };
        let mut v: Vec<String> = view.iter().map(|e| e.key().0.name().to_string()).collect();
        v.sort();
        v
    }

    /// How many names this node sees (a local read, without copying them).
    pub fn len(&self) -> usize {
        self.shared()
            .names
            .tables
            .get(self.idx)
            .map_or(0, |(_, view)| view.len())
    }

    /// Whether this node sees no name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns once this node has exchanged names with every connected
    /// node of the table (as of the call).
    pub async fn sync(&self) -> Result<(), NamesError> {
        self.table()?;
        call(self.shared(), |core, now, op| core.names_sync(now, op))
            .await
            .map(|_| ())
    }

    /// Subscribes to this table's events from now on, in the order this
    /// node applies them.
    pub fn subscribe(&self) -> EventStream<NameEvent> {
        let (tx, rx) = super::stream::channel();
        // Under the engine lock, so no event is half-published.
        self.shared().with(|core, now, _| {
            core.with_names(now, |n, _| n.watch(self.idx));
            self.shared()
                .names
                .subs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.idx, tx));
        });
        rx
    }
}

/// Runs a core operation and waits for its answer.
async fn call(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut NodeCore, Time, u64) -> Outcome,
) -> Result<bool, NamesError> {
    let n = &shared.names;
    let op = n.next_op.fetch_add(1, Ordering::Relaxed);
    // The waiter is parked inside the critical section, before the
    // effects (which may already hold the reply) run.
    let out = shared.with(|core, now, _| match f(core, now, op) {
        Outcome::Done(r) => Err(r),
        Outcome::Pending => {
            let (tx, rx) = oneshot::channel();
            n.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(op, tx);
            Ok(rx)
        }
    });
    match out {
        Err(done) => done,
        Ok(rx) => rx.await.unwrap_or(Err(NamesError::Stopped)),
    }
}

impl Node {
    /// The default name table (the first configured one).
    pub fn names(&self) -> NameTable {
        NameTable {
            node: self.clone(),
            idx: 0,
        }
    }

    /// The name table called `table`, if configured.
    pub fn names_table(&self, table: &str) -> Option<NameTable> {
        let idx = self
            .shared()
            .names
            .tables
            .iter()
            .position(|(n, _)| n == table)?;
        Some(NameTable {
            node: self.clone(),
            idx,
        })
    }

    /// Nodes of this node's name tables that its peers have a session
    /// with and it has not, for longer than
    /// [`PARTIAL_MESH_GRACE`](crate::core::names::PARTIAL_MESH_GRACE):
    /// empty in a full mesh. Names are not relayed, so names held there
    /// are not seen here, and clashes with them are not settled, until a
    /// session comes up (a warning is logged when a node joins this list).
    ///
    /// ```no_run
    /// # async fn f(node: cohort_registry::Node) {
    /// if !node.unreached().is_empty() {
    ///     eprintln!("partial mesh: no session with {:?}", node.unreached());
    /// }
    /// # }
    /// ```
    pub fn unreached(&self) -> Vec<NodeName> {
        self.shared().with(|core, _, _| core.names().unreached())
    }

    /// Registers local `pid` as `name` in the default table.
    pub async fn register(&self, name: impl Into<String>, pid: &Pid) -> Result<(), NamesError> {
        self.names().register(name, pid).await
    }

    /// Re-registers `name` to local `pid` in the default table.
    pub async fn re_register(&self, name: impl Into<String>, pid: &Pid) -> Result<(), NamesError> {
        self.names().re_register(name, pid).await
    }

    /// Unregisters `name` in the default table.
    pub async fn unregister(&self, name: &str) -> Result<(), NamesError> {
        self.names().unregister(name).await
    }

    /// The process registered as `name` in the default table (a local read).
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.names().whereis(name)
    }

    /// The names of the default table, sorted (a local read).
    pub fn registered_names(&self) -> Vec<String> {
        self.names().registered_names()
    }

    /// Takes `lock` for local process `holder` on `nodes` (this node and
    /// every connected one when `None`), retrying `retries` more times
    /// (forever when `None`) with a jittered backoff. `Ok(false)` when the
    /// retries ran out. Holders with the same requester id share the lock;
    /// it is released by [`Node::del_lock`], the holder's death or its
    /// node going down.
    pub async fn set_lock(
        &self,
        lock: &LockId,
        holder: &Pid,
        nodes: Option<&[NodeName]>,
        retries: Option<u32>,
    ) -> Result<bool, NamesError> {
        let nodes = nodes.map(|n| n.to_vec());
        call(self.shared(), |core, now, op| {
            core.names_set_lock(now, op, lock.clone(), holder, nodes, retries)
        })
        .await
    }

    /// Releases `lock` for `holder` on `nodes` (as for [`Node::set_lock`]).
    pub fn del_lock(&self, lock: &LockId, holder: &Pid, nodes: Option<&[NodeName]>) {
        let nodes = nodes.map(|n| n.to_vec());
        self.shared()
            .with(|core, now, _| core.names_del_lock(now, lock.clone(), holder, nodes));
    }

    /// Runs `f` while holding `lock` (OTP `global:trans`): `Ok(None)` when
    /// the lock could not be taken.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cohort_registry::{LockId, Node};
    ///
    /// let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
    /// let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
    /// b.connect(&a.local_addr()).await?;
    /// let (pa, pb) = (a.spawn(), b.spawn());
    /// let lock = LockId::new("accounts", "a-writer");
    ///
    /// // a takes the lock on every node (None = all connected nodes).
    /// assert!(a.set_lock(&lock, pa.pid(), None, Some(0)).await?);
    /// // b, another requester, cannot take it while a holds it.
    /// let theirs = LockId::new("accounts", "b-writer");
    /// assert!(!b.set_lock(&theirs, pb.pid(), None, Some(0)).await?);
    /// a.del_lock(&lock, pa.pid(), None);
    ///
    /// // trans: take, run, release; None when the lock was not taken.
    /// let out = b.trans(&theirs, pb.pid(), None, None, || async { 42 }).await?;
    /// assert_eq!(out, Some(42));
    /// # Ok(()) }
    /// ```
    pub async fn trans<T, Fut: Future<Output = T>>(
        &self,
        lock: &LockId,
        holder: &Pid,
        nodes: Option<&[NodeName]>,
        retries: Option<u32>,
        f: impl FnOnce() -> Fut,
    ) -> Result<Option<T>, NamesError> {
        if !self.set_lock(lock, holder, nodes, retries).await? {
            return Ok(None);
        }
        let out = f().await;
        self.del_lock(lock, holder, nodes);
        Ok(Some(out))
    }

    /// The holders of the lock on `resource` on this node, with the lock's
    /// requester id. For inspection: takes the engine lock.
    pub fn lock_holders(&self, resource: &str) -> Option<(String, Vec<Pid>)> {
        self.shared()
            .with(|core, _, _| core.names().lock_holders(resource))
    }
}
