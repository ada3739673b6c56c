//! The writer side of an up session: the queue of encoded frames to one
//! peer, used by every send to that peer.

use std::sync::atomic::{AtomicUsize, Ordering};
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
