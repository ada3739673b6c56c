//! Finding peers: dialing, accepting, the transitive mesh (peer lists),
//! reconnection with backoff, and blocks for fault drills.

use super::*;

impl Cluster {
    /// Asks for a connection to `addr`; `req` is answered with
    /// [`Effect::ConnectDone`] once a session is up or the attempt failed.
    pub fn connect(&mut self, addr: String, req: Option<ReqId>, now: Time, fx: &mut Effects) {
        if self.shutting_down {
            if let Some(req) = req {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(ConnectError::ShuttingDown),
                });
            }
            return;
        }
        self.dial(addr, None, req, now, fx);
    }

    pub(super) fn dial(
        &mut self,
        addr: String,
        expect: Option<NodeName>,
        req: Option<ReqId>,
        now: Time,
        fx: &mut Effects,
    ) {
        let conn = self.alloc_conn();
        debug!(node = %self.me, conn, %addr, ?expect, "dialing");
        self.conns.insert(
            conn,
            Conn {
                dir: Direction::Outbound,
                addr: addr.clone(),
                opened: now,
                last_heard: now,
                state: State::Dialing,
                expect,
                reqs: req.into_iter().collect(),
            },
        );
        fx.push(Effect::Dial { conn, addr });
    }

    /// The transport accepted a connection from `addr`; returns its id.
    pub fn accepted(&mut self, addr: String, now: Time, fx: &mut Effects) -> ConnId {
        let conn = self.alloc_conn();
        self.conns.insert(
            conn,
            Conn {
                dir: Direction::Inbound,
                addr,
                opened: now,
                last_heard: now,
                state: State::AwaitHello,
                expect: None,
                reqs: Vec::new(),
            },
        );
        if self.shutting_down {
            self.refuse(conn, RefuseReason::ShuttingDown, fx);
        } else if self.inbound_handshakes() > self.cfg.max_handshakes {
            self.stats.refused_busy += 1;
            let addr = self.conns[&conn].addr.clone();
            self.log_refusal(
                "busy".into(),
                &addr,
                &format!(
                    "refusing connection: {} handshakes already in progress (max_handshakes)",
                    self.cfg.max_handshakes
                ),
                now,
            );
            self.refuse(conn, RefuseReason::Busy, fx);
        }
        conn
    }

    /// An outbound connection is open: start the handshake.
    pub fn dialed(&mut self, conn: ConnId, now: Time, fx: &mut Effects) {
        let nonce = self.nonce();
        let hello = self.my_hello(nonce);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !matches!(c.state, State::Dialing) {
            return;
        }
        c.state = State::HelloSent { nonce };
        c.opened = now;
        c.last_heard = now;
        fx.push(Effect::Send {
            conn,
            frame: Frame::Hello(hello),
        });
    }

    /// An outbound connection could not be opened.
    pub fn dial_failed(&mut self, conn: ConnId, why: String, now: Time, fx: &mut Effects) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        debug!(node = %self.me, conn, addr = %c.addr, %why, "dial failed");
        for req in c.reqs {
            fx.push(Effect::ConnectDone {
                req,
                result: Err(ConnectError::Io(format!("{}: {why}", c.addr))),
            });
        }
        if let Some(name) = c.expect {
            self.schedule_reconnect(&name, now);
        }
    }

    /// Whether a connection to `name` is being opened or authenticated.
    /// Inbound connections not yet authenticated (the one just accepted among them).
    fn inbound_handshakes(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.dir == Direction::Inbound && !matches!(c.state, State::Up { .. }))
            .count()
    }

    pub(super) fn handshaking_with(&self, name: &NodeName) -> bool {
        self.conns
            .values()
            .any(|c| c.expect.as_ref() == Some(name) || c.peer_name() == Some(name))
    }

    pub(super) fn on_peers(&mut self, list: Vec<PeerInfo>, now: Time, fx: &mut Effects) {
        if !self.cfg.mesh || self.shutting_down {
            return;
        }
        for PeerInfo { name, addr } in list {
            if name == self.me || self.peers.contains_key(&name) || self.blocked.contains(&name) {
                continue;
            }
            if !self.vis.in_own(&name) {
                // Remember where it is (for queries), but never mesh with it.
                self.known.entry(name).or_insert(Known {
                    addr,
                    attempts: 0,
                    next_try: None,
                });
                continue;
            }
            let busy = self.handshaking_with(&name);
            self.known.entry(name.clone()).or_insert(Known {
                addr: addr.clone(),
                attempts: 0,
                next_try: None,
            });
            if !busy {
                self.dial(addr, Some(name), None, now, fx);
            }
        }
    }

    // ---- control -------------------------------------------------------

    /// Drops and refuses all traffic with `node` until [`Cluster::unblock`].
    pub fn block(&mut self, node: NodeName, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer_name() == Some(&node) || c.expect.as_ref() == Some(&node))
            .map(|(&id, _)| id)
            .collect();
        self.blocked.insert(node);
        for conn in conns {
            self.close(conn, DownReason::Blocked, now, fx, up);
        }
    }

    /// Lifts a block; reconnects at once if the node is known.
    pub fn unblock(&mut self, node: &NodeName, now: Time) -> bool {
        let was = self.blocked.remove(node);
        if let Some(k) = self.known.get_mut(node) {
            k.attempts = 0;
            k.next_try = Some(now);
        }
        was
    }

    pub(super) fn schedule_reconnect(&mut self, node: &NodeName, now: Time) {
        if !self.cfg.reconnect || self.shutting_down {
            return;
        }
        let Some(k) = self.known.get_mut(node) else {
            return;
        };
        let exp = k.attempts.min(16);
        let base = self
            .cfg
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.cfg.backoff_max);
        // Jitter in [base/2, base) keeps both sides of a split from redialing in lockstep.
        let jitter = self.rng.random_range(0.5..1.0);
        k.next_try = Some(now + base.mul_f64(jitter));
        k.attempts = k.attempts.saturating_add(1);
    }

    // ---- time ----------------------------------------------------------
}
