//! The runtime side of process groups: the `Node` API and the execution of
//! process-group effects. To be built.

use std::sync::Arc;

use super::engine::Engine;
use super::Shared;
use crate::core::pg::PgEffect;

/// Carries out one process-group effect, under the engine lock.
pub(crate) fn execute(shared: &Arc<Shared>, engine: &mut Engine, fx: PgEffect) {
    let _ = (shared, engine);
    match fx {}
}
