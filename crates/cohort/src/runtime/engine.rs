//! The engine: the node core behind one lock, and the tasks around it.
//!
//! Whoever has something for the core (an API call, a connection reader, the
//! timer task) takes the lock, feeds the core, and carries out the effects
//! before letting go. Effects never block: frames go into per-connection
//! writer queues, messages into mailboxes, dials into spawned tasks. Writes
//! are therefore serialised per node, as in an Erlang scope process, without
//! a round trip through a driver task; reads use the published views and
//! never take the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::cell::{notify, stop_tasks, ConnTasks, Engine};
use super::events::NodeEvent;
use super::link::{ConnTraffic, Link, Outbox};
use super::shared::Shared;
use crate::core::pid::{NodeName, Pid};
use crate::core::process::Message;
use crate::core::proto::{DecodeError, Frame};
use crate::core::route::{route, route_received, Route};
use crate::core::time::Time;
use crate::core::{ConnId, ConnectError, Effect, NodeCore, FLUSH_REST};
use crate::transport::{Connection, Listener, PeerIdentity};

/// Starts the accept loop and the timer task of a node.
pub(crate) fn start(shared: &Arc<Shared>, listener: Box<dyn Listener>) {
    let accept = tokio::spawn(accept_loop(listener, Arc::downgrade(shared)));
    let timer = tokio::spawn(timer_loop(
        Arc::downgrade(shared),
        shared.engine.timer.clone(),
    ));
    let mut e = shared.engine.lock();
    e.tasks.push(accept);
    e.tasks.push(timer);
}

