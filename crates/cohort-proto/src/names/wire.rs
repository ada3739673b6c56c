//! What the name service sends: its frames and the claims, lock ids and
//! answers they carry.

use bytes::Bytes;
use ecow::EcoString;
use serde::{Deserialize, Serialize};

use crate::pid::{ExitReason, NodeName, Pid};

/// What happens to the losing claim of a clash. Only the loser's own node acts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[non_exhaustive]
pub enum LossPolicy {
    /// The loser is killed (OTP's `random_exit_name`).
    #[default]
    Kill,
    /// The loser keeps running, unregistered, and finds
    /// [`Message::NameConflict`](crate::process::Message::NameConflict) in
    /// its mailbox (OTP's `random_notify_name`).
    Notify,
    /// Both claimants are notified and the name is dropped (OTP's
    /// `notify_all_names`). Wins over the other policies in a clash.
    DropBoth,
}

/// One claim of a name by a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The name.
    pub name: String,
    /// The claiming process; its node is the claim's origin.
    pub pid: Pid,
    /// Application metadata.
    pub meta: Bytes,
    /// Lamport stamp of the claim (unique per origin).
    pub stamp: u64,
    /// What happens to this claim if it loses a clash.
    pub policy: LossPolicy,
    /// For a `re_register`'s claim: the line of claims it continues (it
    /// replaced the name's holder), which gives its place in the rank.
    pub supersedes: Option<Succession>,
}

/// The line of claims a `re_register`'s claim continues: it replaced the
/// name's holder then, which had replaced the holder before it, and so on
/// back to the claim that began the line (a plain registration). A claim
/// of a line takes the place of that first claim in the rank (see
/// [`rank`](super::rank)), and a claim further down a line replaces the
/// claims of the line before it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Succession {
    /// The process whose claim began the line.
    pub pid: Pid,
    /// That claim's stamp.
    pub stamp: u64,
    /// How many `re_register`s in a row led from that claim to this one
    /// (1 when it replaced the first claim itself).
    pub depth: u32,
}

impl Claim {
    /// The claim's place in the rank: the stamp and pid of the claim that
    /// began its line (its own when it replaced none).
    pub fn place(&self) -> (u64, &Pid) {
        match &self.supersedes {
            Some(s) => (s.stamp, &s.pid),
            None => (self.stamp, &self.pid),
        }
    }

    /// How many `re_register`s in a row led to this claim (0 for a plain
    /// registration).
    pub fn depth(&self) -> u32 {
        self.supersedes.as_ref().map_or(0, |s| s.depth)
    }
}

/// A claim of one of the sender's own processes as an `Add` carries it:
/// the pid's node and creation are the sender's (its session's), so they
/// are neither sent nor decoded per claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnClaim {
    /// The name.
    pub name: EcoString,
    /// The claiming process's serial on the sender.
    pub serial: u64,
    /// Application metadata.
    pub meta: Bytes,
    /// Lamport stamp of the claim.
    pub stamp: u64,
    /// What happens to this claim if it loses a clash.
    pub policy: LossPolicy,
    /// The line of claims this one continues (a `re_register`'s).
    pub supersedes: Option<Succession>,
}

impl OwnClaim {
    /// `c` without its pid's node and creation.
    pub fn of(c: &Claim) -> Self {
        OwnClaim {
            name: c.name.as_str().into(),
            serial: c.pid.serial(),
            meta: c.meta.clone(),
            stamp: c.stamp,
            policy: c.policy,
            supersedes: c.supersedes.clone(),
        }
    }

    /// The claim, made by a process of `node` (of creation `creation`).
    pub fn claim(&self, node: &NodeName, creation: u32) -> Claim {
        Claim {
            name: self.name.to_string(),
            pid: Pid::new(node.clone(), creation, self.serial),
            meta: self.meta.clone(),
            stamp: self.stamp,
            policy: self.policy,
            supersedes: self.supersedes.clone(),
        }
    }
}

/// Identifies a lock: a resource and the requester id that may share it
/// (OTP's `{ResourceId, LockRequesterId}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockId {
    /// The locked resource.
    pub resource: String,
    /// Holders with the same requester id share the lock.
    pub requester: String,
}

impl LockId {
    /// A lock id.
    pub fn new(resource: impl Into<String>, requester: impl Into<String>) -> Self {
        LockId {
            resource: resource.into(),
            requester: requester.into(),
        }
    }
}

/// A node's answer to a `Prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareAnswer {
    /// The name is locked for the requester.
    Granted,
    /// The name is held by a process.
    Taken,
    /// An older request holds the name lock: retry later.
    Busy,
}

