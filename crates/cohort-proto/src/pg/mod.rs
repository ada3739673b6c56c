//! Process groups (OTP `pg`, CloudI `cpg`): scopes of named groups whose
//! members are pids, replicated to every node that runs the same scope.
//!
//! Each node is authoritative for its own processes: only the origin writes
//! its entries (a remote pid cannot join from here), applies the write at
//! once, and streams it to the scope's peers. No lock, no leader, nothing
//! global to reconcile after a netsplit.
//!
//! Replication, per scope:
//! - Every node numbers the changes of its own entries in a *stream*
//!   (identified by creation and scope start) with a strictly increasing
//!   sequence, and keeps the most recent ones in a bounded log.
//! - When a session comes up, each side sends `Discover` with the cursor it
//!   holds for the other's stream. The other answers with the missing
//!   deltas when its log still has them and the stream is the same, or with
//!   an exact snapshot of its own entries otherwise (installed atomically:
//!   the differences are applied and reported as joins and leaves).
//! - Afterwards changes go out as `Delta`s: the changes made since the last
//!   one, held until the node's timer comes due ([`FLUSH_REST`](crate::FLUSH_REST)), a batch fills
//!   up, or the node sends anything else (which must not overtake them), so
//!   a burst of joins costs a frame per batch, not per join. A receiver applies only
//!   the next sequence number; a gap or an unknown stream makes it ask again
//!   with `Discover`. Origins advertise their heads every second, so a lost
//!   tail is repaired even when no later write comes.
//! - When a node goes down, its entries vanish from every observer in one
//!   step. Frames from nodes that are not peers of the scope are ignored.
//!
//! # Layout
//! - this file: [`Pg`], the scopes of one node: starting and stopping
//!   them, routing frames, peers coming and going, the heads timer;
//! - `scope.rs`: one replicated scope: its stream, log and held changes,
//!   what it holds of each peer, snapshots, catch-up and deltas, and the
//!   local joins and leaves;
//! - `joined.rs`: the groups each local process joined;
//! - `view.rs`: the published read side ([`ScopeView`]);
//! - `wire.rs`: the frames ([`PgFrame`]) and the changes they carry;
//! - `event.rs`, `error.rs`: what monitors see, why a call fails;

mod error;
mod event;
mod joined;
mod log;
mod scope;
mod view;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

pub use self::error::PgError;
pub use self::event::{PgEffect, PgEvent, PgEventKind};
use self::scope::Scope;
pub use self::scope::Span;
pub use self::view::{Group, GroupView, Member, Members, ScopeView, Select};
pub use self::wire::{Op, Ops, PgFrame, ScopeName, SyncGroup};
use crate::ctx::{Ctx, Holds};
use crate::pid::{NodeName, Pid};
use crate::proto::Frame;
use crate::time::Time;

/// The scope every node runs unless told otherwise (OTP's default `pg` scope).
pub const DEFAULT_SCOPE: &str = "pg";

/// How often stream heads are advertised.
const HEADS_INTERVAL: Duration = Duration::from_secs(1);

/// The process-group scopes of one node.
#[derive(Debug)]
pub struct Pg {
    scopes: BTreeMap<ScopeName, Scope>,
    starts: u32,
    next_heads: Option<Time>,
    /// Largest metadata of a membership, in bytes.
    max_meta: usize,
    /// Bytes of entries per frame (half the max frame size).
    chunk: usize,
}

impl Default for Pg {
    fn default() -> Self {
        Pg {
            scopes: BTreeMap::new(),
            starts: 0,
            next_heads: None,
            max_meta: crate::limits::DEFAULT_MAX_META,
            chunk: crate::proto::DEFAULT_MAX_FRAME / 2,
        }
    }
}

/// Checks the sizes of what a join or a metadata update would add.
fn check_entry(
    scope: &str,
    group: &str,
    meta: Option<&Bytes>,
    max_meta: usize,
) -> Result<(), PgError> {
    let too_long = |what| move |(len, max)| PgError::TooLong { what, len, max };
    crate::limits::name(scope).map_err(too_long("scope name"))?;
    crate::limits::name(group).map_err(too_long("group name"))?;
    crate::limits::meta(meta.map(|m| &m[..]), max_meta).map_err(too_long("metadata"))
}

impl Pg {
    /// Sets the largest metadata of a membership (default
    /// [`DEFAULT_MAX_META`](crate::limits::DEFAULT_MAX_META)).
    pub fn set_max_meta(&mut self, bytes: usize) {
        self.max_meta = bytes;
    }

