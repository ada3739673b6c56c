//! An in-memory network for tests: named hosts, listeners, and links that
//! can be partitioned (one way or both), healed, made lossy or slow.
//!
//! A partitioned link drops frames silently and refuses new connections,
//! like a network that stops delivering while TCP still looks open: the
//! nodes notice through missing ticks, as they would in production.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::{Connection, Listener, Transport};
use crate::core::proto::DEFAULT_MAX_FRAME;

#[derive(Debug, Clone, Copy, Default)]
struct Rule {
    blocked: bool,
    drop: f64,
    delay: Duration,
}

struct Link {
    a: String,
    b: String,
    cancel: CancellationToken,
}

struct State {
    listeners: HashMap<String, (String, mpsc::UnboundedSender<Connection>)>,
    next_port: u32,
    rules: HashMap<(String, String), Rule>,
    links: Vec<Link>,
    rng: StdRng,
    max_frame: usize,
}

/// An in-memory network shared by many [`MemTransport`] hosts.
#[derive(Clone)]
pub struct MemNetwork {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemNetwork")
    }
}

impl Default for MemNetwork {
    fn default() -> Self {
        MemNetwork::with_seed(0)
    }
}

impl MemNetwork {
    /// A network whose random drops follow `seed`.
    pub fn with_seed(seed: u64) -> Self {
        MemNetwork {
            state: Arc::new(Mutex::new(State {
                listeners: HashMap::new(),
                next_port: 1,
                rules: HashMap::new(),
                links: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
                max_frame: DEFAULT_MAX_FRAME,
            })),
        }
    }

    /// The transport of host `name`; its listeners are reached at `name:PORT`.
    pub fn host(&self, name: &str) -> MemTransport {
        MemTransport {
            net: self.clone(),
            host: name.to_string(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("mem network lock"))
    }

    fn rule(&self, from: &str, to: &str, f: impl FnOnce(&mut Rule)) {
        self.with(|s| {
            f(s.rules
                .entry((from.to_string(), to.to_string()))
                .or_default())
        });
    }

    /// Cuts every link between a host of `left` and a host of `right`, both
    /// ways: frames are dropped and new connections refused until healed.
    pub fn partition(&self, left: &[&str], right: &[&str]) {
        for a in left {
            for b in right {
                self.rule(a, b, |r| r.blocked = true);
                self.rule(b, a, |r| r.blocked = true);
            }
        }
    }

    /// Cuts the link from `from` to `to` only.
    pub fn block_one_way(&self, from: &str, to: &str) {
        self.rule(from, to, |r| r.blocked = true);
    }

    /// Drops each frame from `from` to `to` with probability `p`.
    pub fn set_drop(&self, from: &str, to: &str, p: f64) {
        self.rule(from, to, |r| r.drop = p);
    }

    /// Delays each frame from `from` to `to` by `d` (order is kept).
    pub fn set_delay(&self, from: &str, to: &str, d: Duration) {
        self.rule(from, to, |r| r.delay = d);
    }

    /// Removes every partition, drop rate and delay.
    pub fn heal(&self) {
        self.with(|s| s.rules.clear());
    }

    /// Closes the open connections between hosts `a` and `b` (both see EOF).
    pub fn disconnect(&self, a: &str, b: &str) {
        self.with(|s| {
            s.links.retain(|l| {
                let hit = (l.a == a && l.b == b) || (l.a == b && l.b == a);
                if hit {
                    l.cancel.cancel();
                }
                !hit && !l.cancel.is_cancelled()
            })
        });
    }

    /// Sets the largest frame delivered; longer ones end the connection.
    pub fn set_max_frame(&self, max: usize) {
        self.with(|s| s.max_frame = max);
    }

    /// Carries frames from `from` to `to`, applying the link rules as each
    /// frame passes.
    fn pump(
        &self,
        from: String,
        to: String,
        mut rx: mpsc::UnboundedReceiver<Bytes>,
        mut tx: mpsc::UnboundedSender<io::Result<Bytes>>,
        cancel: CancellationToken,
    ) {
        let net = self.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = cancel.cancelled() => break,
                    f = rx.next() => match f { Some(f) => f, None => break },
                };
                let (rule, roll, max) = net.with(|s| {
                    let rule = s
                        .rules
                        .get(&(from.clone(), to.clone()))
                        .copied()
                        .unwrap_or_default();
                    (rule, s.rng.random::<f64>(), s.max_frame)
                });
                if rule.blocked || (rule.drop > 0.0 && roll < rule.drop) {
                    continue;
                }
                if !rule.delay.is_zero() {
                    tokio::time::sleep(rule.delay).await;
                }
                if frame.len() > max {
                    let _ = tx
                        .send(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "frame size too big",
                        )))
                        .await;
                    break;
                }
                if tx.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
            cancel.cancel();
        });
    }
}

