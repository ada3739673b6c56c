//! The wire protocol between nodes: one [`Frame`] per length-prefixed frame.
//!
//! Frames are encoded with `postcard` (compact, serde-based). The handshake
//! frames carry [`PROTOCOL_VERSION`]; a peer speaking another version is
//! refused during the handshake, before any session frame is exchanged.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use super::auth::{Nonce, NONCE_LEN, PROOF_LEN};
use super::global_group::GlobalGroupsFrame;
use super::names::NamesFrame;
use super::pg::PgFrame;
use super::pid::{ExitReason, NodeName, Pid};

/// The protocol version this build speaks (2: batched process-group deltas,
/// one-round-trip locked names with `Commit`, claims without node names;
/// 3: a `re_register`'s claim carries the line it continues,
/// [`Succession`](crate::names::Succession); a forwarded `Unregister` names
/// the claim it targets and is answered by `Unregistered`; 4: a clash's
/// retraction carries its winner and action, and `Lost` goes before a
/// names snapshot, so every node that held a losing claim reports the clash;
/// mesh gossip by introduction and digest, [`Frame::Introduce`],
/// [`Frame::Welcome`], [`Frame::Digest`]; `Ping`/`Pong` liveness probes,
/// refusals `Alive` and `Busy`; 5: a global-group check carries the
/// digest of the sender's definition, and the definition itself crosses
/// only when the digests differ, [`GlobalGroupsFrame::Definition`]).
pub const PROTOCOL_VERSION: u16 = 5;

/// Default largest frame accepted from a peer, in bytes (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// One message between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Handshake step 1, dialer to acceptor: who is calling.
    Hello(Hello),
    /// Handshake step 2, acceptor to dialer: who answers, and its nonce.
    Challenge(Hello),
    /// Handshake step 3, dialer to acceptor: proof that the dialer knows the cookie.
    Response {
        /// HMAC over the handshake transcript with the dialer's label.
        proof: [u8; PROOF_LEN],
    },
    /// Handshake step 4, acceptor to dialer: proof that the acceptor knows the cookie.
    Ack {
        /// HMAC over the handshake transcript with the acceptor's label.
        proof: [u8; PROOF_LEN],
    },
    /// The handshake was refused; the connection closes after this frame.
    Refuse {
        /// Why, for the other side's log.
        reason: RefuseReason,
    },
    /// Liveness: sent every tick interval on every session.
    Tick,
    /// Mesh gossip: nodes the sender is connected to, with their listen
    /// addresses (an announcement of new nodes, or the sender's whole list
    /// when [`Frame::Digest`] showed the two views differ).
    Peers(Vec<PeerInfo>),
    /// The sender is leaving (shutdown) or disconnecting on purpose: the
    /// receiver drops it at once and does not reconnect on its own.
    Bye,
    /// A message to a process.
    Send {
        /// The destination process.
        to: Pid,
        /// The sending process, if any.
        from: Option<Pid>,
        /// The message body.
        payload: Bytes,
    },
    /// `watcher` asks to be told when `target` ends.
    Monitor {
        /// Monitor reference, unique on the watcher's node.
        mref: u64,
        /// The watching process (on the sender's node).
        watcher: Pid,
        /// The watched process (on the receiver's node).
        target: Pid,
    },
    /// Cancels a [`Frame::Monitor`].
    Demonitor {
        /// Monitor reference.
        mref: u64,
        /// The watching process.
        watcher: Pid,
        /// The watched process.
        target: Pid,
    },
    /// A monitored process ended.
    Down {
        /// Monitor reference.
        mref: u64,
        /// The watching process (on the receiver's node).
        watcher: Pid,
        /// The process that ended.
        target: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
    /// Ends a process on the receiver's node.
    Exit {
        /// The process to end.
        target: Pid,
        /// The reason its monitors will see.
        reason: ExitReason,
    },
    /// Process-group replication.
    Pg(PgFrame),
    /// Global names and locks.
    Names(NamesFrame),
    /// Global groups: definition checks and cross-group queries.
    GlobalGroup(GlobalGroupsFrame),
    /// First frame of a session the sender opened on purpose (a configured
    /// seed or a `connect`, not a node it heard of): the nodes the sender
    /// is connected to. The receiver answers with [`Frame::Welcome`] and
    /// tells its own peers about the sender and about these nodes.
    Introduce(Vec<PeerInfo>),
    /// Answer to [`Frame::Introduce`]: the nodes the receiver of the
    /// introduction is connected to.
    Welcome(Vec<PeerInfo>),
    /// Sent in place of a [`Frame::Tick`] while the sender's view of its own
    /// global group changed since it last told this peer, or differs from
    /// the view the peer last told: how many of its nodes it knows of
    /// (itself included) and a hash of their names. A receiver whose view differs
    /// sends its [`Frame::Peers`] list, once per change of its view.
    Digest {
        /// Nodes in the view (the sender and the nodes of its group it knows of).
        count: u32,
        /// XOR of a fixed hash of each node name in the view.
        hash: u64,
    },
    /// Liveness probe on an up session: answer with [`Frame::Pong`] and
    /// the same number. Sent when another connection claims the peer's
    /// name, to learn whether this session is still alive.
    Ping(u64),
    /// The answer to [`Frame::Ping`].
    Pong(u64),
}

