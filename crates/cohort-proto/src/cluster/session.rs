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
        let expect = c.whom();
        let reason = DownReason::ConnectionClosed(why.clone());
        // Tell the driver too, so it releases what it holds for the connection.
        fx.push(Effect::Close { conn, reason: why });
        self.drop_conn(conn, reason, now, fx, up);
        if !was_up {
            if let Some(name) = expect {
                self.schedule_reconnect(&name, now);
            }
        }
        self.pump_dials(now, fx);
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
        let Some(c) = self.remove_conn(conn) else {
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
                self.peers_gen += 1;
                self.stats.sessions_down += 1;
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
                    self.unlearn(&node);
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
        self.set_state(
            conn,
            State::Up {
                node: node.clone(),
                creation,
            },
        );
        let c = self.conns.get_mut(&conn).expect("present");
        c.last_heard = now;
        let reqs = std::mem::take(&mut c.reqs);
        let on_purpose = c.on_purpose();
        info!(node = %self.me, peer = %node, creation, addr = %c.addr, "node up");
        self.peers.insert(node.clone(), Peer::new(conn, creation));
        self.peers_gen += 1;
        // A node that reached us before anyone told us of it is news for
        // the nodes we pass news to.
        let fresh = !self.known.contains_key(&node);
        // A node we were waiting to redial is back: the network may have
        // healed, so the others we wait for are tried soon too.
        let returned = self.known.get(&node).is_some_and(|k| k.attempts > 0);
        if let Some(addr) = listen.clone() {
            if fresh && self.cfg.mesh {
                let news = vec![PeerInfo {
                    name: node.clone(),
                    addr: addr.clone(),
                }];
                self.spread(&node, news, fx);
            }
            self.learn(
                node.clone(),
                Known {
                    addr,
                    attempts: 0,
                    next_try: None,
                },
            );
        } else if let Some(k) = self.known.get_mut(&node) {
            k.attempts = 0;
            self.set_redial(&node, None);
        }
        if returned {
            self.hurry_reconnects(now);
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
        self.stats.sessions_up += 1;
        up.push(Upcall::PeerUp {
            node: node.clone(),
            creation,
        });
        // A session opened on purpose introduces this node and its peers
        // to the other side, which answers with its own; sessions with nodes
        // heard of exchange nothing (both sides already know what they
        // learned from the introduction), and the digests in place of ticks
        // catch whatever a race left out. So each node hears of a new node
        // about once, not from every peer.
        if on_purpose || self.introduce_to.contains(&node) {
            self.introduce(&node, fx);
        }
    }

    /// Brings the redial of every node waiting for one forward to within
    /// the shortest backoff (keeping its jitter, so both sides of a healed
    /// split do not all dial at once). Of two nodes, the one with the
    /// smaller name dials first; the other's redial comes half a shortest
    /// backoff later, when it mostly finds the session up (or the
    /// handshake under way) and skips it, so a healed pair costs one
    /// handshake, not two crossing ones and a refusal. It still dials,
    /// should the first dial not get through.
    pub(super) fn hurry_reconnects(&mut self, now: Time) {
        let soon = self.cfg.backoff_min;
        let waiting: Vec<(Time, NodeName)> = self.redials.iter().cloned().collect();
        for (t, node) in waiting {
            let second = if self.me > node { 0.5 } else { 0.0 };
            let at = now + soon.mul_f64(second + self.rng.random_range(0.0..1.0));
            if at < t {
                self.set_redial(&node, Some(at));
            }
        }
    }

    /// Sends `node` our [`Frame::Introduce`] once its session is up (at
    /// once if it is).
    pub(super) fn introduce(&mut self, node: &NodeName, fx: &mut Effects) {
        if !self.cfg.mesh {
            return;
        }
        if !self.peers.contains_key(node) {
            self.introduce_to.insert(node.clone());
            return;
        }
        self.introduce_to.remove(node);
        let list = self.peer_list(Some(node));
        let p = self.peers.get_mut(node).expect("up");
        p.introduction = true;
        let conn = p.conn;
        fx.push(Effect::Send {
            conn,
            frame: Frame::Introduce(list),
        });
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
        self.unlearn(node);
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
        self.redials.clear();
        self.first_redial = None;
        self.dial_queue.clear();
        self.queued.clear();
        self.view = View::of(&self.me);
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
        if let Some(r) = self.first_redial {
            t = t.min(r);
        }
        debug_assert_eq!(self.first_redial, self.redials.first().map(|(t, _)| *t));
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
            let mut told = Vec::new();
            for (&id, c) in &self.conns {
                match &c.state {
                    State::Up { node, .. } => {
                        if now.since(c.last_heard) > self.cfg.peer_timeout {
                            dead.push((id, DownReason::Timeout));
                        } else {
                            let frame = self.tick_frame(node);
                            if matches!(frame, Frame::Digest { .. }) {
                                told.push(node.clone());
                            }
                            fx.push(Effect::Send { conn: id, frame });
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
            if self.paced_dials > 0 {
                // A dial that has taken a tick interval no longer holds
                // its place against `max_dials`.
                let mut released = 0;
                for c in self.conns.values_mut() {
                    if c.paced && now.since(c.opened) >= self.cfg.tick_interval {
                        c.paced = false;
                        released += 1;
                    }
                }
                self.paced_dials -= released;
            }
            for node in told {
                if let Some(p) = self.peers.get_mut(&node) {
                    p.told = Some(self.view);
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
                let expect = c.whom();
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
            .redials
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, n)| (n.clone(), self.known[n].addr.clone()))
            .collect();
        for (name, addr) in due {
            self.set_redial(&name, None);
            if self.peers.contains_key(&name) || self.blocked.contains(&name) {
                continue;
            }
            let handshaking = self.handshaking_with(&name);
            if handshaking {
                // Another handshake with it is under way; look again later
                // in case that one fails (it may be a stale half-open one).
                self.schedule_reconnect(&name, now);
            } else {
                self.dial(addr, Some(name), None, false, now, fx);
            }
        }
        self.pump_dials(now, fx);
    }
}