/// Wire messages of the name service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NamesFrame {
    /// All of the sender's own claims, per table, as of its stream
    /// position `seq`: replaces everything the receiver holds of the sender.
    /// A large snapshot comes in parts (no frame exceeds the max frame
    /// size); the receiver installs it when the last part arrives.
    Snapshot {
        /// The sender's stream position.
        seq: u64,
        /// The sender's claims, per table (in this part).
        tables: Vec<(String, Vec<Claim>)>,
        /// More parts follow.
        more: bool,
    },
    /// The sender's stream position, sent every second: a receiver that
    /// is behind asks for a snapshot (a lost tail is repaired).
    Head {
        /// The sender's stream position.
        seq: u64,
    },
    /// Asks for a `Snapshot` (the receiver missed part of the stream).
    Resync,
    /// The sender made these claims, one stream position each (an
    /// eventual node sends the claims made since its last frame together);
    /// answer `Ack { op }` when `ack` is set.
    Add {
        /// The table.
        table: String,
        /// The claims (of the sender's processes), in the order they were made.
        claims: Vec<OwnClaim>,
        /// The sender's stream position after the first claim; the k-th
        /// claim (from 0) moves it to `seq + k`.
        seq: u64,
        /// The sender's operation waiting for an ack.
        ack: Option<u64>,
    },
    /// The sender retracted a claim; answer `Ack { op }` when `ack` is set.
    Remove {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The claiming process.
        pid: Pid,
        /// The claim's stamp.
        stamp: u64,
        /// Why, for the events.
        reason: WireReason,
        /// The sender's stream position after this change.
        seq: u64,
        /// The sender's operation waiting for an ack.
        ack: Option<u64>,
    },
    /// Lock `claim.name` for a locked registration and stage `claim`
    /// under that lock (not visible until the `Commit`).
    Prepare {
        /// The table.
        table: String,
        /// The claim to stage (of a sender's process); its stamp is the
        /// request's priority.
        claim: OwnClaim,
        /// The sender's operation.
        op: u64,
        /// The attempt of that operation.
        attempt: u32,
        /// A `re_register`: grant even when the name is held.
        replace: bool,
    },
    /// Answer to a `Prepare`.
    Prepared {
        /// The operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// The answer.
        answer: PrepareAnswer,
    },
    /// Every member granted the sender's request `stamp` on `name`: install
    /// the claim staged by its `Prepare` and release the lock. A receiver
    /// that no longer holds the staged claim asks for a snapshot.
    Commit {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The request's (and claim's) stamp.
        stamp: u64,
        /// The sender's stream position after this change.
        seq: u64,
    },
    /// Drop the name lock (held or awaited) of the sender's request `stamp`.
    Release {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The request's stamp.
        stamp: u64,
    },
    /// Acknowledges an `Add`, `Remove` or `Ping`.
    Ack {
        /// The operation.
        op: u64,
    },
    /// Asks the origin of `name`'s holder to unregister it: the claim of
    /// `pid` stamped `stamp`, the one the sender saw, and no other (a
    /// newer claim of the name stays). Answered by `Unregistered`.
    Unregister {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// The holder the sender saw (a process of the receiver).
        pid: Pid,
        /// The stamp of the claim the sender saw.
        stamp: u64,
        /// The sender's operation waiting for the answer.
        op: u64,
    },
    /// Answer to `Unregister`: whether the receiver retracted the claim
    /// (else it was no longer current: unregistered, replaced or lost).
    Unregistered {
        /// The asker's operation.
        op: u64,
        /// Whether the claim was retracted.
        applied: bool,
    },
    /// Answered by `Ack` once everything before it was applied.
    Ping {
        /// The sender's operation.
        op: u64,
    },
    /// The sender's claims that lost a clash lately (name, pid, stamp) and
    /// how each clash was settled, per table: sent just before a
    /// `Snapshot`, so that a receiver that held one of these claims and
    /// missed its retraction reports the clash when the snapshot drops it.
    Lost {
        /// The claims, per table.
        tables: Vec<(String, Vec<LostClaim>)>,
    },
    /// The sender's table members changed: it has sessions with `up` now
    /// and no longer with `down`; with `all`, `up` is its whole list (the
    /// first such frame of a session). A receiver that hears of members
    /// it has no session with reports a partial mesh.
    Members {
        /// Whether `up` replaces what the receiver held of the sender.
        all: bool,
        /// Members the sender has a session with now.
        up: Vec<NodeName>,
        /// Members it has no session with any more.
        down: Vec<NodeName>,
    },
    /// The sender's members and itself, in brief (sent when it changed or
    /// differs from the receiver's): a receiver whose own differs answers
    /// with its whole [`NamesFrame::Members`] list.
    MembersView {
        /// How many nodes (the sender included).
        count: u32,
        /// XOR of a fixed hash of their names.
        hash: u64,
    },
    /// Take a lock for `holder` (a process of the sender).
    LockSet {
        /// The sender's operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// The lock.
        lock: LockId,
        /// The holding process.
        holder: Pid,
    },
    /// Answer to `LockSet`.
    LockReply {
        /// The operation.
        op: u64,
        /// Its attempt.
        attempt: u32,
        /// Whether the lock is held now.
        granted: bool,
        /// Whether this holder was added by this request (not held before).
        fresh: bool,
    },
    /// `holder` releases `lock`.
    LockDel {
        /// The lock.
        lock: LockId,
        /// The holding process.
        holder: Pid,
    },
    /// `holder` ended: it releases every lock.
    LockGone {
        /// The process.
        holder: Pid,
    },
}

/// A claim that lost a clash, as [`NamesFrame::Lost`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostClaim {
    /// The name.
    pub name: String,
    /// The losing process (of the sender).
    pub pid: Pid,
    /// The lost claim's stamp.
    pub stamp: u64,
    /// The surviving holder (none when both were dropped).
    pub winner: Option<Pid>,
    /// What the sender did to the loser.
    pub action: LossPolicy,
}

/// [`UnregisterReason`](super::UnregisterReason) as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireReason {
    /// `unregister`.
    Unregistered,
    /// The process ended.
    Exited(ExitReason),
    /// Lost a clash: the retracting node settled it so. Every node that
    /// held the claim reports the clash when it applies this retraction.
    Conflict {
        /// The surviving holder (none when both were dropped).
        winner: Option<Pid>,
        /// What the loser's node did to it.
        action: LossPolicy,
    },
    /// Replaced by `re_register`.
    Replaced,
}
