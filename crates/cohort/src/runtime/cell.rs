//! The lock around the node core, and the bookkeeping needed to carry out
//! its effects (connection tasks, dials, connect requests, subscribers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::events::NodeEvent;
use super::link::Outbox;
use crate::core::pid::NodeName;
use crate::core::time::Time;
use crate::core::{ConnId, ConnectError, NodeCore, ReqId};
use crate::transport::{FrameLimit, Transport};

pub(super) struct ConnTasks {
    pub(super) out: Outbox,
    pub(super) authenticated: Arc<AtomicBool>,
    pub(super) limit: FrameLimit,
    pub(super) reader: JoinHandle<()>,
    pub(super) writer: JoinHandle<()>,
    /// What went over the connection.
    pub(super) traffic: Arc<super::link::ConnTraffic>,
}

/// The core and the bookkeeping needed to carry out its effects.
pub(crate) struct Engine {
    pub(crate) core: NodeCore,
    pub(super) conns: HashMap<ConnId, ConnTasks>,
    pub(super) dialing: HashMap<ConnId, JoinHandle<()>>,
    pub(super) reqs: HashMap<ReqId, oneshot::Sender<Result<NodeName, ConnectError>>>,
    pub(super) next_req: ReqId,
    pub(super) subscribers: Vec<super::stream::EventSender<NodeEvent>>,
    pub(super) closing_writers: Vec<JoinHandle<()>>,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) stopped: bool,
}

/// The lock around the engine plus what the tasks need to reach it.
pub(crate) struct EngineCell {
    pub(super) engine: Mutex<Engine>,
    /// Wakes the timer task when the core's next timeout moves earlier
    /// (held changes set one, see `FLUSH_REST`).
    pub(super) timer: Arc<Notify>,
    /// The core's next timeout (µs since `epoch`), as of the last call:
    /// written under the lock, read by the timer task without it.
    pub(super) deadline: AtomicU64,
    /// The core's flag telling that it holds changes
    /// ([`NodeCore::held_flag`]): the fast send path flushes them first.
    pub(crate) held: Arc<AtomicBool>,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) epoch: Instant,
    pub(super) dial_timeout: Duration,
    pub(super) max_queued: usize,
}

impl EngineCell {
    pub(crate) fn new(
        core: NodeCore,
        transport: Arc<dyn Transport>,
        epoch: Instant,
        dial_timeout: Duration,
        max_queued: usize,
    ) -> Self {
        let held = core.held_flag();
        let deadline = AtomicU64::new(core.next_timeout().0);
        EngineCell {
            engine: Mutex::new(Engine {
                core,
                conns: HashMap::new(),
                dialing: HashMap::new(),
                reqs: HashMap::new(),
                next_req: 1,
                subscribers: Vec::new(),
                closing_writers: Vec::new(),
                tasks: Vec::new(),
                stopped: false,
            }),
            timer: Arc::new(Notify::new()),
            deadline,
            held,
            transport,
            epoch,
            dial_timeout,
            max_queued,
        }
    }

    pub(super) fn now(&self) -> Time {
        Time(Instant::now().duration_since(self.epoch).as_micros() as u64)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock is a bug; keep serving rather than
        // poisoning every later call.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks the engine stopped and stops its tasks; returns the writers of the
/// connections still open, to flush or abort.
pub(super) fn stop_tasks(e: &mut Engine) -> Vec<JoinHandle<()>> {
    e.stopped = true;
    for t in e.tasks.drain(..) {
        t.abort();
    }
    for (_, d) in e.dialing.drain() {
        d.abort();
    }
    let mut writers = Vec::new();
    for (_, c) in e.conns.drain() {
        c.reader.abort();
        writers.push(c.writer);
    }
    for (_, r) in e.reqs.drain() {
        let _ = r.send(Err(ConnectError::ShuttingDown));
    }
    writers
}

pub(super) fn notify(e: &mut Engine, ev: NodeEvent) {
    e.subscribers.retain(|s| s.send(ev.clone()).is_ok());
}
