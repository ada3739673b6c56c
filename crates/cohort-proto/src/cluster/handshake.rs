//! The handshake: hello, challenge, response, ack (cookie proofs both
//! ways), refusals and their rate-limited logs, and simultaneous connects
//! settled on one connection.

use super::*;

/// The same refused handshake is logged at most once in this time.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// How many kinds of refusal are remembered for that.
const REFUSAL_LOG_KEEP: usize = 1024;

impl Cluster {
    pub(super) fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut n);
        n
    }

    pub(super) fn my_hello(&self, nonce: Nonce) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            name: self.me.clone(),
            creation: self.creation,
            listen: self.listen.clone(),
            nonce,
        }
    }

    // ---- connection lifecycle ------------------------------------------

    /// Sends `Refuse` and closes; the connection never was up.
    /// Logs a refused handshake when it first happens, then at most once
    /// a minute with the number of repeats in between (a node with the
    /// wrong cookie retries every few seconds, forever). `key` says which
    /// refusals count as the same.
    /// `what` is the text of the log line, formatted only when a line is
    /// written (a busy node refuses many handshakes and logs few).
    pub(super) fn log_refusal(
        &mut self,
        key: &str,
        addr: &str,
        what: impl FnOnce() -> String,
        now: Time,
    ) {
        match self.refusals.get_mut(key) {
            Some((last, since)) if now.since(*last) < REFUSAL_LOG_EVERY => {
                *since += 1;
                debug!(node = %self.me, %addr, "{} (repeated; logged once a minute)", what());
            }
            Some((last, since)) => {
                let what = what();
                warn!(node = %self.me, %addr, repeated = *since, "{what} (again; {since} more since the last report)");
                *last = now;
                *since = 0;
            }
            None => {
                warn!(node = %self.me, %addr, "{}", what());
                if self.refusals.len() >= REFUSAL_LOG_KEEP {
                    let oldest = self
                        .refusals
                        .iter()
                        .min_by_key(|(_, (t, _))| *t)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        self.refusals.remove(&k);
                    }
                }
                self.refusals.insert(key.to_owned(), (now, 0));
            }
        }
    }

    pub(super) fn refuse(&mut self, conn: ConnId, reason: RefuseReason, fx: &mut Effects) {
        let err = ConnectError::Refused(reason.clone());
        self.refuse_with(conn, reason, err, fx)
    }

    /// As [`refuse`](Self::refuse), telling this node's own `connect`
    /// callers `err`.
    pub(super) fn refuse_with(
        &mut self,
        conn: ConnId,
        reason: RefuseReason,
        err: ConnectError,
        fx: &mut Effects,
    ) {
        if let Some(c) = self.remove_conn(conn) {
            fx.push(Effect::Send {
                conn,
                frame: Frame::Refuse {
                    reason: reason.clone(),
                },
            });
            fx.push(Effect::Close {
                conn,
                reason: format!("refused: {reason}"),
            });
            for req in c.reqs {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(err.clone()),
                });
            }
        }
    }

    /// Closes a handshake that lost a tie-break or found the peer already
    /// up; its requests wait for the peer to come up another way.
    pub(super) fn abandon(&mut self, conn: ConnId, peer: &NodeName, now: Time, fx: &mut Effects) {
        if let Some(c) = self.remove_conn(conn) {
            fx.push(Effect::Close {
                conn,
                reason: "duplicate connection".into(),
            });
            if c.on_purpose() {
                self.introduce(peer, fx);
            }
            self.park(peer, c.reqs, now, fx);
        }
    }

    /// Answers `reqs` once `peer` is up (now, or within the handshake timeout).
    pub(super) fn park(&mut self, peer: &NodeName, reqs: Vec<ReqId>, now: Time, fx: &mut Effects) {
        for req in reqs {
            if self.peers.contains_key(peer) {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Ok(peer.clone()),
                });
            } else {
                self.waiting
                    .push((peer.clone(), req, now + self.cfg.handshake_timeout));
            }
        }
    }

    /// A `Pong` on an up session: the newcomers that claimed its name are refused.
    pub(super) fn on_pong(&mut self, conn: ConnId, id: u64, now: Time, fx: &mut Effects) {
        let refused: Vec<ConnId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.old == conn && p.id == id)
            .map(|(&c, _)| c)
            .collect();
        for newcomer in refused {
            self.probes.remove(&newcomer);
            self.stats.refused_alive += 1;
            if let Some(c) = self.conns.get(&newcomer) {
                let claimed = c.peer_name().map(|n| n.to_string()).unwrap_or_default();
                let key = format!("{claimed} alive {}", c.addr);
                let addr = c.addr.clone();
                self.log_refusal(
                    &key,
                    &addr,
                    || format!("refusing connection claiming the name {claimed}: a node with that name is connected and answered a liveness probe"),
                    now,
                );
            }
            self.refuse(newcomer, RefuseReason::Alive, fx);
        }
    }

    /// The connection `conn` is gone: newcomers probing it go ahead, and a
    /// newcomer that was waiting is forgotten.
    pub(super) fn probes_on_close(
        &mut self,
        conn: ConnId,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        self.probes.remove(&conn);
        let go: Vec<(ConnId, Role)> = self
            .probes
            .iter()
            .filter(|(_, p)| p.old == conn)
            .map(|(&c, p)| (c, p.side))
            .collect();
        for (newcomer, side) in go {
            self.probes.remove(&newcomer);
            self.stats.replaced += 1;
            self.probe_failed(newcomer, side, now, fx, up);
        }
    }

    /// Probes whose time is up: the old session is deemed dead and the
    /// newcomer replaces it.
    pub(super) fn probes_expired(&mut self, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        let due: Vec<(ConnId, ConnId, Role)> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&c, p)| (c, p.old, p.side))
            .collect();
        for (newcomer, old, side) in due {
            self.probes.remove(&newcomer);
            if let Some(c) = self.conns.get(&old) {
                warn!(node = %self.me, addr = %c.addr, "no answer to a liveness probe; a new creation replaces the session");
            }
            // The handshake closes the old session (Restarted) when it
            // completes.
            self.probe_failed(newcomer, side, now, fx, up);
        }
    }

    // ---- frames --------------------------------------------------------

    pub(super) fn on_hello(&mut self, conn: ConnId, h: Hello, fx: &mut Effects) {
        let addr = self.conns[&conn].addr.clone();
        if h.version != PROTOCOL_VERSION {
            warn!(node = %self.me, %addr, peer = %h.name, "refusing connection: the peer speaks protocol version {}, this node version {PROTOCOL_VERSION}", h.version);
            return self.refuse(conn, RefuseReason::Version(PROTOCOL_VERSION), fx);
        }
        if h.name == self.me {
            warn!(node = %self.me, %addr, "refusing connection from a node with our own name");
            return self.refuse(conn, RefuseReason::SameName, fx);
        }
        if self.blocked.contains(&h.name) {
            debug!(node = %self.me, %addr, peer = %h.name, "refusing blocked node");
            return self.refuse(conn, RefuseReason::Blocked, fx);
        }
        let nonce = self.nonce();
        let challenge = self.my_hello(nonce);
        self.set_state(conn, State::ChallengeSent { peer: h, nonce });
        fx.push(Effect::Send {
            conn,
            frame: Frame::Challenge(challenge),
        });
    }

    /// Another handshake with `peer` that should be kept instead of `conn`.
    pub(super) fn rival_wins(&self, conn: ConnId, peer: &NodeName) -> Option<ConnId> {
        let mine = &self.conns[&conn];
        self.named(peer).find_map(|(id, other)| {
            if id == conn
                || other.peer_name() != Some(peer)
                || matches!(other.state, State::Up { .. })
            {
                return None;
            }
            // A handshake with another incarnation of the peer is stale
            // (that incarnation crashed or restarted): the newer
            // connection wins, whatever its direction.
            if let (Some(a), Some(b)) = (mine.peer_creation(), other.peer_creation()) {
                if a != b {
                    return (id > conn).then_some(id);
                }
            }
            let keep_other = match (mine.dir, other.dir) {
                // Both dialed by the same node: the older one is kept.
                (a, b) if a == b => id < conn,
                // Otherwise the connection dialed by the smaller name is kept.
                (Direction::Outbound, Direction::Inbound) => *peer < self.me,
                (Direction::Inbound, Direction::Outbound) => self.me < *peer,
                _ => unreachable!(),
            };
            keep_other.then_some(id)
        })
    }

    /// Handshakes with `peer` other than `conn` (to close when `conn` wins).
    pub(super) fn rivals(&self, conn: ConnId, peer: &NodeName) -> Vec<ConnId> {
        self.named(peer)
            .filter(|(id, c)| {
                *id != conn && c.peer_name() == Some(peer) && !matches!(c.state, State::Up { .. })
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// The handshake transcript, this node playing `me_as` with `my_nonce`
    /// against `peer`'s hello.
    pub(super) fn transcript<'a>(
        &'a self,
        me_as: Role,
        peer: &'a Hello,
        my_nonce: &'a Nonce,
    ) -> Transcript<'a> {
        let (mine, theirs) = (
            (&self.me, self.creation, my_nonce),
            (&peer.name, peer.creation, &peer.nonce),
        );
        let (d, a) = match me_as {
            Role::Dialer => (mine, theirs),
            Role::Acceptor => (theirs, mine),
        };
        Transcript {
            dialer: d.0,
            dialer_creation: d.1,
            dialer_nonce: d.2,
            acceptor: a.0,
            acceptor_creation: a.1,
            acceptor_nonce: a.2,
        }
    }

    pub(super) fn on_challenge(&mut self, conn: ConnId, h: Hello, now: Time, fx: &mut Effects) {
        let c = &self.conns[&conn];
        let addr = c.addr.clone();
        if h.version != PROTOCOL_VERSION {
            warn!(node = %self.me, %addr, peer = %h.name, "not connecting: the peer speaks protocol version {}, this node version {PROTOCOL_VERSION}", h.version);
            let err = ConnectError::Version {
                ours: PROTOCOL_VERSION,
                theirs: h.version,
            };
            return self.refuse_with(conn, RefuseReason::Version(PROTOCOL_VERSION), err, fx);
        }
        if h.name == self.me {
            warn!(node = %self.me, %addr, "dialed a node with our own name");
            return self.refuse(conn, RefuseReason::SameName, fx);
        }
        if self.blocked.contains(&h.name) {
            return self.refuse(conn, RefuseReason::Blocked, fx);
        }
        let up = self.peers.get(&h.name).map(|p| (p.creation, p.conn));
        if up.is_some_and(|(creation, _)| creation == h.creation) {
            let name = h.name.clone();
            return self.abandon(conn, &name, now, fx);
        }
        let State::HelloSent { nonce } = c.state else {
            unreachable!()
        };
        let (name, creation) = (h.name.clone(), h.creation);
        self.set_state(conn, State::ResponseSent { peer: h, nonce });
        if let Some((_, old)) = up {
            // The node we dialed claims the name of an up peer with another
            // creation: a restart, or an impostor. As an acceptor does, ask
            // the old session first; the Response waits for its silence.
            debug!(node = %self.me, peer = %name, creation, %addr,
                "a dialed node claims an up peer's name with a new creation; probing the old session");
            return self.probe(conn, old, Role::Dialer, now, fx);
        }
        self.respond(conn, now, fx);
    }

    /// Asks the up session `old` whether it is alive (`Ping`) before the
    /// newcomer `conn`, which claims its name, may go on.
    fn probe(&mut self, conn: ConnId, old: ConnId, side: Role, now: Time, fx: &mut Effects) {
        let id = self.next_probe;
        self.next_probe += 1;
        self.probes.insert(
            conn,
            Probe {
                old,
                id,
                deadline: now + self.cfg.probe_timeout,
                side,
            },
        );
        fx.push(Effect::Send {
            conn: old,
            frame: Frame::Ping(id),
        });
    }

    /// The old session is deemed dead: the newcomer goes on with its
    /// handshake (it replaces the old session when that completes).
    fn probe_failed(
        &mut self,
        conn: ConnId,
        side: Role,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        match side {
            Role::Acceptor => self.accept_verified(conn, now, fx, up),
            Role::Dialer => self.respond(conn, now, fx),
        }
    }

    /// Sends our Response to the node we dialed, unless a rival handshake
    /// with it wins.
    fn respond(&mut self, conn: ConnId, now: Time, fx: &mut Effects) {
        let Some(State::ResponseSent { peer, .. }) = self.conns.get(&conn).map(|c| &c.state) else {
            return;
        };
        let name = peer.name.clone();
        if self.rival_wins(conn, &name).is_some() {
            return self.abandon(conn, &name, now, fx);
        }
        let State::ResponseSent { peer, nonce } = &self.conns[&conn].state else {
            unreachable!()
        };
        let t = self.transcript(Role::Dialer, peer, nonce);
        let proof = auth::prove(&self.cookie, Role::Dialer, &t);
        fx.push(Effect::Send {
            conn,
            frame: Frame::Response { proof },
        });
    }

    pub(super) fn on_response(
        &mut self,
        conn: ConnId,
        proof: [u8; 32],
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = &self.conns[&conn];
        let State::ChallengeSent { peer, nonce } = &c.state else {
            unreachable!()
        };
        let t = self.transcript(Role::Acceptor, peer, nonce);
        if !auth::verify(&self.cookie, Role::Dialer, &t, &proof) {
            let (addr, claimed) = (c.addr.clone(), peer.name.clone());
            self.log_refusal(
                &format!("{claimed} refused"),
                &addr,
                || format!("refusing connection from {claimed}: wrong cookie"),
                now,
            );
            return self.refuse(conn, RefuseReason::BadCookie, fx);
        }
        let (name, creation) = (peer.name.clone(), peer.creation);
        if let Some(p) = self.peers.get(&name) {
            if p.creation == creation {
                return self.refuse(conn, RefuseReason::AlreadyConnected, fx);
            }
            // Another creation claims the name of an up peer: a restart
            // whose old session is not yet known dead, or an impostor.
            // Ask the old session; only its silence lets the newcomer in.
            let old = p.conn;
            debug!(node = %self.me, peer = %name, creation, addr = %self.conns[&conn].addr,
                "a new creation claims an up peer's name; probing the old session");
            return self.probe(conn, old, Role::Acceptor, now, fx);
        }
        self.accept_verified(conn, now, fx, up);
    }

    /// Finishes an inbound handshake whose proof checked out: the session
    /// goes up unless a rival handshake wins.
    pub(super) fn accept_verified(
        &mut self,
        conn: ConnId,
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let State::ChallengeSent { peer, nonce } = &c.state else {
            return;
        };
        let t = self.transcript(Role::Acceptor, peer, nonce);
        let ack = auth::prove(&self.cookie, Role::Acceptor, &t);
        let (name, creation, listen) = (peer.name.clone(), peer.creation, peer.listen.clone());
        if let Some(p) = self.peers.get(&name) {
            if p.creation == creation {
                return self.refuse(conn, RefuseReason::AlreadyConnected, fx);
            }
            let old = p.conn;
            self.stats.replaced += 1;
            self.close(old, DownReason::Restarted, now, fx, up);
            // Closing the old session settles the probes waiting on it,
            // and a newcomer let in there may have abandoned this one.
            if !self.conns.contains_key(&conn) {
                return;
            }
        }
        if self.rival_wins(conn, &name).is_some() {
            return self.refuse(conn, RefuseReason::Simultaneous, fx);
        }
        for rival in self.rivals(conn, &name) {
            self.abandon(rival, &name, now, fx);
        }
        fx.push(Effect::Send {
            conn,
            frame: Frame::Ack { proof: ack },
        });
        self.session_up(conn, name, creation, listen, now, fx, up);
    }

    pub(super) fn on_ack(
        &mut self,
        conn: ConnId,
        proof: [u8; 32],
        now: Time,
        fx: &mut Effects,
        up: &mut Vec<Upcall>,
    ) {
        let c = &self.conns[&conn];
        let State::ResponseSent { peer, nonce } = &c.state else {
            unreachable!()
        };
        let t = self.transcript(Role::Dialer, peer, nonce);
        if !auth::verify(&self.cookie, Role::Acceptor, &t, &proof) {
            let (addr, claimed) = (c.addr.clone(), peer.name.clone());
            self.log_refusal(
                &format!("{claimed} failed"),
                &addr,
                || format!("peer {claimed} failed authentication: wrong cookie"),
                now,
            );
            let c = self.remove_conn(conn).expect("present");
            fx.push(Effect::Close {
                conn,
                reason: "peer failed authentication".into(),
            });
            for req in c.reqs {
                fx.push(Effect::ConnectDone {
                    req,
                    result: Err(ConnectError::Refused(RefuseReason::BadCookie)),
                });
            }
            return;
        }
        let (name, creation) = (peer.name.clone(), peer.creation);
        let listen = peer.listen.clone().or_else(|| Some(c.addr.clone()));
        if let Some(p) = self.peers.get(&name) {
            if p.creation == creation {
                return self.abandon(conn, &name, now, fx);
            }
            let old = p.conn;
            self.close(old, DownReason::Restarted, now, fx, up);
        }
        self.session_up(conn, name, creation, listen, now, fx, up);
    }
}
