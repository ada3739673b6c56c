//! Sessions once up: session start, sending, ticks and liveness, closing,
//! disconnect and shutdown.

use super::*;

impl Cluster {
    /// The transport reports the connection closed (by the peer or an error).
    pub fn closed(
        &mut self,
        conn: ConnId,
        why: String,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let was_up = matches!(c.state, State::Up { .. });
        if !was_up {
            debug!(node = %self.me, conn, addr = %c.addr, %why, "connection closed during handshake");
        }
        let expect = c.expect.clone();
        let reason = DownReason::ConnectionClosed(why.clone());
        // Tell the driver too, so it releases what it holds for the connection.
        fx.push(Effect::Close { conn, reason: why });
        self.drop_conn(conn, reason, now, fx, up);
        if !was_up {
            if let Some(name) = expect {
                self.schedule_reconnect(&name, now);
            }
        }
    }

    /// Removes a connection, answering its requests, taking its peer down.
    pub(super) fn drop_conn(
        &mut self,
        conn: ConnId,
        reason: DownReason,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for req in c.reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(match &reason {
                    DownReason::ConnectionClosed(why) => ConnectError::Closed(why.clone()),
                    other => ConnectError::Closed(other.to_string()),
                }),
            });
        }
        if let State::Up { node, creation } = c.state {
            if self.peers.get(&node).is_some_and(|p| p.conn == conn) {
                self.peers.remove(&node);
                info!(node = %self.me, peer = %node, %reason, "node down");
                let reconnect = reason.reconnects();
                fx.push(Effect::NodeDown {
                    node: node.clone(),
                    creation,
                    reason: reason.clone(),
                });
                up.push(Upcall::PeerDown {
                    node: node.clone(),
                    creation,
                    reason,
                });
                if reconnect && self.vis.in_own(&node) {
                    self.schedule_reconnect(&node, now);
                } else if !reconnect {
                    self.known.remove(&node);
                }
            }
        }
        if !self.probes.is_empty() {
            self.probes_on_close(conn, now, fx, up);
        }
    }

    /// Closes a connection on this side.
    pub(super) fn close(
        &mut self,
        conn: ConnId,
        reason: DownReason,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        if self.conns.contains_key(&conn) {
            fx.push(Effect::Close {
                conn,
                reason: reason.to_string(),
            });
            self.drop_conn(conn, reason, now, fx, up);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn session_up(
        &mut self,
        conn: ConnId,
        node: NodeName,
        creation: u32,
        listen: Option<String>,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = self.conns.get_mut(&conn).expect("present");
        c.state = State::Up {
            node: node.clone(),
            creation,
        };
        c.last_heard = now;
        let reqs = std::mem::take(&mut c.reqs);
        info!(node = %self.me, peer = %node, creation, addr = %c.addr, "node up");
        self.peers.insert(node.clone(), Peer { conn, creation });
        if let Some(addr) = listen.clone() {
            self.known.insert(
                node.clone(),
                Known {
                    addr,
                    attempts: 0,
                    next_try: None,
                },
            );
        } else if let Some(k) = self.known.get_mut(&node) {
            k.attempts = 0;
            k.next_try = None;
        }
        fx.push(Effect::NodeUp {
            node: node.clone(),
            creation,
            conn,
            visible: !self.vis.is_hidden(&node),
        });
        for req in reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Ok(node.clone()),
            });
        }
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].0 == node {
                let (_, req, _) = self.waiting.swap_remove(i);
                fx.push(Effect::ConnectDone {
                    req,
                    result: Ok(node.clone()),
                });
            } else {
                i += 1;
            }
        }
        up.push(Upcall::PeerUp {
            node: node.clone(),
            creation,
        });
        // Every new peer learns where our peers are; a receiver dials only
        // its own global group, and keeps other addresses for queries, so
        // other groups and hidden sessions are never meshed.
        if self.cfg.mesh {
            let others: Vec<PeerInfo> = self
                .peers
                .keys()
                .filter(|n| **n != node)
                .filter_map(|n| {
                    self.known.get(n).map(|k| PeerInfo {
                        name: n.clone(),
                        addr: k.addr.clone(),
                    })
                })
                .collect();
            if !others.is_empty() {
                fx.push(Effect::Send {
                    conn,
                    frame: Frame::Peers(others),
                });
            }
            if let Some(addr) = listen {
                let news = Frame::Peers(vec![PeerInfo {
                    name: node.clone(),
                    addr,
                }]);
                for (n, p) in &self.peers {
                    if *n != node && self.vis.in_own(n) {
                        fx.push(Effect::Send {
                            conn: p.conn,
                            frame: news.clone(),
                        });
                    }
                }
            }
        }
    }

    /// Sends one frame to every up peer among `nodes` (one effect, so the
    /// driver encodes it once).
    pub fn broadcast<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = &'a NodeName>,
        frame: Frame,
        fx: &mut Effects,
    ) {
        let conns: Vec<ConnId> = nodes
            .into_iter()
            .filter_map(|n| self.peers.get(n).map(|p| p.conn))
            .collect();
        match conns.len() {
            0 => {}
            1 => fx.push(Effect::Send {
                conn: conns[0],
                frame,
            }),
            _ => fx.push(Effect::Broadcast { conns, frame }),
        }
    }

    /// Sends a session frame to an up peer; false when it is not up.
    pub fn send(&mut self, node: &NodeName, frame: Frame, fx: &mut Effects) -> bool {
        match self.peers.get(node) {
            Some(p) => {
                fx.push(Effect::Send {
                    conn: p.conn,
                    frame,
                });
                true
            }
            None => false,
        }
    }

    /// Ends the session with `node` on purpose: the peer is told (so it does
    /// not reconnect) and forgotten. False when it was not connected.
    pub fn disconnect(
        &mut self,
        node: &NodeName,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) -> bool {
        self.known.remove(node);
        let Some(p) = self.peers.get(node) else {
            return false;
        };
        let conn = p.conn;
        fx.push(Effect::Send {
            conn,
            frame: Frame::Bye,
        });
        self.close(conn, DownReason::Disconnected, now, fx, up);
        true
    }

    /// Says goodbye to every peer and closes every connection.
    pub fn shutdown(&mut self, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        self.shutting_down = true;
        self.known.clear();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if matches!(self.conns[&conn].state, State::Up { .. }) {
                fx.push(Effect::Send {
                    conn,
                    frame: Frame::Bye,
                });
            }
            self.close(conn, DownReason::Shutdown, now, fx, up);
        }
        for (_, req, _) in self.waiting.drain(..) {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(ConnectError::ShuttingDown),
            });
        }
    }

    /// The next time [`Cluster::timeout`] has something to do.
    pub fn next_timeout(&self) -> Time {
        let mut t = self.next_tick;
        for p in self.probes.values() {
            t = t.min(p.deadline);
        }
        for k in self.known.values() {
            if let Some(n) = k.next_try {
                t = t.min(n);
            }
        }
        t
    }

    /// Sends ticks, declares silent peers down, ends stale handshakes,
    /// redials known nodes and expires waiting requests.
    pub fn timeout(&mut self, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        if !self.probes.is_empty() {
            self.probes_expired(now, fx, up);
        }
        if now >= self.next_tick {
            self.next_tick = now + self.cfg.tick_interval;
            let mut dead = Vec::new();
            for (&id, c) in &self.conns {
                match &c.state {
                    State::Up { .. } => {
                        if now.since(c.last_heard) > self.cfg.peer_timeout {
                            dead.push((id, DownReason::Timeout));
                        } else {
                            fx.push(Effect::Send {
                                conn: id,
                                frame: Frame::Tick,
                            });
                        }
                    }
                    State::Dialing => {}
                    _ if now.since(c.opened) > self.cfg.handshake_timeout => {
                        dead.push((
                            id,
                            DownReason::ConnectionClosed("handshake timed out".into()),
                        ));
                    }
                    _ => {}
                }
            }
            for (id, reason) in dead {
                if matches!(reason, DownReason::Timeout) {
                    warn!(node = %self.me, addr = %self.conns[&id].addr, "peer silent for longer than the peer timeout");
                } else {
                    self.stats.timeouts += 1;
                    debug!(node = %self.me, addr = %self.conns[&id].addr, "handshake timed out");
                }
                let c = &self.conns[&id];
                let expect = c.expect.clone().or_else(|| c.peer_name().cloned());
                let was_up = matches!(c.state, State::Up { .. });
                self.close(id, reason, now, fx, up);
                if !was_up {
                    if let Some(n) = expect {
                        self.schedule_reconnect(&n, now);
                    }
                }
            }
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].2 <= now {
                    let (_, req, _) = self.waiting.swap_remove(i);
                    fx.push(Effect::ConnectDone {
                        req,
                        result: Err(ConnectError::Timeout),
                    });
                } else {
                    i += 1;
                }
            }
        }
        if self.shutting_down {
            return;
        }
        let due: Vec<(NodeName, String)> = self
            .known
            .iter()
            .filter(|(_, k)| k.next_try.is_some_and(|t| t <= now))
            .map(|(n, k)| (n.clone(), k.addr.clone()))
            .collect();
        for (name, addr) in due {
            self.known.get_mut(&name).expect("present").next_try = None;
            if self.peers.contains_key(&name) || self.blocked.contains(&name) {
                continue;
            }
            let handshaking = self.handshaking_with(&name);
            if handshaking {
                // Another handshake with it is under way; look again later
                // in case that one fails (it may be a stale half-open one).
                self.schedule_reconnect(&name, now);
            } else {
                self.dial(addr, Some(name), None, now, fx);
            }
        }
    }
}
