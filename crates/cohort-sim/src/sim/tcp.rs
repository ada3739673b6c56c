//! The TCP model of connections: dials, pipes, closes and resets.
//!
//! A connection ([`Link`]) has one FIFO pipe per direction. Frames in a
//! pipe arrive in order, once, each after its own latency but never before
//! the frame ahead of it. A cut direction stalls its pipe until the heal
//! (TCP retransmits; it does not drop a frame and deliver the next). A dial
//! into a cut or to a crashed host times out; one to a stopped host, or
//! a frame to a gone incarnation, is answered with a refusal or a reset.

use std::time::Duration;

use cohort_proto::proto::Frame;
use cohort_proto::ConnId;
use rand::Rng;

use super::node::NodeState;
use super::scheduler::Event;
use super::Sim;
use crate::net::{End, Garbled, Link, LinkId, NodeIdx, PipeMsg};

/// How long a dial into a partition or to a dead host waits before failing
/// (a SYN that gets no answer).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Sim {
    /// Node `i`'s core dials `addr` on its connection `conn`: the SYN
    /// reaches a host, or nobody answers.
    pub(super) fn dial(&mut self, i: NodeIdx, conn: ConnId, addr: String) {
        let creation = self.nodes[i].creation;
        let target = addr
            .strip_prefix("sim:")
            .and_then(|s| s.parse::<NodeIdx>().ok())
            .filter(|&t| t < self.nodes.len());
        let id = self.net.alloc_link();
        let label = self.label(i);
        self.trace.event(
            self.now(),
            format_args!("{label} dial conn={conn} {addr} link={id}"),
        );
        self.net.links.insert(
            id,
            Link {
                ends: [
                    End {
                        node: i,
                        creation,
                        conn: Some(conn),
                        open: true,
                    },
                    End {
                        node: target.unwrap_or(i),
                        creation: 0,
                        conn: None,
                        open: false,
                    },
                ],
                pipes: Default::default(),
                target,
                dialed_at: self.now(),
                broken: false,
            },
        );
        self.net.by_conn.insert((i, creation, conn), (id, 0));
        let lat = self.latency();
        if target.is_some() {
            self.sched
                .schedule(self.now() + lat, Event::Syn { link: id });
        } else {
            self.sched
                .schedule(self.now() + lat, Event::DialTimeout { link: id });
        }
    }

    /// Node `i`'s core closes its connection `conn`: a FIN follows the
    /// frames already sent.
    pub(super) fn close(&mut self, i: NodeIdx, conn: ConnId, reason: &str) {
        let creation = self.nodes[i].creation;
        let label = self.label(i);
        self.trace.event(
            self.now(),
            format_args!("{label} close conn={conn} ({reason})"),
        );
        let Some((id, e)) = self.net.find(i, creation, conn) else {
            self.contract(format!("{label} closed unknown connection {conn}"));
            return;
        };
        let link = self.net.links.get_mut(&id).expect("indexed link exists");
        // Closing twice, or closing what the transport reported
        // closed, is harmless: a socket is closed once.
        if link.ends[e].open {
            link.ends[e].open = false;
            if !link.broken {
                self.push_pipe(id, e, PipeMsg::Fin);
            }
        }
        self.net.collect(id);
    }

    /// A one-way network latency: usually under two milliseconds; with the
    /// `delay` fault on, now and then seconds.
    fn latency(&mut self) -> Duration {
        if self.spikes && self.rng.random_bool(0.02) {
            return Duration::from_millis(self.rng.random_range(500..3000));
        }
        Duration::from_micros(self.rng.random_range(100..2000))
    }

    /// Encodes `frame` into the wire buffer and checks that it decodes to
    /// itself; the encoding stays in the buffer for [`Sim::send_encoded`].
    pub(super) fn encode(&mut self, frame: &Frame) -> Result<(), Box<Garbled>> {
        frame.encode_into(&mut self.wire);
        match Frame::decode(&self.wire) {
            Ok(decoded) if decoded == *frame => Ok(()),
            Ok(decoded) => Err(Box::new(Garbled {
                what: format!("codec: {} decoded as {}", frame.kind(), decoded.kind()),
                close: None,
            })),
            Err(err) => Err(Box::new(Garbled {
                what: format!("codec: {} does not decode: {err}", frame.kind()),
                close: Some(format!("malformed frame: {err}")),
            })),
        }
    }

    /// Node `i`'s core sends `frame` on its connection `conn`: encoded,
    /// counted, and queued in the connection's pipe.
    pub(super) fn send(&mut self, i: NodeIdx, conn: ConnId, frame: Frame) {
        let codec = self.encode(&frame);
        self.send_encoded(i, conn, frame, codec);
    }

    /// Sends `frame`, whose encoding and round-trip check `codec` are those
    /// [`Sim::encode`] left (a broadcast encodes its frame once).
    pub(super) fn send_encoded(
        &mut self,
        i: NodeIdx,
        conn: ConnId,
        frame: Frame,
        codec: Result<(), Box<Garbled>>,
    ) {
        let creation = self.nodes[i].creation;
        let len = self.wire.len();
        let kind = frame.kind();
        let label = self.label(i);
        self.trace.event(
            self.now(),
            format_args!("{label} send conn={conn} {kind} {len}B"),
        );
        self.trace.mix(&self.wire);
        self.nodes[i].sent_frames += 1;
        self.nodes[i].sent_bytes += len as u64;
        let t = self.traffic.entry(kind);
        t.frames += 1;
        t.bytes += len as u64;
        let Some((id, e)) = self.net.find(i, creation, conn) else {
            self.contract(format!("{label} sent {kind} on unknown connection {conn}"));
            return;
        };
        let link = &self.net.links[&id];
        if !link.ends[e].open {
            self.contract(format!(
                "{label} sent {kind} on connection {conn} after it closed"
            ));
            return;
        }
        if link.broken || link.pipes[e].blackhole {
            return;
        }
        let len = u32::try_from(len).expect("a frame under 4 GiB");
        let msg = match (codec, frame) {
            (Err(garbled), _) => PipeMsg::Garbled(garbled),
            (Ok(()), Frame::Tick) => PipeMsg::Tick(len),
            (Ok(()), frame) => PipeMsg::Data(Box::new(frame), len),
        };
        self.push_pipe(id, e, msg);
    }

    /// Queues `msg` in direction `dir` of link `id`, after a latency.
    fn push_pipe(&mut self, id: LinkId, dir: usize, msg: PipeMsg) {
        let ready = self.now() + self.latency();
        let link = self.net.links.get_mut(&id).expect("link exists");
        link.pipes[dir].queue.push_back((ready, msg));
        self.arm(id, dir);
    }

    /// Schedules the delivery of a pipe's head, unless one is scheduled or
    /// the direction is cut (the pipe stalls until the heal).
    fn arm(&mut self, id: LinkId, dir: usize) {
        let link = &self.net.links[&id];
        let (from, to) = (link.ends[dir].node, link.ends[1 - dir].node);
        let pipe = &link.pipes[dir];
        if pipe.armed || self.net.is_cut(from, to) {
            return;
        }
        let Some(&(ready, _)) = pipe.queue.front() else {
            return;
        };
        self.net.links.get_mut(&id).expect("link exists").pipes[dir].armed = true;
        self.sched.schedule(ready, Event::Pipe { link: id, dir });
    }

    /// The head of direction `dir` of link `id` is due.
    pub(super) fn on_pipe(&mut self, id: LinkId, dir: usize) {
        let Some(link) = self.net.links.get_mut(&id) else {
            return;
        };
        link.pipes[dir].armed = false;
        if link.broken {
            link.pipes[dir].queue.clear();
            self.net.collect(id);
            return;
        }
        let (from, to) = (link.ends[dir].node, link.ends[1 - dir].node);
        if self.net.is_cut(from, to) {
            return;
        }
        let link = self.net.links.get_mut(&id).expect("link exists");
        let Some((_, msg)) = link.pipes[dir].queue.pop_front() else {
            return;
        };
        // The next frame leaves no earlier than this one arrived.
        if let Some(front) = link.pipes[dir].queue.front_mut() {
            front.0 = front.0.max(self.sched.now());
        }
        self.arm(id, dir);
        self.arrive(id, 1 - dir, msg);
        self.net.collect(id);
    }

    /// `msg` reaches end `e` of link `id`.
    fn arrive(&mut self, id: LinkId, e: usize, msg: PipeMsg) {
        let end = self.net.links[&id].ends[e].clone();
        let node = &self.nodes[end.node];
        match &node.state {
            NodeState::Crashed => {
                // The host is down: the frame is lost, nobody answers.
            }
            NodeState::Running(_) if node.creation == end.creation => {
                let (Some(conn), true) = (end.conn, end.open) else {
                    return;
                };
                let label = self.label(end.node);
                match msg {
                    PipeMsg::Connected => {
                        self.trace
                            .event(self.now(), format_args!("{label} dialed conn={conn}"));
                        self.input(end.node, |c, now| c.dialed(conn, now));
                    }
                    PipeMsg::Refused => {
                        self.trace
                            .event(self.now(), format_args!("{label} dial-refused conn={conn}"));
                        self.count("dial refused");
                        self.end_closed(id, e);
                        self.input(end.node, |c, now| {
                            c.dial_failed(conn, "connection refused".into(), now)
                        });
                    }
                    PipeMsg::Data(frame, len) => {
                        self.frame_in(id, e, conn, *frame, len);
                    }
                    PipeMsg::Tick(len) => self.frame_in(id, e, conn, Frame::Tick, len),
                    PipeMsg::Garbled(garbled) => {
                        self.trace
                            .event(self.now(), format_args!("{label} recv conn={conn} garbled"));
                        self.contract(garbled.what);
                        if let Some(why) = garbled.close {
                            self.end_closed(id, e);
                            self.input(end.node, |c, now| c.closed(conn, why, now));
                        }
                    }
                    PipeMsg::Fin => {
                        self.trace
                            .event(self.now(), format_args!("{label} closed conn={conn} (eof)"));
                        self.end_closed(id, e);
                        self.input(end.node, |c, now| {
                            c.closed(conn, "closed by peer".into(), now)
                        });
                    }
                }
            }
            _ => {
                // The host is up but this connection's process is gone (a
                // restart or a stop): its kernel answers with a reset.
                if !matches!(msg, PipeMsg::Fin) {
                    self.count("reset by restarted host");
                    self.reset(id, [1 - e].as_slice(), "reset by restarted host");
                }
            }
        }
    }

    /// `frame` (`len` bytes encoded) reaches end `e` of link `id`, open on
    /// its node's connection `conn`.
    fn frame_in(&mut self, id: LinkId, e: usize, conn: ConnId, frame: Frame, len: u32) {
        let node = self.net.links[&id].ends[e].node;
        let label = self.label(node);
        self.trace
            .event(self.now(), format_args!("{label} recv conn={conn} {len}B"));
        self.count("frames delivered");
        self.frame_arrived(&frame);
        self.input(node, |c, now| c.frame(conn, frame, now));
    }

    /// End `e` of link `id` is closed for its node.
    fn end_closed(&mut self, id: LinkId, e: usize) {
        if let Some(link) = self.net.links.get_mut(&id) {
            link.ends[e].open = false;
        }
    }

    /// Breaks a connection: nothing more is delivered on it, and the
    /// listed ends are told it closed.
    pub(crate) fn reset(&mut self, id: LinkId, notify: &[usize], why: &str) {
        let Some(link) = self.net.links.get_mut(&id) else {
            return;
        };
        link.broken = true;
        link.pipes[0].queue.clear();
        link.pipes[1].queue.clear();
        self.trace
            .event(self.now(), format_args!("reset link={id} ({why})"));
        for &e in notify {
            let lat = self.latency();
            self.sched
                .schedule(self.now() + lat, Event::Reset { link: id, end: e });
        }
    }

    /// A reset reaches end `e` of link `id`.
    pub(super) fn on_reset(&mut self, id: LinkId, e: usize) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let end = link.ends[e].clone();
        let (Some(conn), true) = (end.conn, end.open) else {
            return;
        };
        if self.nodes[end.node].creation != end.creation || !self.nodes[end.node].is_running() {
            return;
        }
        self.end_closed(id, e);
        let label = self.label(end.node);
        self.trace.event(
            self.now(),
            format_args!("{label} closed conn={conn} (reset)"),
        );
        self.input(end.node, |c, now| {
            c.closed(conn, "connection reset by peer".into(), now)
        });
        self.net.collect(id);
    }

    /// The SYN of link `id` reaches its target host: accepted, refused,
    /// or unanswered (a cut, a host that is down).
    pub(super) fn on_syn(&mut self, id: LinkId) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let a = link.ends[0].node;
        let Some(b) = link.target else {
            return;
        };
        let dialed_at = link.dialed_at;
        let cut = self.net.is_cut(a, b) || self.net.is_cut(b, a);
        let creation = self.nodes[b].creation;
        match &self.nodes[b].state {
            _ if cut => self
                .sched
                .schedule(dialed_at + CONNECT_TIMEOUT, Event::DialTimeout { link: id }),
            NodeState::Crashed => self
                .sched
                .schedule(dialed_at + CONNECT_TIMEOUT, Event::DialTimeout { link: id }),
            NodeState::Stopped => {
                self.net.links.get_mut(&id).expect("link exists").ends[1].creation = creation;
                self.push_pipe(id, 1, PipeMsg::Refused);
            }
            NodeState::Running(_) => {
                let peer_addr = format!("sim:{a}:{id}");
                let NodeState::Running(core) = &mut self.nodes[b].state else {
                    unreachable!()
                };
                let conn = core.accepted(peer_addr, self.sched.now());
                let label = self.label(b);
                self.trace.event(
                    self.now(),
                    format_args!("{label} accepted conn={conn} link={id}"),
                );
                let link = self.net.links.get_mut(&id).expect("link exists");
                link.ends[1] = End {
                    node: b,
                    creation,
                    conn: Some(conn),
                    open: true,
                };
                self.net.by_conn.insert((b, creation, conn), (id, 1));
                // The dialer learns it connected before any frame the
                // acceptor sends.
                self.push_pipe(id, 1, PipeMsg::Connected);
                self.drain(b);
            }
        }
    }

    /// The dial of link `id` got no answer in time.
    pub(super) fn on_dial_timeout(&mut self, id: LinkId) {
        let Some(link) = self.net.links.get(&id) else {
            return;
        };
        let end = link.ends[0].clone();
        let (Some(conn), true) = (end.conn, end.open) else {
            return;
        };
        if self.nodes[end.node].creation != end.creation || !self.nodes[end.node].is_running() {
            return;
        }
        self.end_closed(id, 0);
        let label = self.label(end.node);
        self.trace
            .event(self.now(), format_args!("{label} dial-timeout conn={conn}"));
        self.count("dial timed out");
        self.input(end.node, |c, now| {
            c.dial_failed(conn, "connect timed out".into(), now)
        });
        self.net.collect(id);
    }

    /// After a heal: stalled pipes flow again.
    pub(super) fn rearm_all(&mut self) {
        let stalled: Vec<(LinkId, usize)> = self
            .net
            .links
            .iter()
            .flat_map(|(id, l)| {
                (0..2)
                    .filter(move |&d| !l.pipes[d].armed && !l.pipes[d].queue.is_empty())
                    .map(move |d| (id, d))
            })
            .collect();
        for (id, d) in stalled {
            // A stalled segment is retransmitted a little after the heal.
            let ready = self.now() + self.latency();
            let link = self.net.links.get_mut(&id).expect("link exists");
            if let Some(front) = link.pipes[d].queue.front_mut() {
                front.0 = front.0.max(ready);
            }
            self.arm(id, d);
        }
    }
}