    /// Sets the max frame size that deltas, catch-ups and snapshot parts
    /// must fit in.
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.chunk = (bytes / 2).max(1);
        for s in self.scopes.values_mut() {
            s.chunk = self.chunk;
        }
    }

    /// Starts `scope` like [`Pg::start_scope_with`], unless its name is
    /// longer than [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    pub fn try_start_scope_with(
        &mut self,
        scope: &str,
        span: Span,
        ctx: &mut Ctx<'_>,
    ) -> Result<Arc<ScopeView>, PgError> {
        crate::limits::name(scope).map_err(|(len, max)| PgError::TooLong {
            what: "scope name",
            len,
            max,
        })?;
        Ok(self.start_scope_with(scope, span, ctx))
    }

    fn scope_mut(&mut self, name: &str) -> Result<&mut Scope, PgError> {
        self.scopes
            .get_mut(name)
            .ok_or_else(|| PgError::NoScope(name.into()))
    }

    /// Whether local changes are held, waiting for [`Pg::flush`].
    pub fn holds(&self) -> bool {
        self.scopes.values().any(Scope::holds)
    }

    /// Sends every held change (one delta per scope).
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        for s in self.scopes.values_mut() {
            s.flush(ctx);
        }
    }
}

impl Holds for Pg {
    fn holds(&self) -> bool {
        Pg::holds(self)
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        Pg::flush(self, ctx);
    }
}

impl Pg {
    /// Whether `scope` has heard from every peer it asked: each sent its
    /// snapshot (or the changes this node missed) or said that it does not
    /// run the scope. None when the scope is not running here.
    pub fn synced(&self, scope: &str) -> Option<bool> {
        Some(self.scopes.get(scope)?.synced())
    }

    /// The published view of a running scope.
    pub fn view(&self, scope: &str) -> Option<Arc<ScopeView>> {
        self.scopes.get(scope).map(|s| s.view().clone())
    }

    /// The running scopes, in name order.
    pub fn scopes(&self) -> Vec<ScopeName> {
        self.scopes.keys().cloned().collect()
    }

    /// The stream cursor this node holds for `node` in `scope`, if any.
    pub fn cursor(&self, scope: &str, node: &NodeName) -> Option<(u64, u64)> {
        self.scopes.get(scope)?.cursor(node)
    }

    /// How many changes this node is behind the heads its peers last
    /// advertised, summed over scopes and peers (the sync lag).
    pub fn lag(&self) -> u64 {
        self.scopes.values().map(Scope::lag).sum()
    }

    /// How many changes this node is behind the heads `node` last
    /// advertised, summed over scopes (the sync lag with one peer).
    pub fn lag_of(&self, node: &NodeName) -> u64 {
        self.scopes.values().map(|s| s.lag_of(node)).sum()
    }

    /// The scope's own stream and head.
    pub fn head(&self, scope: &str) -> Option<(u64, u64)> {
        self.scopes.get(scope).map(Scope::head)
    }

    /// Starts `scope` (if not running) and discovers it on every up peer.
    pub fn start_scope(&mut self, scope: &str, ctx: &mut Ctx<'_>) -> Arc<ScopeView> {
        self.start_scope_with(scope, Span::OwnGroup, ctx)
    }

    /// Whether `node` takes part in a scope of `span`.
    fn takes_part(span: Span, node: &NodeName, ctx: &Ctx<'_>) -> bool {
        match span {
            Span::OwnGroup => ctx.is_eligible(node),
            Span::Cluster => ctx.is_visible_peer(node),
        }
    }

    /// Starts `scope` replicating over `span` (if not running; a running
    /// scope keeps its span).
    pub fn start_scope_with(
        &mut self,
        scope: &str,
        span: Span,
        ctx: &mut Ctx<'_>,
    ) -> Arc<ScopeView> {
        if let Some(s) = self.scopes.get(scope) {
            return s.view().clone();
        }
        self.starts += 1;
        let name: ScopeName = scope.into();
        let stream = ((ctx.creation() as u64) << 32) | self.starts as u64;
        let mut s = Scope::new(name.clone(), span, stream, ctx.me().clone());
        s.chunk = self.chunk;
        for (node, _) in ctx.all_peers() {
            if Self::takes_part(span, &node, ctx) {
                s.discover(ctx, &node);
            }
        }
        let view = s.view().clone();
        self.scopes.insert(name, s);
        if self.next_heads.is_none() {
            self.next_heads = Some(ctx.now + HEADS_INTERVAL);
        }
        view
    }

    /// Stops `scope`: its local memberships are lost, peers drop them, and
    /// this node forgets the remote ones. False when it was not running.
    pub fn stop_scope(&mut self, scope: &str, ctx: &mut Ctx<'_>) -> bool {
        let Some(s) = self.scopes.remove(scope) else {
            return false;
        };
        s.stop(ctx);
        true
    }

