//! The writer side of an up session: the queue of encoded frames to one
//! peer, used by every send to that peer; and the traffic counters of a
//! connection, kept by its reader and writer.

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

/// Frames and bytes exchanged over one connection, and since when it is
/// open: counted by its reader and writer (relaxed atomics of its own, no
/// lock), read by [`Node::peers`](super::Node::peers).
pub(crate) struct ConnTraffic {
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// The other end's address, as the transport gave it.
    pub(crate) remote_addr: String,
    /// When the connection was attached.
    pub(crate) opened: std::time::SystemTime,
}

impl ConnTraffic {
    pub(crate) fn new(remote_addr: String) -> Self {
        ConnTraffic {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            remote_addr,
            opened: std::time::SystemTime::now(),
        }
    }

    pub(crate) fn count_in(&self, n: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self, n: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}
