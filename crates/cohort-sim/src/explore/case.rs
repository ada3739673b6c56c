//! What one exploration covers: the name operations, the table mode, the
//! faults allowed, and the choices a schedule is made of.

use std::fmt;
use std::str::FromStr;

use crate::net::NodeIdx;

/// What a name operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `register`.
    Register,
    /// `re_register`.
    ReRegister,
    /// `unregister`.
    Unregister,
}

/// One name operation: process `serial` of node `node` calls `kind` on
/// `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The calling node.
    pub node: NodeIdx,
    /// The calling process's serial on that node.
    pub serial: u64,
    /// What it calls.
    pub kind: OpKind,
    /// The name.
    pub name: String,
}

impl FromStr for Op {
    type Err = String;

    /// `n2.p1:unreg:x`: node 2, process 1, `unregister("x")`; the kinds are
    /// `reg`, `rereg` and `unreg`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad operation {s:?}; expected nN.pP:reg|rereg|unreg:NAME");
        let mut parts = s.trim().splitn(3, ':');
        let (who, kind, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(w), Some(k), Some(n)) if !n.is_empty() => (w, k, n),
            _ => return Err(bad()),
        };
        let (node, proc_) = who.split_once('.').ok_or_else(bad)?;
        let node = node
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        let serial = proc_
            .strip_prefix('p')
            .and_then(|p| p.parse().ok())
            .filter(|&p: &u64| p > 0)
            .ok_or_else(bad)?;
        let kind = match kind {
            "reg" => OpKind::Register,
            "rereg" => OpKind::ReRegister,
            "unreg" => OpKind::Unregister,
            _ => return Err(bad()),
        };
        Ok(Op {
            node,
            serial,
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OpKind::Register => "reg",
            OpKind::ReRegister => "rereg",
            OpKind::Unregister => "unreg",
        };
        write!(f, "n{}.p{}:{kind}:{}", self.node, self.serial, self.name)
    }
}

/// Parses a comma-separated list of operations.
pub fn parse_ops(s: &str) -> Result<Vec<Op>, String> {
    s.split(',')
        .filter(|w| !w.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The operations `--ops N` stands for: the first `N` of a clash on one
/// name from two nodes and an unregister forwarded from the third.
pub fn default_ops(n: usize) -> Vec<Op> {
    [
        "n0.p1:reg:x",
        "n1.p1:reg:x",
        "n2.p1:unreg:x",
        "n1.p1:rereg:x",
    ]
    .iter()
    .take(n)
    .map(|s| s.parse().expect("valid default operation"))
    .collect()
}

/// Which name table the operations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMode {
    /// The `locked` table (register under the name lock, loser killed).
    Locked,
    /// The `eventual` table (register locally, loser notified).
    Eventual,
}

impl TableMode {
    /// The simulator's table of this mode.
    pub fn table(self) -> &'static str {
        crate::registry::TABLES[self.index()]
    }

    /// The table's index in the simulator's names configuration.
    pub fn index(self) -> usize {
        match self {
            TableMode::Locked => 0,
            TableMode::Eventual => 1,
        }
    }
}

impl FromStr for TableMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "locked" => Ok(TableMode::Locked),
            "eventual" => Ok(TableMode::Eventual),
            _ => Err(format!("unknown mode {s:?}; expected locked or eventual")),
        }
    }
}

impl fmt::Display for TableMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}

/// One small case to explore exhaustively.
#[derive(Debug, Clone)]
pub struct Case {
    /// Nodes in the cluster (full mesh at the start).
    pub nodes: usize,
    /// Operations run one after another, each run to the end, before the
    /// exploration starts.
    pub setup: Vec<Op>,
    /// The operations whose interleavings are explored. Operations of one
    /// process start in list order, each after the previous one answered.
    pub ops: Vec<Op>,
    /// The table they use.
    pub mode: TableMode,
    /// Whether one node may be cut off from the others (and healed) at any
    /// point while an operation is unanswered.
    pub partition: bool,
    /// Whether one node may crash at any point while an operation is
    /// unanswered.
    pub crash: bool,
    /// How many times time may advance to the next timer while an
    /// operation is unanswered.
    pub timers: usize,
}

/// One choice of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Choice {
    /// Start operation `k` (`o0`).
    Op(usize),
    /// Deliver the next message of connection `link` from node `from` to
    /// node `to` (`d2.1>0`: from node 2 on connection 1 to node 0).
    Deliver {
        /// The sending node.
        from: NodeIdx,
        /// The connection.
        link: usize,
        /// The receiving node.
        to: NodeIdx,
    },
    /// Node `n` sends the changes it holds for batching (`f1`): the
    /// core's 1 ms flush timer, which fires long before any other.
    Flush(NodeIdx),
    /// Advance time to the earliest timer and fire every timer due (`t`).
    Timer,
    /// Cut node `n` off from the others (`p1`).
    Partition(NodeIdx),
    /// Heal the partition (`h`).
    Heal,
    /// Crash node `n` (`c1`): its state is gone, its peers see the
    /// connections reset.
    Crash(NodeIdx),
}

impl Choice {
    /// The node a choice acts on alone, if it acts on one node only: two
    /// such choices on different nodes commute.
    pub fn actor(self, case: &Case) -> Option<NodeIdx> {
        match self {
            Choice::Op(k) => case.ops.get(k).map(|o| o.node),
            Choice::Deliver { to, .. } | Choice::Flush(to) => Some(to),
            _ => None,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Choice::Op(k) => write!(f, "o{k}"),
            Choice::Deliver { from, link, to } => write!(f, "d{from}.{link}>{to}"),
            Choice::Flush(n) => write!(f, "f{n}"),
            Choice::Timer => f.write_str("t"),
            Choice::Partition(n) => write!(f, "p{n}"),
            Choice::Heal => f.write_str("h"),
            Choice::Crash(n) => write!(f, "c{n}"),
        }
    }
}

impl FromStr for Choice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad choice {s:?}; expected oK, dA.L>B, fN, t, pN, h or cN");
        let num = |x: &str| x.parse::<usize>().map_err(|_| bad());
        match s.trim() {
            "t" => Ok(Choice::Timer),
            "h" => Ok(Choice::Heal),
            w if w.starts_with('o') => Ok(Choice::Op(num(&w[1..])?)),
            w if w.starts_with('f') => Ok(Choice::Flush(num(&w[1..])?)),
            w if w.starts_with('p') => Ok(Choice::Partition(num(&w[1..])?)),
            w if w.starts_with('c') => Ok(Choice::Crash(num(&w[1..])?)),
            w if w.starts_with('d') => {
                let (head, to) = w[1..].split_once('>').ok_or_else(bad)?;
                let (from, link) = head.split_once('.').ok_or_else(bad)?;
                Ok(Choice::Deliver {
                    from: num(from)?,
                    link: num(link)?,
                    to: num(to)?,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Parses a schedule printed by the explorer (`o0,o1,d2.1>0`).
pub fn parse_schedule(s: &str) -> Result<Vec<Choice>, String> {
    s.split(',')
        .filter(|w| !w.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Prints a schedule as the explorer reads it back.
pub fn show_schedule(s: &[Choice]) -> String {
    let words: Vec<String> = s.iter().map(Choice::to_string).collect();
    words.join(",")
}
