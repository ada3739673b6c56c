//! The driver task: feeds events into the node core and carries out its
//! effects; plus the per-connection reader and writer tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Link, NodeEvent, Shared};
use crate::core::pid::{ExitReason, NodeName, Pid};
use crate::core::process::{Message, MonitorRef};
use crate::core::proto::Frame;
use crate::core::time::Time;
use crate::core::{ConnId, ConnectError, Effect, NodeCore, ReqId};
use crate::transport::{Connection, Listener, Transport};

/// Everything the driver is told.
pub(crate) enum Cmd {
    Accepted(Connection),
    Dialed {
        conn: ConnId,
        result: std::io::Result<Connection>,
    },
    Frame {
        conn: ConnId,
        frame: Frame,
    },
    Closed {
        conn: ConnId,
        why: String,
    },
    Connect {
        addr: String,
        reply: oneshot::Sender<Result<NodeName, ConnectError>>,
    },
    Disconnect {
        node: NodeName,
        reply: oneshot::Sender<bool>,
    },
    Block {
        node: NodeName,
        reply: oneshot::Sender<()>,
    },
    Unblock {
        node: NodeName,
        reply: oneshot::Sender<bool>,
    },
    Subscribe(mpsc::UnboundedSender<NodeEvent>),
    Spawned(u64),
    Exited(u64, ExitReason),
    Kill(Pid, ExitReason),
    Monitor {
        mref: MonitorRef,
        watcher: u64,
        target: Pid,
    },
    MonitorSent {
        mref: MonitorRef,
        watcher: u64,
        target: Pid,
        conn: ConnId,
    },
    Demonitor {
        watcher: u64,
        mref: MonitorRef,
    },
    Shutdown(Option<oneshot::Sender<()>>),
    Abort(oneshot::Sender<()>),
}

