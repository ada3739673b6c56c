//! The recent deltas a scope keeps, so that a peer that missed a few can
//! catch up without a snapshot. Bounded both by the memberships they change
//! and by their size: metadata can make a few deltas large.

use std::collections::VecDeque;

use super::wire::{Op, Ops};

/// How many membership changes the log may hold together (a delta
/// batches several).
pub(super) const LOG_CAP: usize = 4096;

/// How many bytes (as [`op_size`] counts them) the log may hold.
pub(super) const LOG_BYTES: usize = 4 << 20;

/// About how many bytes an op takes in a frame (an upper bound of its
/// encoding).
pub(super) fn op_size(op: &Op) -> usize {
    match op {
        Op::Join {
            group,
            serials,
            meta,
        } => group.len() + serials.len() * 10 + meta.as_ref().map_or(0, |m| m.len()) + 16,
        Op::Leave { group, serials } => group.len() + serials.len() * 15 + 16,
        Op::Meta { group, meta, .. } => group.len() + meta.as_ref().map_or(0, |m| m.len()) + 26,
    }
}

/// How many memberships `ops` change.
fn weight(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Join { serials, .. } => serials.len(),
            Op::Leave { serials, .. } => serials.len(),
            Op::Meta { .. } => 1,
        })
        .sum()
}

/// The last deltas of a scope's own stream, oldest first.
#[derive(Debug)]
pub(super) struct DeltaLog {
    deltas: VecDeque<(u64, Ops, usize)>,
    /// Memberships the deltas change (bounded by `max_members`).
    members: usize,
    /// Their size (bounded by `max_bytes`).
    bytes: usize,
    max_members: usize,
    max_bytes: usize,
}

impl Default for DeltaLog {
    fn default() -> Self {
        DeltaLog::new(LOG_CAP, LOG_BYTES)
    }
}

impl DeltaLog {
    /// An empty log with these bounds.
    pub(super) fn new(max_members: usize, max_bytes: usize) -> Self {
        DeltaLog {
            deltas: VecDeque::new(),
            members: 0,
            bytes: 0,
            max_members,
            max_bytes,
        }
    }

    /// Keeps delta `seq`, dropping the oldest ones past either bound (a
    /// delta over a bound on its own is not kept at all).
    pub(super) fn push(&mut self, seq: u64, ops: Ops) {
        let size = ops.iter().map(op_size).sum::<usize>();
        self.members += weight(&ops);
        self.bytes += size;
        self.deltas.push_back((seq, ops, size));
        while self.members > self.max_members || self.bytes > self.max_bytes {
            let Some((_, old, size)) = self.deltas.pop_front() else {
                break;
            };
            self.members -= weight(&old);
            self.bytes -= size;
        }
    }

    /// The first sequence number kept (`next` when the log is empty).
    pub(super) fn first(&self, next: u64) -> u64 {
        self.deltas.front().map(|(s, _, _)| *s).unwrap_or(next)
    }

    /// The deltas after `seq`, oldest first, with their sizes.
    pub(super) fn after(&self, seq: u64) -> impl Iterator<Item = (u64, &Ops, usize)> {
        self.deltas
            .iter()
            .filter(move |(s, _, _)| *s > seq)
            .map(|(s, ops, size)| (*s, ops, *size))
    }

    /// Bytes held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn join(meta: usize, serials: usize) -> Ops {
        Arc::new(vec![Op::Join {
            group: "g".into(),
            serials: (0..serials as u64).collect(),
            meta: (meta > 0).then(|| Bytes::from(vec![0u8; meta])),
        }])
    }

    #[test]
    fn large_metadata_is_bounded_by_bytes_not_only_by_count() {
        let mut log = DeltaLog::default();
        // 200 joins with 64 KiB of metadata: 200 memberships, ~12.8 MB.
        for seq in 1..=200 {
            log.push(seq, join(64 * 1024, 1));
        }
        assert!(log.bytes() <= LOG_BYTES, "{} bytes kept", log.bytes());
        let kept: Vec<u64> = log.after(0).map(|(s, _, _)| s).collect();
        assert_eq!(*kept.last().unwrap(), 200, "the newest is kept");
        assert!(kept.len() < 200 && kept.len() >= 60, "{} kept", kept.len());
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
        assert_eq!(log.first(201), kept[0]);
    }

    #[test]
    fn many_small_changes_are_bounded_by_count() {
        let mut log = DeltaLog::default();
        for seq in 1..=100 {
            log.push(seq, join(0, 100));
        }
        // 10,000 memberships in all; at most LOG_CAP kept.
        let kept: usize = log.after(0).count();
        assert_eq!(kept, LOG_CAP / 100);
        assert_eq!(log.first(101), 101 - kept as u64);
    }

    #[test]
    fn a_delta_over_a_bound_on_its_own_is_not_kept() {
        let mut log = DeltaLog::new(10, 1000);
        log.push(1, join(0, 1));
        log.push(2, join(2000, 1));
        assert_eq!(log.after(0).count(), 0);
        assert_eq!(log.first(3), 3);
        assert_eq!(log.bytes(), 0);
    }
}
