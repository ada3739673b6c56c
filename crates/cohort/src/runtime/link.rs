//! The writer side of an up session: the queue of encoded frames to one
//! peer, used by every send to that peer; and the traffic counters of a
//! connection and of the node, kept by the connections' readers and writers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;

use crate::transport::FrameSink;

/// The writer of an up session, for sends that skip the driver.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) creation: u32,
    /// False for hidden sessions (between a hidden global group and another).
    pub(crate) visible: bool,
    pub(crate) out: Outbox,
}

/// The queue of frames to one peer and the connection's sink.
///
/// Frames are queued in order; whoever flushes writes everything queued
/// straight to the sink when nobody else is writing to it (the task that
/// made the frames, once it let go of the engine lock: no hop through the
/// writer task), and otherwise leaves it to the connection's writer task
/// ([`write_loop`]), which also finishes what the socket could not take at
/// once. The writer task ends, after writing everything queued, when the
/// last `Outbox` is dropped (or at the first write error).
pub(crate) struct Outbox {
    pipe: Arc<Pipe>,
}

/// What an `Outbox` and the writer task share.
pub(crate) struct Pipe {
    queue: Mutex<VecDeque<Bytes>>,
    /// Bytes waiting in `queue`.
    queued: AtomicUsize,
    sink: Mutex<SinkState>,
    /// The writer task, parked when there is nothing it must do.
    writer: AtomicWaker,
    /// Live `Outbox`es: none left means close once the queue is written.
    senders: AtomicUsize,
    /// The writer task ended: frames pushed now go nowhere.
    gone: AtomicBool,
    traffic: Arc<ConnTraffic>,
}

struct SinkState {
    sink: FrameSink,
    /// Frames handed to the sink and not flushed yet.
    unflushed: bool,
    /// The sink failed: the connection is done.
    failed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    /// The outbox of a connection whose frames go to `sink`, counted in
    /// `traffic`, and the state its writer task ([`write_loop`]) needs.
    pub(crate) fn new(sink: FrameSink, traffic: Arc<ConnTraffic>) -> (Self, Arc<Pipe>) {
        let pipe = Arc::new(Pipe {
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            sink: Mutex::new(SinkState {
                sink,
                unflushed: false,
                failed: false,
            }),
            writer: AtomicWaker::new(),
            senders: AtomicUsize::new(1),
            gone: AtomicBool::new(false),
            traffic,
        });
        (Outbox { pipe: pipe.clone() }, pipe)
    }

    /// Queues a frame and leaves its writing to the writer task, which
    /// writes whatever else was queued meanwhile with it (a burst of sends
    /// becomes one write); false when the connection is gone.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let ok = self.queue(frame);
        self.pipe.writer.wake();
        ok
    }

    /// Queues a frame without writing it: a [`Outbox::flush`] must follow
    /// (the engine flushes once it let go of its lock). False when the
    /// connection is gone.
    pub(crate) fn queue(&self, frame: Bytes) -> bool {
        if self.pipe.gone.load(Ordering::Acquire) {
            return false;
        }
        self.pipe.queued.fetch_add(frame.len(), Ordering::Relaxed);
        lock(&self.pipe.queue).push_back(frame);
        true
    }

    /// Writes everything queued now, from the calling task, if nobody else
    /// is writing; whatever it cannot finish (another writer at work, a
    /// full socket, an error) is left to the writer task.
    pub(crate) fn flush(&self) {
        let p = &*self.pipe;
        let mut st = match p.sink.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return p.writer.wake(),
        };
        // A no-op waker: if the sink is not ready, the writer task polls
        // it again with its own.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if !matches!(p.drain(&mut st, &mut cx), Poll::Ready(Ok(()))) {
            drop(st);
            p.writer.wake();
        }
    }

    /// Whether two outboxes are the same connection's.
    pub(crate) fn same(&self, o: &Outbox) -> bool {
        Arc::ptr_eq(&self.pipe, &o.pipe)
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.pipe.queued.load(Ordering::Relaxed)
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.pipe.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            pipe: self.pipe.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.pipe.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the writer writes what is queued and closes.
            self.pipe.writer.wake();
        }
    }
}

impl Pipe {
    /// Hands every queued frame to the sink and flushes it: `Ready(Ok)`
    /// when all is written, `Pending` when the sink is not ready (`cx` is
    /// woken when it is), `Ready(Err)` when the connection failed.
    fn drain(&self, st: &mut SinkState, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if st.failed {
            return Poll::Ready(Err(()));
        }
        let r = loop {
            if lock(&self.queue).is_empty() {
                break Poll::Ready(Ok(()));
            }
            match st.sink.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => break Poll::Ready(Err(())),
                Poll::Pending => break Poll::Pending,
            }
            let Some(frame) = lock(&self.queue).pop_front() else {
                break Poll::Ready(Ok(()));
            };
            let n = frame.len();
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.traffic.count_out(n);
            if st.sink.as_mut().start_send(frame).is_err() {
                break Poll::Ready(Err(()));
            }
            st.unflushed = true;
        };
        let r = match r {
            Poll::Ready(Ok(())) if st.unflushed => match st.sink.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    st.unflushed = false;
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(_)) => Poll::Ready(Err(())),
                Poll::Pending => Poll::Pending,
            },
            r => r,
        };
        if r.is_ready() && r != Poll::Ready(Ok(())) {
            st.failed = true;
        }
        r
    }
}

/// The writer task of a connection: writes what the senders left queued
/// (woken by them), until the last [`Outbox`] is dropped and everything
/// queued is written, then closes the sink; or until a write fails.
pub(crate) async fn write_loop(pipe: Arc<Pipe>) {
    let closing = std::future::poll_fn(|cx| {
        // Registered before looking: a frame queued after the look wakes
        // this task again.
        pipe.writer.register(cx.waker());
        let mut st = lock(&pipe.sink);
        match pipe.drain(&mut st, cx) {
            Poll::Ready(Ok(())) if pipe.senders.load(Ordering::Acquire) == 0 => {
                if lock(&pipe.queue).is_empty() {
                    Poll::Ready(true)
                } else {
                    // Queued meanwhile: look again.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
            Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
            Poll::Ready(Err(())) => Poll::Ready(false),
        }
    })
    .await;
    pipe.gone.store(true, Ordering::Release);
    if closing {
        let _ = std::future::poll_fn(|cx| lock(&pipe.sink).sink.as_mut().poll_close(cx)).await;
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