/// The identity part of the handshake, sent by both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version of the sender.
    pub version: u16,
    /// Sender's node name.
    pub name: NodeName,
    /// Sender's creation.
    pub creation: u32,
    /// Where the sender accepts connections, if it listens.
    pub listen: Option<String>,
    /// Fresh random nonce of the sender.
    pub nonce: Nonce,
}

/// A node and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Node name.
    pub name: NodeName,
    /// Listen address.
    pub addr: String,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The peer speaks a protocol version this node does not; the refusing
    /// node's own version is given (the frame's encoding is the same in
    /// every version, so any version can read it).
    #[error("protocol version mismatch: the refusing node speaks version {0}")]
    Version(u16),
    /// The proof did not match: the two nodes have different cookies.
    #[error("authentication failed (wrong cookie)")]
    BadCookie,
    /// The peer uses this node's own name.
    #[error("node name already in use by the acceptor itself")]
    SameName,
    /// Both nodes dialed each other at once; the other connection is kept.
    #[error("simultaneous connect: the other connection is kept")]
    Simultaneous,
    /// A session with this node already exists.
    #[error("already connected")]
    AlreadyConnected,
    /// Traffic with the peer is blocked on this node.
    #[error("blocked")]
    Blocked,
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The peer sent something out of order.
    #[error("protocol violation")]
    Protocol,
    /// A node with the dialer's name has a live session with this node
    /// (it answered a liveness probe): the name is taken. OTP answers
    /// `alive` here too.
    #[error("a node with this name is alive and connected")]
    Alive,
    /// Too many connections are in handshake with this node at once.
    #[error("too many handshakes in progress")]
    Busy,
}

/// A frame that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame ({len} bytes): {why}")]
pub struct DecodeError {
    /// Size of the rejected frame.
    pub len: usize,
    /// What the decoder said.
    pub why: String,
}

impl Frame {
    /// Encodes the frame body (without the length prefix).
    pub fn encode(&self) -> Bytes {
        // Serialising our own types to a Vec cannot fail.
        Bytes::from(postcard::to_stdvec(self).expect("frame encoding is infallible"))
    }

    /// Encodes the frame body into `buf`, replacing what it held: the same
    /// bytes as [`Frame::encode`], in a buffer the caller reuses.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        // Serialising our own types to a Vec cannot fail.
        *buf =
            postcard::to_extend(self, std::mem::take(buf)).expect("frame encoding is infallible");
    }

    /// Decodes one frame body. Trailing bytes are an error: a frame is
    /// exactly one message.
    pub fn decode(buf: &[u8]) -> Result<Frame, DecodeError> {
        let err = |why: String| DecodeError {
            len: buf.len(),
            why,
        };
        let (frame, rest) =
            postcard::take_from_bytes::<Frame>(buf).map_err(|e| err(e.to_string()))?;
        if !rest.is_empty() {
            return Err(err(format!("{} trailing bytes", rest.len())));
        }
        Ok(frame)
    }

    /// Whether dropping this frame on a congested session is safe: the
    /// receiver notices the gap in the origin's stream (or the next head)
    /// and asks again, so shedding it costs a resync, never consistency.
    pub fn is_sheddable(&self) -> bool {
        matches!(
            self,
            Frame::Pg(PgFrame::Delta { .. })
                | Frame::Names(
                    NamesFrame::Add { ack: None, .. } | NamesFrame::Remove { ack: None, .. }
                )
        )
    }

    /// A short name of the frame kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Challenge(_) => "challenge",
            Frame::Response { .. } => "response",
            Frame::Ack { .. } => "ack",
            Frame::Refuse { .. } => "refuse",
            Frame::Tick => "tick",
            Frame::Peers(_) => "peers",
            Frame::Introduce(_) => "introduce",
            Frame::Welcome(_) => "welcome",
            Frame::Digest { .. } => "digest",
            Frame::Bye => "bye",
            Frame::Send { .. } => "send",
            Frame::Monitor { .. } => "monitor",
            Frame::Demonitor { .. } => "demonitor",
            Frame::Down { .. } => "down",
            Frame::Exit { .. } => "exit",
            Frame::Pg(_) => "pg",
            Frame::Names(_) => "names",
            Frame::GlobalGroup(_) => "groups",
            Frame::Ping(_) => "ping",
            Frame::Pong(_) => "pong",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pid() -> Pid {
        Pid::new(NodeName::new("a@h").unwrap(), 7, 42)
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                name: NodeName::new("a@h").unwrap(),
                creation: 9,
                listen: Some("127.0.0.1:1".into()),
                nonce: [3; NONCE_LEN],
            }),
            Frame::Tick,
            Frame::Send {
                to: pid(),
                from: None,
                payload: Bytes::from_static(b"hi"),
            },
            Frame::Down {
                mref: 1,
                watcher: pid(),
                target: pid(),
                reason: ExitReason::Killed("x".into()),
            },
            Frame::Refuse {
                reason: RefuseReason::BadCookie,
            },
        ];
        let mut buf = vec![0xff; 3];
        for f in frames {
            assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
            f.encode_into(&mut buf);
            assert_eq!(buf, f.encode());
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut b = Frame::Tick.encode().to_vec();
        b.push(0);
        assert!(Frame::decode(&b).is_err());
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn decoding_mutated_frames_never_panics(idx in 0usize..64, val in any::<u8>()) {
            let mut b = Frame::Send { to: pid(), from: Some(pid()), payload: Bytes::from_static(b"payload") }.encode().to_vec();
            let i = idx % b.len();
            b[i] = val;
            let _ = Frame::decode(&b);
        }
    }
}