struct ConnTasks {
    tx: mpsc::UnboundedSender<Bytes>,
    authenticated: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct Driver {
    core: NodeCore,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    epoch: Instant,
    dial_timeout: Duration,
    conns: HashMap<ConnId, ConnTasks>,
    /// Outbound connections whose dial is in flight.
    dialing: HashMap<ConnId, JoinHandle<()>>,
    reqs: HashMap<ReqId, oneshot::Sender<Result<NodeName, ConnectError>>>,
    next_req: ReqId,
    subscribers: Vec<mpsc::UnboundedSender<NodeEvent>>,
    closing_writers: Vec<JoinHandle<()>>,
}

pub(crate) fn spawn(
    core: NodeCore,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    listener: Box<dyn Listener>,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    epoch: Instant,
    dial_timeout: Duration,
) {
    let acceptor = tokio::spawn(accept_loop(listener, shared.cmd.clone()));
    let driver = Driver {
        core,
        shared,
        transport,
        epoch,
        dial_timeout,
        conns: HashMap::new(),
        dialing: HashMap::new(),
        reqs: HashMap::new(),
        next_req: 1,
        subscribers: Vec::new(),
        closing_writers: Vec::new(),
    };
    tokio::spawn(driver.run(cmd_rx, acceptor));
}

async fn accept_loop(mut listener: Box<dyn Listener>, cmd: mpsc::UnboundedSender<Cmd>) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                if cmd.send(Cmd::Accepted(conn)).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Driver {
    fn now(&self) -> Time {
        Time(Instant::now().duration_since(self.epoch).as_micros() as u64)
    }

    async fn run(mut self, mut cmd_rx: mpsc::UnboundedReceiver<Cmd>, acceptor: JoinHandle<()>) {
        loop {
            let deadline = self.epoch + self.core.next_timeout().as_duration();
            tokio::select! {
                cmd = cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut next = Some(cmd);
                    // Take what else is queued before looking at timers again.
                    while let Some(cmd) = next.take().or_else(|| cmd_rx.try_recv().ok()) {
                        match cmd {
                            Cmd::Shutdown(reply) => {
                                self.effects();
                                return self.stop(acceptor, reply).await;
                            }
                            Cmd::Abort(reply) => {
                                acceptor.abort();
                                self.abort();
                                let _ = reply.send(());
                                return;
                            }
                            cmd => self.handle(cmd),
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.core.timeout(now);
                }
            }
            self.effects();
        }
        self.stop(acceptor, None).await;
    }

    /// Drops every task and connection without a goodbye.
    fn abort(&mut self) {
        for (_, d) in self.dialing.drain() {
            d.abort();
        }
        for (_, c) in self.conns.drain() {
            c.reader.abort();
            c.writer.abort();
        }
        self.shared.mailboxes.clear();
        self.shared.links.clear();
    }

    async fn stop(mut self, acceptor: JoinHandle<()>, reply: Option<oneshot::Sender<()>>) {
        acceptor.abort();
        let now = self.now();
        self.core.shutdown(now);
        self.effects();
        for (_, d) in self.dialing.drain() {
            d.abort();
        }
        for (_, c) in self.conns.drain() {
            c.reader.abort();
            self.closing_writers.push(c.writer);
        }
        // Let goodbyes reach the peers, but never hang on a stuck socket.
        let writers = std::mem::take(&mut self.closing_writers);
        let _ =
            tokio::time::timeout(Duration::from_secs(1), futures::future::join_all(writers)).await;
        self.shared.mailboxes.clear();
        self.shared.links.clear();
        if let Some(r) = reply {
            let _ = r.send(());
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = self.now();
        match cmd {
            Cmd::Accepted(conn) => {
                let id = self.core.accepted(conn.remote_addr.clone(), now);
                self.attach(id, conn);
            }
            Cmd::Dialed { conn, result } => {
                self.dialing.remove(&conn);
                match result {
                    Ok(c) => {
                        self.attach(conn, c);
                        self.core.dialed(conn, now);
                    }
                    Err(e) => self.core.dial_failed(conn, e.to_string(), now),
                }
            }
            Cmd::Frame { conn, frame } => self.core.frame(conn, frame, now),
            Cmd::Closed { conn, why } => {
                if let Some(c) = self.conns.remove(&conn) {
                    c.reader.abort();
                    c.writer.abort();
                }
                self.core.closed(conn, why, now);
            }
            Cmd::Connect { addr, reply } => {
                let req = self.next_req;
                self.next_req += 1;
                self.reqs.insert(req, reply);
                self.core.connect(addr, Some(req), now);
            }
            Cmd::Disconnect { node, reply } => {
                let r = self.core.disconnect(&node, now);
                let _ = reply.send(r);
            }
            Cmd::Block { node, reply } => {
                self.core.block(node, now);
                let _ = reply.send(());
            }
            Cmd::Unblock { node, reply } => {
                let r = self.core.unblock(&node, now);
                let _ = reply.send(r);
            }
            Cmd::Subscribe(tx) => self.subscribers.push(tx),
            Cmd::Spawned(serial) => self.core.spawned(serial),
            Cmd::Exited(serial, reason) => self.core.exited(serial, reason),
            Cmd::Kill(pid, reason) => self.core.kill(&pid, reason),
            Cmd::Monitor {
                mref,
                watcher,
                target,
            } => self.core.monitor(mref, watcher, &target),
            Cmd::MonitorSent {
                mref,
                watcher,
                target,
                conn,
            } => self.core.monitor_sent(mref, watcher, &target, conn),
            Cmd::Demonitor { watcher, mref } => self.core.demonitor(watcher, mref),
            Cmd::Shutdown(_) | Cmd::Abort(_) => unreachable!("handled by the loop"),
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            match e {
                Effect::Dial { conn, addr } => {
                    let transport = self.transport.clone();
                    let cmd = self.shared.cmd.clone();
                    let timeout = self.dial_timeout;
                    let task = tokio::spawn(async move {
                        let result =
                            match tokio::time::timeout(timeout, transport.connect(&addr)).await {
                                Ok(r) => r,
                                Err(_) => Err(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )),
                            };
                        let _ = cmd.send(Cmd::Dialed { conn, result });
                    });
                    self.dialing.insert(conn, task);
                }
                Effect::Send { conn, frame } => {
                    if let Some(c) = self.conns.get(&conn) {
                        let _ = c.tx.send(frame.encode());
                    }
                }
                Effect::Close { conn, reason } => {
                    if let Some(d) = self.dialing.remove(&conn) {
                        d.abort();
                    }
                    if let Some(c) = self.conns.remove(&conn) {
                        debug!(node = %self.shared.name, conn, %reason, "closing connection");
                        c.reader.abort();
                        // Dropping `tx` lets the writer flush what is queued, then close.
                        self.closing_writers.retain(|w| !w.is_finished());
                        self.closing_writers.push(c.writer);
                    }
                }
                Effect::NodeUp {
                    node,
                    creation,
                    conn,
                } => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.authenticated.store(true, Ordering::Release);
                        self.shared.links.insert(
                            node.clone(),
                            Link {
                                creation,
                                conn,
                                tx: c.tx.clone(),
                            },
                        );
                    }
                    self.notify(NodeEvent::Up { node, creation });
                }
                Effect::NodeDown {
                    node,
                    creation,
                    reason,
                } => {
                    self.shared
                        .links
                        .remove_if(&node, |_, l| l.creation == creation);
                    self.notify(NodeEvent::Down {
                        node,
                        creation,
                        reason,
                    });
                }
                Effect::Deliver { to, msg } => {
                    if let Some(mb) = self.shared.mailboxes.get(&to) {
                        let _ = mb.send(msg);
                    }
                }
                Effect::Kill { serial, reason } => {
                    if let Some((_, mb)) = self.shared.mailboxes.remove(&serial) {
                        let _ = mb.send(Message::Exit { reason });
                    }
                }
                Effect::ConnectDone { req, result } => {
                    if let Some(r) = self.reqs.remove(&req) {
                        let _ = r.send(result);
                    }
                }
            }
        }
    }

