//! The process-group API of the node core: each call runs the [`Pg`](crate::pg::Pg)
//! operation with the node's context and queues its effects.

use std::sync::Arc;

use bytes::Bytes;

use super::NodeCore;
use crate::pg::{Group, PgError, ScopeView, Span};
use crate::pid::Pid;
use crate::time::Time;

/// The process-group API of the node core.
impl NodeCore {
    /// Starts a scope (idempotent); returns its published view.
    pub fn pg_start_scope(&mut self, scope: &str, now: Time) -> Arc<ScopeView> {
        self.with_pg(now, |pg, ctx| pg.start_scope(scope, ctx))
    }

    /// Starts a scope replicating over `span` (idempotent).
    pub fn pg_start_scope_with(&mut self, scope: &str, span: Span, now: Time) -> Arc<ScopeView> {
        self.with_pg(now, |pg, ctx| pg.start_scope_with(scope, span, ctx))
    }

    /// Starts a scope over `span`, unless its name is longer than
    /// [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES).
    pub fn pg_try_start_scope_with(
        &mut self,
        scope: &str,
        span: Span,
        now: Time,
    ) -> Result<Arc<ScopeView>, PgError> {
        self.with_pg(now, |pg, ctx| pg.try_start_scope_with(scope, span, ctx))
    }

    /// Stops a scope.
    pub fn pg_stop_scope(&mut self, scope: &str, now: Time) -> bool {
        self.with_pg(now, |pg, ctx| pg.stop_scope(scope, ctx))
    }

    /// Joins local `pids` to `group` in `scope`.
    pub fn pg_join(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        meta: Option<Bytes>,
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.join(scope, group, pids, meta, ctx))
    }

    /// Removes one membership of each of `pids` from `group`.
    pub fn pg_leave(
        &mut self,
        scope: &str,
        group: &str,
        pids: &[Pid],
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.leave(scope, group, pids, ctx))
    }

    /// Updates the metadata of a local pid's memberships.
    pub fn pg_update_meta(
        &mut self,
        scope: &str,
        group: &str,
        pid: &Pid,
        meta: Option<Bytes>,
        now: Time,
    ) -> Result<(), PgError> {
        self.with_pg(now, |pg, ctx| pg.update_meta(scope, group, pid, meta, ctx))
    }

    /// Subscribes to changes of a scope or group.
    pub fn pg_monitor(
        &mut self,
        scope: &str,
        group: Option<&str>,
        sub: u64,
    ) -> Result<Vec<(Group, Vec<Pid>)>, PgError> {
        self.pg.monitor(scope, group, sub)
    }

    /// Ends a subscription.
    pub fn pg_demonitor(&mut self, scope: &str, sub: u64) -> bool {
        self.pg.demonitor(scope, sub)
    }
}
