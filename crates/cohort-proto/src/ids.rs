//! Plain identifiers shared by the layers: connections and requests.

/// Identifies one transport connection of a node.
pub type ConnId = u64;

/// Identifies one pending `connect` request.
pub type ReqId = u64;
