//! Sizes of the entries a node replicates, checked where they enter (the
//! library calls), so that no entry exists that could not be replicated.

/// The longest name, process-group name or scope name, in bytes (OTP's
/// atom limit).
pub const MAX_NAME_BYTES: usize = 255;

/// The default largest metadata of a name or a membership, in bytes
/// (64 KiB); see [`NodeCore::set_max_meta`](crate::NodeCore::set_max_meta).
pub const DEFAULT_MAX_META: usize = 64 * 1024;

/// The most memberships one process may hold in one group (it joined that
/// many times). A snapshot names a count per process, a few bytes for any
/// number of memberships: a receiver refuses a snapshot above this, so a
/// peer cannot make it allocate billions of entries.
pub const MAX_JOINS: u32 = 65_536;

/// `Err((len, max))` when `s` is longer than [`MAX_NAME_BYTES`].
pub(crate) fn name(s: &str) -> Result<(), (usize, usize)> {
    if s.len() > MAX_NAME_BYTES {
        Err((s.len(), MAX_NAME_BYTES))
    } else {
        Ok(())
    }
}

/// `Err((len, max))` when `meta` is longer than `max`.
pub(crate) fn meta(meta: Option<&[u8]>, max: usize) -> Result<(), (usize, usize)> {
    match meta {
        Some(m) if m.len() > max => Err((m.len(), max)),
        _ => Ok(()),
    }
}
