//! Locks that a panicked holder does not close to everyone else.

use std::sync::Mutex;

/// Locks `m`, also when an earlier holder panicked: the lock is taken all
/// the same rather than the poison passed on to every later caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
