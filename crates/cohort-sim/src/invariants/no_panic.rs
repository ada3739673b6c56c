//! No node core panics, whatever the inputs.
//!
//! The check is done by the runner, which runs every seed under
//! `catch_unwind` and reports a panic as a violation of this invariant;
//! this file names the invariant and turns a panic payload into words.

use std::any::Any;

use super::invariant::Invariant;

/// No panic anywhere in a run.
pub const NO_PANIC: Invariant = Invariant {
    name: "no_panic",
    always: None,
    eventually: None,
};

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
