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
        self.dial(addr, None, req, false, now, fx);
    }

    /// Opens a connection to `addr`; `paced` when it counts against
    /// `max_dials` (see [`Cluster::dial_known`]).
    pub(super) fn dial(
        &mut self,
        addr: String,
        expect: Option<NodeName>,
        req: Option<ReqId>,
        paced: bool,
        now: Time,
        fx: &mut Effects,
    ) {
        let conn = self.alloc_conn();
        debug!(node = %self.me, conn, %addr, ?expect, "dialing");
        self.insert_conn(
            conn,
            Conn {
                dir: Direction::Outbound,
                addr: addr.clone(),
                opened: now,
                last_heard: now,
                state: State::Dialing,
                expect,
                reqs: req.into_iter().collect(),
                paced,
            },
        );
        fx.push(Effect::Dial { conn, addr });
    }

    /// The transport accepted a connection from `addr`; returns its id.
    pub fn accepted(&mut self, addr: String, now: Time, fx: &mut Effects) -> ConnId {
        let conn = self.alloc_conn();
        self.insert_conn(
            conn,
            Conn {
                dir: Direction::Inbound,
                addr,
                opened: now,
                last_heard: now,
                state: State::AwaitHello,
                expect: None,
                reqs: Vec::new(),
                paced: false,
            },
        );
        if self.shutting_down {
            self.refuse(conn, RefuseReason::ShuttingDown, fx);
        } else if self.inbound_handshakes() > self.cfg.max_handshakes {
            self.stats.refused_busy += 1;
            let addr = self.conns[&conn].addr.clone();
            let max = self.cfg.max_handshakes;
            self.log_refusal(
                "busy",
                &addr,
                || format!("refusing connection: {max} handshakes already in progress (max_handshakes)"),
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
        let Some(c) = self.remove_conn(conn) else {
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
        self.pump_dials(now, fx);
    }

    /// Whether a connection to `name` is being opened or authenticated.
    /// Inbound connections not yet authenticated (the one just accepted among them).
    fn inbound_handshakes(&self) -> usize {
        debug_assert_eq!(
            self.inbound_pending,
            self.conns.values().filter(|c| c.pending_inbound()).count()
        );
        self.inbound_pending
    }

    pub(super) fn handshaking_with(&self, name: &NodeName) -> bool {
        self.named(name)
            .any(|(_, c)| c.expect.as_ref() == Some(name) || c.peer_name() == Some(name))
    }

    /// The nodes we know of (up, or being reached) and where they listen,
    /// but `except`.
    pub(super) fn peer_list(&self, except: Option<&NodeName>) -> Vec<PeerInfo> {
        self.known
            .iter()
            .filter(|(n, _)| Some(*n) != except)
            .map(|(n, k)| PeerInfo {
                name: n.clone(),
                addr: k.addr.clone(),
            })
            .collect()
    }

    /// Remembers where `name` listens (replacing what we knew).
    pub(super) fn learn(&mut self, name: NodeName, k: Known) {
        self.forgotten.remove(&name);
        let own = self.vis.in_own(&name);
        let at = k.next_try;
        match self.known.insert(name.clone(), k) {
            Some(old) => {
                if let Some(t) = old.next_try {
                    self.redials.remove(&(t, name.clone()));
                    self.first_redial = self.redials.first().map(|(t, _)| *t);
                }
            }
            None if own => self.view.toggle(&name, true),
            None => {}
        }
        if let Some(t) = at {
            self.redials.insert((t, name));
            self.first_redial = self.redials.first().map(|(t, _)| *t);
        }
    }

    /// Forgets `name` (it left on purpose, or we let it go).
    /// A forgotten node is not learned again from gossip (other nodes still
    /// list it); it comes back only by connecting itself.
    pub(super) fn unlearn(&mut self, name: &NodeName) {
        self.forgotten.insert(name.clone());
        if let Some(k) = self.known.remove(name) {
            if let Some(t) = k.next_try {
                self.redials.remove(&(t, name.clone()));
                self.first_redial = self.redials.first().map(|(t, _)| *t);
            }
            if self.vis.in_own(name) {
                self.view.toggle(name, false);
            }
        }
    }

    /// Learns of the nodes in `list`: dials those of our own group we have
    /// no session with. Returns the ones this node had not heard of.
    pub(super) fn on_peers(
        &mut self,
        list: Vec<PeerInfo>,
        now: Time,
        fx: &mut Effects,
    ) -> Vec<PeerInfo> {
        let mut news = Vec::new();
        if !self.cfg.mesh || self.shutting_down {
            return news;
        }
        for PeerInfo { name, addr } in list {
            if name == self.me
                || self.peers.contains_key(&name)
                || self.blocked.contains(&name)
                || self.forgotten.contains(&name)
            {
                continue;
            }
            if !self.known.contains_key(&name) {
                news.push(PeerInfo {
                    name: name.clone(),
                    addr: addr.clone(),
                });
                self.learn(
                    name.clone(),
                    Known {
                        addr: addr.clone(),
                        attempts: 0,
                        next_try: None,
                    },
                );
            }
            if !self.vis.in_own(&name) {
                // Remember where it is (for queries), but never mesh with it.
                continue;
            }
            let busy = self.handshaking_with(&name);
            if !busy {
                self.dial_known(name, addr, now, fx);
            }
        }
        news
    }

    /// `from` opened a session to us on purpose and lists its peers: it
    /// gets ours, and the news (`from` itself, the nodes it brought that
    /// were new to us) spreads.
    pub(super) fn on_introduce(
        &mut self,
        from: &NodeName,
        list: Vec<PeerInfo>,
        now: Time,
        fx: &mut Effects,
    ) {
        if !self.cfg.mesh || self.shutting_down {
            return;
        }
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        p.introduction = true;
        let mine = self.peer_list(Some(from));
        self.send(from, Frame::Welcome(mine), fx);
        self.welcome_news(from, list, now, fx);
    }

    /// The answer to our introduction: the nodes `from` is connected to.
    /// They, and `from` itself, spread.
    pub(super) fn on_welcome(
        &mut self,
        from: &NodeName,
        list: Vec<PeerInfo>,
        now: Time,
        fx: &mut Effects,
    ) {
        if self.peers.get(from).is_some_and(|p| p.introduction) {
            self.welcome_news(from, list, now, fx);
        }
    }

    fn welcome_news(&mut self, from: &NodeName, list: Vec<PeerInfo>, now: Time, fx: &mut Effects) {
        let mut news = self.on_peers(list, now, fx);
        if let Some(k) = self.known.get(from) {
            news.push(PeerInfo {
                name: from.clone(),
                addr: k.addr.clone(),
            });
        }
        self.spread(from, news, fx);
    }

    /// Passes `news` (nodes this node had not heard of) along the
    /// introduction tree: to every peer joined to us by an introduction
    /// but `from`, the one it came from.
    pub(super) fn spread(&mut self, from: &NodeName, news: Vec<PeerInfo>, fx: &mut Effects) {
        if news.is_empty() {
            return;
        }
        let to: Vec<NodeName> = self
            .peers
            .iter()
            .filter(|(n, p)| p.introduction && *n != from && self.vis.in_own(n))
            .map(|(n, _)| n.clone())
            .collect();
        self.broadcast(&to, Frame::Peers(news), fx);
    }

    /// A peer told its view: when it differs from ours, send it our list
    /// (once for each view of ours); it does the same with our view.
    pub(super) fn on_digest(&mut self, from: &NodeName, view: View, fx: &mut Effects) {
        let mine = self.view;
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        p.heard = Some(view);
        if !self.cfg.mesh || view == mine || p.pushed == Some(mine) {
            return;
        }
        p.pushed = Some(mine);
        let list = self.peer_list(Some(from));
        self.send(from, Frame::Peers(list), fx);
    }

    /// What a tick to `node` is: a [`Frame::Digest`] while our view changed
    /// since we last told it, or differs from the view it last told us; a
    /// plain [`Frame::Tick`] otherwise.
    pub(super) fn tick_frame(&self, node: &NodeName) -> Frame {
        let mine = self.view;
        match self.peers.get(node) {
            Some(p)
                if self.cfg.mesh
                    && self.vis.in_own(node)
                    && (p.told != Some(mine) || p.heard.is_some_and(|h| h != mine)) =>
            {
                Frame::Digest {
                    count: mine.count,
                    hash: mine.hash,
                }
            }
            _ => Frame::Tick,
        }
    }

    // ---- control -------------------------------------------------------

    /// Drops and refuses all traffic with `node` until [`Cluster::unblock`].
    pub fn block(&mut self, node: NodeName, now: Time, fx: &mut Effects, up: &mut Vec<Upcall>) {
        let conns: Vec<ConnId> = self
            .named(&node)
            .filter(|(_, c)| c.peer_name() == Some(&node) || c.expect.as_ref() == Some(&node))
            .map(|(id, _)| id)
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
            self.set_redial(node, Some(now));
        }
        was
    }

    /// Stops redialing `node`: it is forgotten unless a session with it is
    /// up or being opened (then nothing changes). Node discovery calls this
    /// for a node that left its results and cannot be reached, so that a
    /// gone node is not redialed forever. True when it was forgotten.
    pub fn forget(&mut self, node: &NodeName) -> bool {
        if self.peers.contains_key(node) || self.handshaking_with(node) {
            return false;
        }
        let had = self.known.contains_key(node);
        self.unlearn(node);
        had
    }

    /// The nodes this node redials on its own (known, in its own global
    /// group, with no session up and not blocked), in name order.
    pub fn redialing(&self) -> impl Iterator<Item = &NodeName> {
        self.known.keys().filter(|n| {
            !self.peers.contains_key(*n) && !self.blocked.contains(*n) && self.vis.in_own(n)
        })
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
        k.attempts = k.attempts.saturating_add(1);
        self.set_redial(node, Some(now + base.mul_f64(jitter)));
    }

    /// Sets when `node` (known) is redialed next, keeping the index in step.
    pub(super) fn set_redial(&mut self, node: &NodeName, at: Option<Time>) {
        let Some(k) = self.known.get_mut(node) else {
            return;
        };
        if let Some(old) = k.next_try {
            self.redials.remove(&(old, node.clone()));
        }
        k.next_try = at;
        if let Some(t) = at {
            self.redials.insert((t, node.clone()));
        }
        self.first_redial = self.redials.first().map(|(t, _)| *t);
    }

    /// Dials `name`, a node just heard of listening at `addr`, now if
    /// fewer than `max_dials` such dials are under way; else queues it
    /// (once) at a random place, to be dialed as those finish
    /// ([`Cluster::pump_dials`]). Redials after a failure are not paced:
    /// their backoff and its jitter spread them already.
    pub(super) fn dial_known(&mut self, name: NodeName, addr: String, now: Time, fx: &mut Effects) {
        if self.paced_dials < self.cfg.max_dials.max(1) {
            self.dial(addr, Some(name), None, true, now, fx);
        } else if !self.queued.contains_key(&name) {
            let key = self.rng.next_u64();
            self.dial_queue.insert((key, name.clone()));
            self.queued.insert(name, key);
        }
    }

    /// Dials queued nodes while fewer than `max_dials` outbound handshakes
    /// are under way. A node that came up meanwhile (it dialed us), is
    /// being reached by another handshake, was forgotten or blocked, is
    /// dropped from the queue without a dial; should that other handshake
    /// fail, its own redial follows as for any failed handshake.
    pub(super) fn pump_dials(&mut self, now: Time, fx: &mut Effects) {
        let max = self.cfg.max_dials.max(1);
        while self.paced_dials < max {
            let Some((_, name)) = self.dial_queue.pop_first() else {
                return;
            };
            self.queued.remove(&name);
            if self.shutting_down
                || self.peers.contains_key(&name)
                || self.blocked.contains(&name)
                || self.handshaking_with(&name)
            {
                continue;
            }
            let Some(k) = self.known.get(&name) else {
                continue;
            };
            let addr = k.addr.clone();
            self.dial(addr, Some(name), None, true, now, fx);
        }
    }

    // ---- time ----------------------------------------------------------
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn dials(fx: &mut Effects) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = fx.pop() {
            if let Effect::Dial { addr, .. } = e {
                out.push(addr);
            }
        }
        out
    }

    /// Node `a@h` at `a:1`, default configuration, seeded randomness.
    fn node_a(now: Time) -> Cluster {
        node("a", now)
    }

    /// Node `{x}@h` at `{x}:1`, default configuration, seeded randomness.
    fn node(x: &str, now: Time) -> Cluster {
        Cluster::new(
            NodeName::new(&format!("{x}@h")).unwrap(),
            1,
            Some(format!("{x}:1")),
            Cookie::new("c"),
            ClusterConfig::default(),
            StdRng::seed_from_u64(1),
            now,
        )
    }

    /// When a healed split brings the redials forward, of two nodes the one
    /// with the smaller name dials first: `m@h` redials the larger-named
    /// nodes within a shortest backoff, the smaller-named ones (which dial
    /// it first) no sooner than half a backoff, so the two dials of a pair
    /// mostly do not cross.
    #[test]
    fn the_smaller_name_redials_first_after_a_heal() {
        let now = Time::ZERO;
        let mut c = node("m", now);
        let later = now + c.cfg.backoff_max;
        for i in 0..40 {
            for side in ['a', 'z'] {
                let name = NodeName::new(&format!("{side}{i:02}@h")).unwrap();
                let addr = format!("{name}:1");
                let k = Known {
                    addr,
                    attempts: 6,
                    next_try: Some(later),
                };
                c.learn(name, k);
            }
        }
        c.hurry_reconnects(now);
        let soon = c.cfg.backoff_min;
        assert_eq!(c.redials.len(), 80);
        for (t, n) in &c.redials {
            let after = t.since(now);
            if *n < c.me {
                assert!(
                    after >= soon / 2 && after < soon * 3 / 2,
                    "{n} at {after:?}"
                );
            } else {
                assert!(after < soon, "{n} at {after:?}");
            }
        }
    }

    /// Forty nodes heard of at once: `max_dials` (16) are dialed, the rest
    /// wait; a failed dial lets the next one go, skipping queued nodes
    /// that are reaching us themselves; a dial hanging for a tick interval
    /// gives its place up.
    #[test]
    fn dials_to_nodes_heard_of_are_paced() {
        let now = Time::ZERO;
        let mut c = node_a(now);
        let max = c.cfg.max_dials;
        let list: Vec<PeerInfo> = (0..40)
            .map(|i| PeerInfo {
                name: NodeName::new(&format!("n{i:02}@h")).unwrap(),
                addr: format!("n{i:02}:1"),
            })
            .collect();
        let mut fx = Effects::default();
        c.on_peers(list, now, &mut fx);
        assert_eq!(dials(&mut fx).len(), max);
        assert_eq!(c.paced_dials, max);
        assert_eq!(c.queued.len(), 40 - max);
        // All queued nodes but one dial us first.
        let queued: Vec<NodeName> = c.dial_queue.iter().map(|(_, n)| n.clone()).collect();
        let (last, reaching) = queued.split_last().unwrap();
        for name in reaching {
            let conn = c.accepted(format!("{name}:9"), now, &mut fx);
            let hello = Hello {
                version: PROTOCOL_VERSION,
                name: name.clone(),
                creation: 1,
                listen: Some(format!("{name}:1")),
                nonce: [0; NONCE_LEN],
            };
            let mut up = Vec::new();
            c.frame(conn, Frame::Hello(hello), now, &mut fx, &mut up);
        }
        assert!(dials(&mut fx).is_empty());
        // Our dials fail: only the queued node not reaching us is dialed.
        let ours: Vec<ConnId> = c
            .conns
            .iter()
            .filter(|(_, k)| k.dir == Direction::Outbound)
            .map(|(id, _)| *id)
            .collect();
        for conn in ours {
            c.dial_failed(conn, "refused".into(), now, &mut fx);
        }
        let addr = c.known[last].addr.clone();
        assert_eq!(dials(&mut fx), [addr]);
        assert!(c.queued.is_empty() && c.dial_queue.is_empty());
        assert_eq!(c.paced_dials, 1);
        // That dial hangs: after a tick interval it no longer counts.
        let mut up = Vec::new();
        c.timeout(now + c.cfg.tick_interval, &mut fx, &mut up);
        assert_eq!(c.paced_dials, 0);
    }

    #[test]
    fn forget_stops_redials_but_never_touches_a_node_being_reached() {
        let now = Time::ZERO;
        let mut c = node_a(now);
        let b = NodeName::new("b@h").unwrap();
        let mut fx = Effects::default();
        c.on_peers(
            vec![PeerInfo {
                name: b.clone(),
                addr: "b:1".into(),
            }],
            now,
            &mut fx,
        );
        assert_eq!(dials(&mut fx), ["b:1"]);
        // Being dialed: not forgotten.
        assert!(!c.forget(&b));
        let conn = *c.conns.keys().next().unwrap();
        c.dial_failed(conn, "refused".into(), now, &mut fx);
        assert_eq!(c.redialing().collect::<Vec<_>>(), [&b]);
        // Redialed later, until forgotten.
        let later = now + c.cfg.backoff_max;
        let mut up = Vec::new();
        c.timeout(later, &mut fx, &mut up);
        assert_eq!(dials(&mut fx), ["b:1"]);
        let conn = *c.conns.keys().next().unwrap();
        c.dial_failed(conn, "refused".into(), later, &mut fx);
        assert!(c.forget(&b));
        assert!(!c.forget(&b), "already forgotten");
        assert_eq!(c.redialing().count(), 0);
        c.timeout(later + c.cfg.backoff_max * 4, &mut fx, &mut up);
        assert!(dials(&mut fx).is_empty(), "a forgotten node was redialed");
    }
}
