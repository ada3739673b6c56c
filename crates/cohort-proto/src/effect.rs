//! What a node core asks its driver to do ([`Effect`]), and the reasons it
//! gives for a connection failing or a peer going down.

use std::collections::VecDeque;
use std::fmt;

use crate::global_group::GlobalGroupsEffect;
pub use crate::ids::{ConnId, ReqId};
use crate::names::NamesEffect;
use crate::pg::PgEffect;
use crate::pid::{ExitReason, NodeName};
use crate::process::Message;
use crate::proto::{Frame, RefuseReason};

/// Why a peer's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// The connection closed or failed.
    ConnectionClosed(String),
    /// No frame arrived from the peer for longer than the peer timeout.
    Timeout,
    /// The peer left on purpose (it shut down or disconnected from us).
    PeerLeft,
    /// This node disconnected from the peer on purpose.
    Disconnected,
    /// The peer came back with a new creation; its old incarnation is gone.
    Restarted,
    /// Traffic with the peer is blocked on this node.
    Blocked,
    /// This node is shutting down.
    Shutdown,
    /// The peer broke the protocol.
    ProtocolError(String),
}

impl DownReason {
    /// Whether the node should try to reconnect after this.
    pub fn reconnects(&self) -> bool {
        !matches!(
            self,
            DownReason::PeerLeft | DownReason::Disconnected | DownReason::Shutdown
        )
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ConnectionClosed(why) => write!(f, "connection closed: {why}"),
            DownReason::Timeout => f.write_str("peer timeout (no ticks)"),
            DownReason::PeerLeft => f.write_str("peer left"),
            DownReason::Disconnected => f.write_str("disconnected"),
            DownReason::Restarted => f.write_str("peer restarted with a new creation"),
            DownReason::Blocked => f.write_str("blocked"),
            DownReason::Shutdown => f.write_str("shutting down"),
            DownReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// Why a `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The transport could not open the connection.
    #[error("cannot connect to {0}")]
    Io(String),
    /// The peer refused the handshake, or failed it.
    #[error("connection refused: {0}")]
    Refused(RefuseReason),
    /// The two nodes speak different protocol versions, so they cannot
    /// connect (whichever side noticed it first refused). Nothing changed on
    /// either node; see the README's "Wire compatibility" for upgrades.
    #[error("protocol version mismatch: this node speaks version {ours}, the peer version {theirs}; nodes connect only when their versions match")]
    Version {
        /// The version this node speaks ([`PROTOCOL_VERSION`](crate::proto::PROTOCOL_VERSION)).
        ours: u16,
        /// The version the peer speaks.
        theirs: u16,
    },
    /// The connection closed before the handshake finished.
    #[error("connection closed during handshake: {0}")]
    Closed(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// This node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

/// Something the driver of a [`NodeCore`](crate::NodeCore) must carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a connection to `addr`; report [`NodeCore::dialed`](crate::NodeCore::dialed) or [`NodeCore::dial_failed`](crate::NodeCore::dial_failed).
    Dial {
        /// The id the core gave the connection.
        conn: ConnId,
        /// Where to connect.
        addr: String,
    },
    /// Send a frame on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// Send one frame on several connections (encoded once).
    Broadcast {
        /// The connections.
        conns: Vec<ConnId>,
        /// The frame.
        frame: Frame,
    },
    /// Close a connection after the frames already queued on it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
    /// A session with `node` is up on `conn`.
    NodeUp {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// The connection carrying the session.
        conn: ConnId,
        /// Whether the session is visible (`nodes()`); sessions between a
        /// hidden global group and another group are not.
        visible: bool,
    },
    /// The session with `node` ended.
    NodeDown {
        /// The peer.
        node: NodeName,
        /// Its creation.
        creation: u32,
        /// Why.
        reason: DownReason,
    },
    /// Put a message into a local process's mailbox.
    Deliver {
        /// The local process's serial.
        to: u64,
        /// The message.
        msg: Message,
    },
    /// End a local process: deliver `Message::Exit` and close its mailbox.
    Kill {
        /// The local process's serial.
        serial: u64,
        /// The reason.
        reason: ExitReason,
    },
    /// A `connect` request is answered.
    ConnectDone {
        /// The request.
        req: ReqId,
        /// The connected node, or why not.
        result: Result<NodeName, ConnectError>,
    },
    /// Something for the process-group layer of the driver.
    Pg(PgEffect),
    /// Something for the name service of the driver.
    Names(NamesEffect),
    /// Something for the global-group layer of the driver.
    Groups(GlobalGroupsEffect),
}

/// The queue of effects the core produced and the driver has not taken yet.
#[derive(Debug, Default)]
pub struct Effects(VecDeque<Effect>);

impl Effects {
    /// Queues an effect.
    pub fn push(&mut self, e: Effect) {
        self.0.push_back(e);
    }

    /// Takes the oldest effect.
    pub fn pop(&mut self) -> Option<Effect> {
        self.0.pop_front()
    }

    /// Number of queued effects.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