    fn notify(&mut self, ev: NodeEvent) {
        self.subscribers.retain(|s| s.send(ev.clone()).is_ok());
    }

    fn attach(&mut self, conn: ConnId, c: Connection) {
        let Connection {
            remote_addr,
            mut sink,
            mut stream,
        } = c;
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let authenticated = Arc::new(AtomicBool::new(false));
        let cmd = self.shared.cmd.clone();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if sink.feed(frame).await.is_err() {
                    return;
                }
                // Batch whatever else is queued into one flush.
                while let Ok(frame) = rx.try_recv() {
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
        let shared = self.shared.clone();
        let auth = authenticated.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                match stream.next().await {
                    None => break "closed by peer".to_string(),
                    Some(Err(e)) => {
                        warn!(node = %shared.name, addr = %remote_addr, error = %e, "bad frame; disconnecting");
                        break format!("bad frame: {e}");
                    }
                    Some(Ok(bytes)) => match Frame::decode(&bytes) {
                        Ok(Frame::Send { to, from, payload }) if auth.load(Ordering::Acquire) => {
                            if to.node() == &shared.name {
                                shared.deliver_local(&to, Message::Data { from, payload });
                            }
                        }
                        Ok(frame) => {
                            if cmd.send(Cmd::Frame { conn, frame }).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!(node = %shared.name, addr = %remote_addr, error = %e, "malformed frame; disconnecting");
                            break e.to_string();
                        }
                    },
                }
            };
            let _ = cmd.send(Cmd::Closed { conn, why });
        });
        self.conns.insert(
            conn,
            ConnTasks {
                tx,
                authenticated,
                reader,
                writer,
            },
        );
    }
}
