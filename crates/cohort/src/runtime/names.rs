//! The runtime side of global names: the `Node` API and the execution of
//! name-service effects. To be built.

use std::sync::Arc;

use super::engine::Engine;
use super::Shared;
use crate::core::names::NamesEffect;

/// Carries out one name-service effect, under the engine lock.
pub(crate) fn execute(shared: &Arc<Shared>, engine: &mut Engine, fx: NamesEffect) {
    let _ = (shared, engine);
    match fx {}
}
