//! The writer side of an up session: the queue of encoded frames to one
//! peer, used by every send to that peer; and the traffic counters of a
//! connection and of the node, kept by the connections' readers and writers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// The writer of an up session, for sends that skip the driver.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) creation: u32,
    /// False for hidden sessions (between a hidden global group and another).
    pub(crate) visible: bool,
    pub(crate) out: Outbox,
}

/// The queue of frames to one peer, with the bytes waiting in it.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Bytes>) -> (Self, Arc<AtomicUsize>) {
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: queued.clone(),
            },
            queued,
        )
    }

    /// Queues a frame; false when the connection is gone.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        self.queued.fetch_add(frame.len(), Ordering::Relaxed);
        self.tx.send(frame).is_ok()
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Frames and bytes sent and received: four relaxed atomics, counted
/// without a lock by a connection's reader and writer.
#[derive(Default)]
pub(crate) struct Counts {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The figures of [`Counts`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CountsSnapshot {
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Counts {
    fn count_in(&self, n: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn count_out(&self, n: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The figures now (each read on its own: a frame counted meanwhile
    /// may show in one and not yet in another).
    pub(crate) fn snapshot(&self) -> CountsSnapshot {
        CountsSnapshot {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// What went over one connection, and since when it is open: each frame
/// is counted here and in the node's totals at once, by the connection's
/// reader and writer; read by [`Node::peers`](super::Node::peers).
pub(crate) struct ConnTraffic {
    /// This connection's figures.
    pub(crate) counts: Counts,
    /// The node's totals (shared by all its connections).
    node: Arc<Traffic>,
    /// The other end's address, as the transport gave it.
    pub(crate) remote_addr: String,
    /// When the connection was attached.
    pub(crate) opened: std::time::SystemTime,
}

impl ConnTraffic {
    pub(crate) fn new(remote_addr: String, node: Arc<Traffic>) -> Self {
        ConnTraffic {
            counts: Counts::default(),
            node,
            remote_addr,
            opened: std::time::SystemTime::now(),
        }
    }

    /// Counts a received frame of `n` bytes, here and node-wide.
    pub(crate) fn count_in(&self, n: usize) {
        self.counts.count_in(n);
        self.node.counts.count_in(n);
    }

    /// Counts a sent frame of `n` bytes, here and node-wide.
    pub(crate) fn count_out(&self, n: usize) {
        self.counts.count_out(n);
        self.node.counts.count_out(n);
    }
}

/// A node's traffic with all its peers, and the frames it shed.
#[derive(Default)]
pub(crate) struct Traffic {
    /// Frames and bytes over every connection.
    pub(crate) counts: Counts,
    /// Sheddable frames dropped for peers that did not keep up.
    pub(crate) shed: AtomicU64,
}
