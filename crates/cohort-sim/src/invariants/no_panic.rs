//! No node core panics, whatever the inputs.
//!
//! The check is done by the runner, which runs every seed under
//! `catch_unwind` and reports a panic as a violation of this invariant;
//! this file names the invariant and turns a panic payload into words.

use std::any::Any;

use super::Invariant;
use crate::sim::Sim;

/// No panic anywhere in a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPanic;

impl Invariant for NoPanic {
    fn name(&self) -> &'static str {
        "no_panic"
    }

    fn always(&self, _sim: &Sim) -> Result<(), String> {
        // A panic unwinds out of the run; there is nothing left to look at here.
        Ok(())
    }
}

/// The message of a panic payload.
pub fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