    /// Adds local `pids` to `group` (each once more); all or nothing.
    pub fn join(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        meta: Option<Bytes>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        check_entry(scope, group, meta.as_ref(), self.max_meta)?;
        self.scope_mut(scope)?.join(ctx, group, pids, meta)
    }

    /// Removes one membership of each joined pid; `NotJoined` when none had joined.
    pub fn leave(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        self.scope_mut(scope)?.leave(ctx, group, pids)
    }

    /// Replaces the metadata of `pid`'s memberships in `group`.
    pub fn update_meta(
        &mut self,
        scope: &str,
        group: &str,
        pid: &Pid,
        meta: Option<Bytes>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), PgError> {
        check_entry(scope, group, meta.as_ref(), self.max_meta)?;
        self.scope_mut(scope)?.update_meta(ctx, group, pid, meta)
    }

    /// Subscribes `sub` to a scope's (or one group's) changes; returns the
    /// current members as the starting snapshot, in group order.
    pub fn monitor(
        &mut self,
        scope: &str,
        group: Option<&str>,
        sub: u64,
    ) -> Result<Vec<(Group, Vec<Pid>)>, PgError> {
        Ok(self.scope_mut(scope)?.monitor(group, sub))
    }

    /// Ends a subscription.
    pub fn demonitor(&mut self, scope: &str, sub: u64) -> bool {
        self.scopes.get_mut(scope).is_some_and(|s| s.demonitor(sub))
    }

    /// `node` now takes part in own-group scopes: discover them on it.
    pub fn peer_up(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.span_up(Span::OwnGroup, node, ctx);
    }

    /// `node` no longer takes part in own-group scopes: everything it owned
    /// there goes, at once.
    pub fn peer_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.span_down(Span::OwnGroup, node, ctx);
    }

    /// A session with `node` is up: discover cluster-wide scopes on it.
    pub fn session_up(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        if ctx.is_visible_peer(node) {
            self.span_up(Span::Cluster, node, ctx);
        }
    }

    /// The session with `node` ended: cluster-wide scopes drop its entries.
    pub fn session_down(&mut self, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.span_down(Span::Cluster, node, ctx);
    }

    fn span_up(&mut self, span: Span, node: &NodeName, ctx: &mut Ctx<'_>) {
        // Snapshots and cursors refer to sent changes only.
        self.flush(ctx);
        for s in self.scopes.values_mut().filter(|s| s.span() == span) {
            s.peer_up(ctx, node);
        }
    }

    fn span_down(&mut self, span: Span, node: &NodeName, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        for s in self.scopes.values_mut().filter(|s| s.span() == span) {
            s.peer_down(ctx, node);
        }
    }

    /// A process-group frame from an up peer. Frames for a scope the sender
    /// does not take part in (another global group, a hidden session) are
    /// ignored.
    pub fn frame(&mut self, node: &NodeName, creation: u32, frame: PgFrame, ctx: &mut Ctx<'_>) {
        // Answers (snapshots, catch-ups) refer to sent changes only.
        self.flush(ctx);
        let scope = match &frame {
            PgFrame::Discover { scope, .. }
            | PgFrame::Sync { scope, .. }
            | PgFrame::Delta { scope, .. }
            | PgFrame::Catchup { scope, .. }
            | PgFrame::Heads { scope, .. }
            | PgFrame::Stopped { scope } => scope,
        };
        match self.scopes.get_mut(scope) {
            Some(s) if Self::takes_part(s.span(), node, ctx) => {
                s.receive(ctx, node, creation, frame)
            }
            Some(_) => {
                debug!(peer = %node, %scope, "process-group frame from a node outside the scope's span; ignored");
            }
            None => {
                // Tell an asker that this node does not run the scope, so
                // it knows it has heard from everyone (see `Pg::synced`)
                // instead of waiting for a snapshot that never comes.
                if let PgFrame::Discover { scope, .. } = frame {
                    ctx.send(node, Frame::Pg(PgFrame::Stopped { scope }));
                }
            }
        }
    }

    /// A local process ended: its memberships vanish here and everywhere.
    pub fn exited(&mut self, pid: &Pid, ctx: &mut Ctx<'_>) {
        for s in self.scopes.values_mut() {
            s.exited(ctx, pid);
        }
    }

    /// Advertises stream heads.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.flush(ctx);
        let Some(t) = self.next_heads else { return };
        if ctx.now < t {
            return;
        }
        self.next_heads = (!self.scopes.is_empty()).then(|| ctx.now + HEADS_INTERVAL);
        for s in self.scopes.values_mut() {
            s.advertise_head(ctx);
        }
    }

    /// When [`Pg::timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Time> {
        self.next_heads
    }
}
