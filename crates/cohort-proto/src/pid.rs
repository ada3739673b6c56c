//! Node names, process identifiers and exit reasons.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of a node, such as `a@127.0.0.1`.
///
/// Cheap to clone (a shared string behind one thin pointer, so that a [`Pid`]
/// takes 24 bytes). Names order lexically; the order decides ties
/// (simultaneous connects, clash ranks) identically on every node.
///
/// Cheap to compare: two clones of one name are equal without reading the
/// text, and the first eight bytes of each name, kept as a number beside
/// the pointer to the text, decide most comparisons (the maps of a large
/// mesh are keyed by node names and searched on every frame).
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct NodeName(Arc<Name>);

/// The text of a node name and its first eight bytes as a big-endian
/// number, zero-padded: numbers order as their texts' first eight bytes
/// do, since a name holds no NUL (no control character at all).
struct Name {
    head: u64,
    text: Box<str>,
}

impl Name {
    fn new(text: Box<str>) -> Name {
        let mut head = [0u8; 8];
        let n = text.len().min(8);
        head[..n].copy_from_slice(&text.as_bytes()[..n]);
        Name {
            head: u64::from_be_bytes(head),
            text,
        }
    }
}

impl PartialEq for NodeName {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.head == other.0.head && self.0.text == other.0.text)
    }
}

impl Eq for NodeName {}

impl Ord for NodeName {
    /// Lexical order of the texts.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0
            .head
            .cmp(&other.0.head)
            .then_with(|| self.0.text.cmp(&other.0.text))
    }
}

impl PartialOrd for NodeName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for NodeName {
    /// As the text hashes (so a map keyed by names or pids hashes as a map
    /// keyed by strings does).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Serialize for NodeName {
    /// As a string (no copy is made to encode it).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl TryFrom<String> for NodeName {
    type Error = InvalidNodeName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeName::check(&s)?;
        // The decoded string's buffer becomes the name: no second copy.
        Ok(NodeName(Arc::new(Name::new(s.into_boxed_str()))))
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.as_str().to_string()
    }
}

impl NodeName {
    /// Makes a node name, checking its shape: `name@host`, both parts
    /// non-empty, no whitespace, at most 255 bytes.
    pub fn new(name: &str) -> Result<Self, InvalidNodeName> {
        NodeName::check(name)?;
        Ok(NodeName(Arc::new(Name::new(name.into()))))
    }

    fn check(name: &str) -> Result<(), InvalidNodeName> {
        let bad = |why: &'static str| InvalidNodeName {
            name: name.to_string(),
            why,
        };
        if name.len() > 255 {
            return Err(bad("longer than 255 bytes"));
        }
        let Some((local, host)) = name.split_once('@') else {
            return Err(bad("expected the form name@host"));
        };
        if local.is_empty() || host.is_empty() {
            return Err(bad("expected the form name@host"));
        }
        if host.contains('@') {
            return Err(bad("more than one '@'"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        Ok(())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::str::FromStr for NodeName {
    type Err = InvalidNodeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeName::new(s)
    }
}

/// A node name that does not have the form `name@host`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node name {name:?}: {why}")]
pub struct InvalidNodeName {
    /// The rejected input.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The address of one process: its node, the node's creation (incarnation)
/// and a serial number never reused within that creation.
///
/// Prints as `<a@host.3.17>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pid {
    node: NodeName,
    creation: u32,
    serial: u64,
}

impl Pid {
    /// Makes a pid from its parts.
    pub fn new(node: NodeName, creation: u32, serial: u64) -> Self {
        Pid {
            node,
            creation,
            serial,
        }
    }

    /// The node that owns the process.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The creation (incarnation) of the owning node when the pid was made.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The serial number of the process within its node's creation.
    pub fn serial(&self) -> u64 {
        self.serial
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}.{}>", self.node, self.creation, self.serial)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Pid {
    type Err = InvalidPid;
    /// Parses the printed form `<node@host.creation.serial>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidPid(s.to_string());
        let inner = s
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .ok_or_else(bad)?;
        let (rest, serial) = inner.rsplit_once('.').ok_or_else(bad)?;
        let (node, creation) = rest.rsplit_once('.').ok_or_else(bad)?;
        Ok(Pid {
            node: NodeName::new(node).map_err(|_| bad())?,
            creation: creation.parse().map_err(|_| bad())?,
            serial: serial.parse().map_err(|_| bad())?,
        })
    }
}

/// Text that is not a printed pid (`<node@host.creation.serial>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pid {0:?}: expected <node@host.creation.serial>")]
pub struct InvalidPid(pub String);

/// Why a process ended, as reported to its monitors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExitReason {
    /// The process finished normally (its handle was dropped or it called `exit`).
    Normal,
    /// The process was stopped as part of an orderly shutdown of its node.
    Shutdown,
    /// The process was killed by `kill`, with a reason.
    Killed(String),
    /// The process ended with an application-defined reason.
    Other(String),
    /// The monitored process did not exist (or had already ended) when the monitor was set.
    NoProc,
    /// The connection to the process's node was lost; the process may still run.
    NoConnection,
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Killed(why) => write!(f, "killed: {why}"),
            ExitReason::Other(why) => f.write_str(why),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_prints_and_parses() {
        let pid = Pid::new(NodeName::new("a@host").unwrap(), 3, 17);
        assert_eq!(pid.to_string(), "<a@host.3.17>");
        assert_eq!("<a@host.3.17>".parse::<Pid>().unwrap(), pid);
        let dotted = Pid::new(NodeName::new("a@127.0.0.1").unwrap(), 9, 1);
        assert_eq!(dotted.to_string().parse::<Pid>().unwrap(), dotted);
        assert!("a@host.3.17".parse::<Pid>().is_err());
        assert!("<a@host.x.17>".parse::<Pid>().is_err());
    }

    #[test]
    fn node_names_order_and_hash_as_their_text() {
        use std::hash::BuildHasher;
        let texts = [
            "a@h",
            "a@hh",
            "a@h1",
            "ab@h",
            "n9@sim",
            "n10@sim",
            "n100@sim",
            "n1000@sim",
            "n1000@sin",
            "n1001@sim",
            "node-0001@10.0.0.1",
            "node-0001@10.0.0.2",
            "z@z",
        ];
        let hasher = std::hash::RandomState::new();
        for a in texts {
            for b in texts {
                let (x, y) = (NodeName::new(a).unwrap(), NodeName::new(b).unwrap());
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
                assert_eq!(x == y, a == b, "{a} vs {b}");
            }
            let x = NodeName::new(a).unwrap();
            assert_eq!(x.cmp(&x.clone()), std::cmp::Ordering::Equal);
            assert_eq!(hasher.hash_one(&x), hasher.hash_one(a));
        }
    }

    #[test]
    fn node_names_are_checked() {
        assert!(NodeName::new("a@host").is_ok());
        for bad in ["", "a", "@host", "a@", "a@b@c", "a b@host"] {
            assert!(NodeName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
