//! What the global-group layer sends (definition checks, cross-group
//! queries and their answers) and the effects it asks of the driver.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::config::{DefDigest, GlobalGroupDef};
use crate::ids::ReqId;
use crate::pid::{NodeName, Pid};

/// A question asked of a node of another group (or of any node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// Who holds `name` in the default name table there?
    Whereis(String),
    /// Which names are registered there?
    RegisteredNames,
    /// Deliver `payload` to the holder of `name` there.
    Send {
        /// The name.
        name: String,
        /// The sending process, if any.
        from: Option<Pid>,
        /// The message.
        payload: Bytes,
    },
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The holder of the name, if any.
    Whereis(Option<Pid>),
    /// The registered names, sorted.
    Names(Vec<String>),
    /// The message went to this pid (or nobody held the name).
    Sent(Option<Pid>),
}

/// Wire messages of the global-group layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalGroupsFrame {
    /// "This is the digest of my group's definition": sent to a node the
    /// sender counts in its own group when their session comes up, and by
    /// a `sync`. A node whose own definition has the same digest counts
    /// the sender as synced; otherwise it answers with its whole
    /// [`GlobalGroupsFrame::Definition`], so the sender can name both
    /// definitions. The definition itself (a list of every node of the
    /// group) crosses only when the digests differ: a group of n nodes
    /// forms with n − 1 checks of a fixed size per node, not n − 1 lists
    /// of n names.
    Check {
        /// [`GlobalGroupDef::digest`] of the sender's own group definition.
        digest: DefDigest,
        /// The sender wants the receiver's check back (a `sync`).
        ask: bool,
    },
    /// A query; answered with [`GlobalGroupsFrame::Answer`].
    Ask {
        /// Request id on the asking node.
        id: u64,
        /// The question.
        query: Query,
    },
    /// The answer to an [`GlobalGroupsFrame::Ask`].
    Answer {
        /// The request id.
        id: u64,
        /// The answer.
        answer: Answer,
    },
    /// "This is my group's definition, and it is not yours": the answer
    /// to a [`GlobalGroupsFrame::Check`] whose digest differs from the
    /// receiver's, or from a node that does not count the sender in its
    /// own group (`None`: the node has no configuration). Never answered.
    Definition {
        /// The sender's own group definition.
        def: Option<GlobalGroupDef>,
    },
}

/// Effects of the global-group layer for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalGroupsEffect {
    /// An own-group node became synced (`up`) or was lost.
    Node {
        /// The node.
        node: NodeName,
        /// Up (synced) or down.
        up: bool,
    },
    /// A query to `node` was answered (`None`: the node went away first).
    Answered {
        /// The request.
        req: ReqId,
        /// The answer.
        answer: Option<Answer>,
    },
    /// A `sync` request completed.
    Synced {
        /// The request.
        req: ReqId,
    },
}