async fn accept_loop(mut listener: Box<dyn Listener>, shared: std::sync::Weak<Shared>) {
    loop {
        let conn = listener.accept().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match conn {
            Ok(conn) => shared.with(|core, now, e| {
                let id = core.accepted(conn.remote_addr.clone(), now);
                e.push(AfterCall::Attach(id, conn));
            }),
            Err(e) => {
                warn!(node = %shared.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Calls [`NodeCore::timeout`] when the core asks: ticks, retries, and
/// the held changes (process-group joins, eventual names) going out in
/// batches. Woken early when an input moves the core's deadline earlier,
/// except for [`FLUSH_REST`] after it sent held changes: those of the same
/// burst are not due before then anyway, and a burst does not wake this
/// task once per batch (another deadline waits at most that long).
async fn timer_loop(shared: std::sync::Weak<Shared>, wake: Arc<Notify>) {
    let deadline = |s: &Shared| {
        s.engine.epoch + Duration::from_micros(s.engine.deadline.load(Ordering::Acquire))
    };
    loop {
        let Some(s) = shared.upgrade() else { return };
        let notified = wake.notified();
        let sleep = tokio::time::sleep_until(deadline(&s));
        // Do not keep the node alive while sleeping.
        drop(s);
        tokio::select! {
            biased;
            _ = sleep => {
                let Some(s) = shared.upgrade() else { return };
                let flushes = s.engine.held.load(Ordering::Acquire);
                s.with(|core, now, _| core.timeout(now));
                if flushes {
                    let rest = (Instant::now() + FLUSH_REST).min(deadline(&s));
                    drop(s);
                    tokio::time::sleep_until(rest).await;
                }
            }
            _ = notified => {}
        }
    }
}

/// Why a connection proven by a TLS certificate must be closed: `frame`
/// is the peer's hello (the peer dialed) or challenge (this node dialed),
/// and the certificate is not valid for the host of the node name it claims.
/// Checked before the core sees the frame, so no handshake answer goes out
/// and no session comes up.
fn refused_identity(id: &PeerIdentity, frame: &Frame) -> Option<String> {
    match frame {
        Frame::Hello(h) | Frame::Challenge(h) => id.check_node(h.name.as_str()).err(),
        _ => None,
    }
}

/// Counts a received frame on its connection (and the node) and decodes it.
fn count_and_decode(conn: &ConnTraffic, bytes: &[u8]) -> Result<Frame, DecodeError> {
    conn.count_in(bytes.len());
    Frame::decode(bytes)
}

/// Work that needs the `Arc<Shared>` and so happens right after the core call.
pub(crate) enum AfterCall {
    Attach(ConnId, Connection),
}

impl Shared {
    /// Runs `f` on the core under the lock, then carries out its effects.
    pub(crate) fn with<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut NodeCore, Time, &mut Vec<AfterCall>) -> R,
    ) -> R {
        let mut pending = Vec::new();
        let mut e = self.engine.lock();
        let now = self.engine.now();
        let before = self.engine.deadline.load(Ordering::Relaxed);
        let r = f(&mut e.core, now, &mut pending);
        for p in pending {
            match p {
                AfterCall::Attach(id, conn) => self.attach(&mut e, id, conn),
            }
        }
        self.run_effects(&mut e);
        let next = e.core.next_timeout().0;
        if next != before {
            self.engine.deadline.store(next, Ordering::Release);
            if next < before {
                self.engine.timer.notify_one();
            }
        }
        r
    }

    /// Registers a `connect` request and returns its id.
    pub(crate) fn connect_request(
        self: &Arc<Self>,
        addr: String,
        reply: oneshot::Sender<Result<NodeName, ConnectError>>,
    ) {
        let mut e = self.engine.lock();
        if e.stopped {
            let _ = reply.send(Err(ConnectError::ShuttingDown));
            return;
        }
        let req = e.next_req;
        e.next_req += 1;
        e.reqs.insert(req, reply);
        drop(e);
        self.with(|core, now, _| core.connect(addr, Some(req), now));
    }

    /// Runs `task` until the node stops (it is aborted with the node's own
    /// tasks); a stopped node aborts it at once.
    pub(crate) fn add_task(&self, task: JoinHandle<()>) {
        let mut e = self.engine.lock();
        if e.stopped {
            task.abort();
        } else {
            e.tasks.push(task);
        }
    }

    /// Adds a node-event subscriber.
    pub(crate) fn subscribe(&self, tx: super::stream::EventSender<NodeEvent>) {
        self.engine.lock().subscribers.push(tx);
    }

    /// A dial finished.
    fn dialed(self: &Arc<Self>, conn: ConnId, result: std::io::Result<Connection>) {
        self.with(|core, now, pending| {
            match result {
                Ok(c) => {
                    pending.push(AfterCall::Attach(conn, c));
                    core.dialed(conn, now);
                }
                Err(e) => core.dial_failed(conn, e.to_string(), now),
            };
        });
    }

    fn run_effects(self: &Arc<Self>, e: &mut Engine) {
        while let Some(fx) = e.core.poll_effect() {
            match fx {
                Effect::Dial { conn, addr } => {
                    let transport = self.engine.transport.clone();
                    let timeout = self.engine.dial_timeout;
                    let weak = Arc::downgrade(self);
                    let task = tokio::spawn(async move {
                        let result =
                            match tokio::time::timeout(timeout, transport.connect(&addr)).await {
                                Ok(r) => r,
                                Err(_) => Err(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )),
                            };
                        if let Some(s) = weak.upgrade() {
                            s.dialed(conn, result);
                        }
                    });
                    e.dialing.insert(conn, task);
                }
                Effect::Send { conn, frame } => {
                    self.enqueue(e, std::iter::once(conn), &frame);
                }
                Effect::Broadcast { conns, frame } => self.enqueue(e, conns, &frame),
                Effect::Close { conn, reason } => {
                    if let Some(d) = e.dialing.remove(&conn) {
                        d.abort();
                    }
                    if let Some(c) = e.conns.remove(&conn) {
                        debug!(node = %self.name, conn, %reason, "closing connection");
                        c.reader.abort();
                        // Dropping `tx` lets the writer flush what is queued, then close.
                        e.closing_writers.retain(|w| !w.is_finished());
                        e.closing_writers.push(c.writer);
                    }
                }
                Effect::NodeUp {
                    node,
                    creation,
                    conn,
                    visible,
                } => {
                    if let Some(c) = e.conns.get(&conn) {
                        c.authenticated.store(true, Ordering::Release);
                        // Authenticated: frames up to the transport's max.
                        c.limit.set(usize::MAX);
                        self.links.insert(
                            node.clone(),
                            Link {
                                creation,
                                visible,
                                out: c.out.clone(),
                            },
                        );
                    }
                    notify(e, NodeEvent::Up { node, creation });
                }
                Effect::NodeDown {
                    node,
                    creation,
                    reason,
                } => {
                    self.links.remove_if(&node, |_, l| l.creation == creation);
                    notify(
                        e,
                        NodeEvent::Down {
                            node,
                            creation,
                            reason,
                        },
                    );
                }
                Effect::Deliver { to, msg } => {
                    if let Some(mb) = self.mailboxes.get(&to) {
                        let _ = mb.send(msg);
                    }
                }
                Effect::Kill { serial, reason } => {
                    if let Some((_, mb)) = self.mailboxes.remove(&serial) {
                        let _ = mb.send(Message::Exit { reason });
                    }
                }
                Effect::ConnectDone { req, result } => {
                    if let Some(r) = e.reqs.remove(&req) {
                        let _ = r.send(result);
                    }
                }
                Effect::Pg(fx) => self.pg_subs.apply(fx),
                Effect::Names(fx) => self.names.apply(fx),
                Effect::Groups(fx) => self.global_group_reqs.apply(fx),
            }
        }
    }

    /// Queues `frame` (encoded once) on each connection. A sheddable frame
    /// is dropped for a peer whose queue is over the limit: the peer is not
    /// keeping up and will find the gap and ask again (snapshot or missing
    /// deltas), instead of this node queueing without limit.
    fn enqueue(&self, e: &Engine, conns: impl IntoIterator<Item = ConnId>, frame: &Frame) {
        let sheddable = frame.is_sheddable();
        let mut bytes = None;
        for conn in conns {
            let Some(c) = e.conns.get(&conn) else {
                continue;
            };
            if sheddable && c.out.queued() > self.engine.max_queued {
                self.traffic.shed.fetch_add(1, Ordering::Relaxed);
            } else {
                c.out
                    .push(bytes.get_or_insert_with(|| frame.encode()).clone());
            }
        }
    }

    fn attach(self: &Arc<Self>, e: &mut Engine, conn: ConnId, c: Connection) {
        let Connection {
            remote_addr,
            mut sink,
            mut stream,
            identity,
            limit,
        } = c;
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let (out, queued) = Outbox::new(tx);
        let authenticated = Arc::new(AtomicBool::new(false));
        let traffic = Arc::new(ConnTraffic::new(remote_addr.clone(), self.traffic.clone()));
        let mine = traffic.clone();
        let writer = tokio::spawn(async move {
            let count = |n: usize| {
                queued.fetch_sub(n, Ordering::Relaxed);
                mine.count_out(n);
            };
            while let Some(frame) = rx.recv().await {
                count(frame.len());
                if sink.feed(frame).await.is_err() {
                    return;
                }
                // Batch whatever else is queued into one flush.
                while let Ok(frame) = rx.try_recv() {
                    count(frame.len());
                    if sink.feed(frame).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let weak = Arc::downgrade(self);
        let auth = authenticated.clone();
        let mine = traffic.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                let item = stream.next().await;
                let Some(shared) = weak.upgrade() else { return };
                match item {
                    None => break "closed by peer".to_string(),
                    Some(Err(err)) => {
                        warn!(node = %shared.name, addr = %remote_addr, error = %err, "bad frame; disconnecting");
                        break format!("bad frame: {err}");
                    }
                    Some(Ok(bytes)) => match count_and_decode(&mine, &bytes) {
                        Ok(Frame::Send { to, from, payload }) if auth.load(Ordering::Acquire) => {
                            // The hot path: straight into the mailbox, where
                            // the core would deliver it.
                            if route_received(&shared.name, shared.creation, &to) == Route::Local {
                                shared.deliver_local(&to, Message::Data { from, payload });
                            }
                        }
                        Ok(frame) => {
                            if let Some(why) = identity
                                .as_ref()
                                .and_then(|id| refused_identity(id, &frame))
                            {
                                warn!(node = %shared.name, addr = %remote_addr, "refusing {remote_addr}: {why}");
                                break why;
                            }
                            shared.with(|core, now, _| core.frame(conn, frame, now))
                        }
                        Err(err) => {
                            warn!(node = %shared.name, addr = %remote_addr, error = %err, "malformed frame; disconnecting");
                            break err.to_string();
                        }
                    },
                }
            };
            if let Some(shared) = weak.upgrade() {
                shared.with(|core, now, _| core.closed(conn, why, now));
            }
        });
        e.conns.insert(
            conn,
            ConnTasks {
                out,
                authenticated,
                limit,
                reader,
                writer,
                traffic,
            },
        );
    }

    /// Leaves the cluster: goodbyes are queued and flushed (for at most a
    /// second), then every task stops.
    pub(crate) async fn shutdown(self: &Arc<Self>) {
        if self.engine.lock().stopped {
            return;
        }
        self.with(|core, now, _| core.shutdown(now));
        let writers = {
            let mut e = self.engine.lock();
            let mut writers = std::mem::take(&mut e.closing_writers);
            writers.extend(stop_tasks(&mut e));
            writers
        };
        let _ =
            tokio::time::timeout(Duration::from_secs(1), futures::future::join_all(writers)).await;
        self.mailboxes.clear();
        self.links.clear();
        self.names.stop();
    }

    /// Stops every task at once, without a goodbye.
    pub(crate) fn abort(&self) {
        let writers = {
            let mut e = self.engine.lock();
            let mut w = std::mem::take(&mut e.closing_writers);
            w.extend(stop_tasks(&mut e));
            w
        };
        for w in writers {
            w.abort();
        }
        self.mailboxes.clear();
        self.links.clear();
        self.names.stop();
    }
}

impl Shared {
    /// Sends a message without the engine lock, routed as the core routes
    /// it ([`route`]); only held changes, which go out first, take the lock.
    pub(crate) fn send(self: &Arc<Self>, to: &Pid, from: Option<Pid>, payload: Bytes) {
        let link = (to.node() != &self.name)
            .then(|| self.links.get(to.node()))
            .flatten();
        let held = self.engine.held.load(Ordering::Acquire);
        let peer_creation = |_: &NodeName| link.as_ref().map(|l| l.creation);
        let frame = |from, payload| Frame::Send {
            to: to.clone(),
            from,
            payload,
        };
        match route(&self.name, self.creation, to, peer_creation, held) {
            Route::Local => {
                self.deliver_local(to, Message::Data { from, payload });
            }
            Route::Peer { flush_first: false } => {
                if let Some(l) = link {
                    l.out.push(frame(from, payload).encode());
                }
            }
            Route::Peer { flush_first: true } => {
                // Changes are held: the core sends them, then the message.
                // Not under the map's guard: carrying out the flush may
                // change the links.
                drop(link);
                self.with(|core, _, _| core.send(to, from, payload));
            }
            Route::Drop => {}
        }
    }
}