/// One host's view of a [`MemNetwork`].
#[derive(Debug, Clone)]
pub struct MemTransport {
    net: MemNetwork,
    host: String,
}

struct MemListener {
    addr: String,
    rx: mpsc::UnboundedReceiver<Connection>,
    net: MemNetwork,
}

impl Drop for MemListener {
    fn drop(&mut self) {
        let addr = self.addr.clone();
        self.net.with(|s| s.listeners.remove(&addr));
    }
}

impl Listener for MemListener {
    fn local_addr(&self) -> String {
        self.addr.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            self.rx
                .next()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "network gone"))
        })
    }
}

fn half(
    remote_addr: String,
    out: mpsc::UnboundedSender<Bytes>,
    inc: mpsc::UnboundedReceiver<io::Result<Bytes>>,
) -> Connection {
    Connection {
        remote_addr,
        sink: Box::pin(out.sink_map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))),
        stream: Box::pin(inc),
        identity: None,
        // The network checks its own max frame size on every frame.
        limit: super::FrameLimit::new(usize::MAX),
    }
}

impl Transport for MemTransport {
    fn listen(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let net = self.net.clone();
        let host = self.host.clone();
        let asked = addr.to_string();
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded();
            let addr = net.with(|s| {
                let port = match asked.rsplit_once(':') {
                    Some((_, "0")) | None => {
                        s.next_port += 1;
                        s.next_port.to_string()
                    }
                    Some((_, p)) => p.to_string(),
                };
                let addr = format!("{host}:{port}");
                if s.listeners.contains_key(&addr) {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, addr));
                }
                s.listeners.insert(addr.clone(), (host.clone(), tx));
                Ok(addr)
            })?;
            Ok(Box::new(MemListener { addr, rx, net }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<Connection>> {
        let net = self.net.clone();
        let me = self.host.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            let found = net.with(|s| {
                let (host, tx) = s.listeners.get(&addr)?.clone();
                let blocked = s
                    .rules
                    .get(&(me.clone(), host.clone()))
                    .is_some_and(|r| r.blocked)
                    || s.rules
                        .get(&(host.clone(), me.clone()))
                        .is_some_and(|r| r.blocked);
                Some((host, tx, blocked))
            });
            let Some((host, accept_tx, blocked)) = found else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on {addr}"),
                ));
            };
            if blocked {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} unreachable (partitioned)"),
                ));
            }
            let cancel = CancellationToken::new();
            let (d_out, d_out_rx) = mpsc::unbounded();
            let (d_in_tx, d_in) = mpsc::unbounded();
            let (a_out, a_out_rx) = mpsc::unbounded();
            let (a_in_tx, a_in) = mpsc::unbounded();
            net.pump(me.clone(), host.clone(), d_out_rx, a_in_tx, cancel.clone());
            net.pump(host.clone(), me.clone(), a_out_rx, d_in_tx, cancel.clone());
            net.with(|s| {
                s.links.retain(|l| !l.cancel.is_cancelled());
                s.links.push(Link {
                    a: me.clone(),
                    b: host.clone(),
                    cancel,
                })
            });
            let port = net.with(|s| {
                s.next_port += 1;
                s.next_port
            });
            accept_tx
                .unbounded_send(half(format!("{me}:{port}"), a_out, a_in))
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("{addr} stopped listening"),
                    )
                })?;
            Ok(half(addr, d_out, d_in))
        })
    }
}
