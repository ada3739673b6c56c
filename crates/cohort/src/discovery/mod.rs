//! Node discovery: finding peers by DNS (A/AAAA or SRV records) or a seeds
//! file, polled, as Elixir's libcluster strategies do.
//!
//! A strategy ([`Strategy`]) is started with [`Node::discover`](crate::Node::discover). Every
//! `interval` it looks its addresses up and connects to each one whose node
//! is not connected; node names come from the handshake, not from DNS.
//!
//! **Discovery only adds.** A lookup that fails, times out or returns nothing
//! changes nothing: no session is ever closed by discovery (liveness does
//! that). (A lookup that finds only this node itself is not empty: the
//! cluster is this node.) An address that a successful, non-empty lookup no
//! longer lists is
//! kept for `forget_after`; after that, if its node is not connected, the
//! node is forgotten ([`Node::forget`](crate::Node::forget): no redial forever); a node still
//! connected stays. An address of this node itself is skipped (its listen
//! address, every interface address with its port when it listens on all
//! interfaces, and any address whose handshake turned out to reach itself).
//!
//! Each strategy keeps its last result, error and counters
//! ([`Node::discovery`](crate::Node::discovery)); a change of its address set is logged at `info`, a
//! new error at `warn` (repeats of the same error at `debug`).
//!
//! Hostile or broken input is bounded: at most [`MAX_ADDRS`] addresses per
//! lookup (more are an error, and the lookup changes nothing), a seeds file
//! of at most [`MAX_FILE_BYTES`], a lookup bounded by `interval` and a
//! resolver time-out.

mod lookup;
mod run;
pub(crate) mod state;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::core::pid::NodeName;

/// At most this many addresses are taken from one lookup; a larger answer
/// is an error (the lookup changes nothing).
pub const MAX_ADDRS: usize = 1024;

/// A seeds file larger than this is refused (the lookup changes nothing).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The default polling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The default time after which an address left out of the results, whose
/// node is not connected, is forgotten.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(60);

/// Where a strategy finds addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The A and AAAA records of `host`, each address at `port` (default:
    /// this node's listen port).
    Dns {
        /// The name to look up.
        host: String,
        /// The port of every address; `None` for this node's own.
        port: Option<u16>,
    },
    /// The SRV records of `name` (`_cohort._tcp.svc.example`): each
    /// target's addresses at the record's port.
    Srv {
        /// The SRV name.
        name: String,
    },
    /// A file with one `HOST:PORT` a line (`#` starts a comment), read
    /// at every round, so a change is picked up without a restart.
    File {
        /// Its path.
        path: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dns { host, port: None } => write!(f, "dns:{host}"),
            Source::Dns {
                host,
                port: Some(p),
            } => write!(f, "dns:{host}:{p}"),
            Source::Srv { name } => write!(f, "srv:{name}"),
            Source::File { path } => write!(f, "file:{}", path.display()),
        }
    }
}

/// One discovery strategy and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strategy {
    /// Where the addresses come from.
    pub source: Source,
    /// The DNS server to ask (`None`: the system's, from
    /// `/etc/resolv.conf`). Unused by the file strategy.
    pub resolver: Option<SocketAddr>,
    /// How often to look up (and to check the file for changes).
    pub interval: Duration,
    /// How long an address may be missing from the results before its
    /// node, when not connected, is forgotten.
    pub forget_after: Duration,
}

/// Why a strategy could not be parsed or started. Nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The text is not `dns:HOST[:PORT]`, `srv:NAME` or `file:PATH`.
    #[error("{0:?} is not a discovery strategy (dns:HOST[:PORT], srv:NAME or file:PATH)")]
    Syntax(String),
    /// A setting is out of range (an interval of zero, say).
    #[error("discovery {strategy}: {why}")]
    Setting {
        /// The strategy.
        strategy: String,
        /// What is wrong.
        why: String,
    },
    /// The system's resolver configuration could not be read.
    #[error("discovery {strategy}: cannot set up the DNS resolver: {why}")]
    Resolver {
        /// The strategy.
        strategy: String,
        /// The resolver's error.
        why: String,
    },
}

impl Strategy {
    fn new(source: Source) -> Self {
        Strategy {
            source,
            resolver: None,
            interval: DEFAULT_INTERVAL,
            forget_after: DEFAULT_FORGET_AFTER,
        }
    }

    /// Polls the A/AAAA records of `host`; each address at `port`, or at
    /// this node's listen port when `None`.
    pub fn dns(host: impl Into<String>, port: Option<u16>) -> Self {
        Self::new(Source::Dns {
            host: host.into(),
            port,
        })
    }

    /// Polls the SRV records of `name`.
    pub fn srv(name: impl Into<String>) -> Self {
        Self::new(Source::Srv { name: name.into() })
    }

    /// Reads `HOST:PORT` lines from the file at `path` when it changes.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Source::File { path: path.into() })
    }

    /// Parses `dns:HOST[:PORT]`, `srv:NAME` or `file:PATH`.
    ///
    /// ```
    /// use cohort_registry::discovery::{Source, Strategy};
    /// let s = Strategy::parse("dns:cohort.internal:4000").unwrap();
    /// assert_eq!(s.source, Source::Dns { host: "cohort.internal".into(), port: Some(4000) });
    /// assert!(Strategy::parse("dns:").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, DiscoveryError> {
        let bad = || DiscoveryError::Syntax(text.to_string());
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        if rest.is_empty() || rest.chars().any(char::is_whitespace) && kind != "file" {
            return Err(bad());
        }
        match kind {
            "dns" => {
                let (host, port) = match rest.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                        let port: u16 = p.parse().map_err(|_| bad())?;
                        if port == 0 {
                            return Err(bad());
                        }
                        (h.trim_start_matches('[').trim_end_matches(']'), Some(port))
                    }
                    _ => (rest, None),
                };
                if host.is_empty() {
                    return Err(bad());
                }
                Ok(Self::dns(host, port))
            }
            "srv" => Ok(Self::srv(rest)),
            "file" => Ok(Self::file(rest)),
            _ => Err(bad()),
        }
    }

    /// Asks the DNS server at `addr` instead of the system's.
    pub fn resolver(mut self, addr: SocketAddr) -> Self {
        self.resolver = Some(addr);
        self
    }

    /// Looks up every `d` (default 5 s).
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Forgets a node missing from the results this long and not
    /// connected (default 60 s).
    pub fn forget_after(mut self, d: Duration) -> Self {
        self.forget_after = d;
        self
    }

    fn check(&self) -> Result<(), DiscoveryError> {
        let setting = |why: &str| DiscoveryError::Setting {
            strategy: self.source.to_string(),
            why: why.into(),
        };
        if self.interval.is_zero() {
            return Err(setting("the interval must be above zero"));
        }
        if self.forget_after.is_zero() {
            return Err(setting("the forget time must be above zero"));
        }
        if self.resolver.is_some() && matches!(self.source, Source::File { .. }) {
            return Err(setting("a resolver applies to dns: and srv: only"));
        }
        Ok(())
    }
}

/// One address a strategy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `IP:PORT` (or `HOST:PORT` from a seeds file).
    pub addr: String,
    /// The node that answered there, once a handshake told.
    pub node: Option<NodeName>,
    /// Whether a session with that node is up.
    pub connected: bool,
    /// Whether the last successful lookup listed it (else it is kept until
    /// it has been missing for `forget_after`).
    pub listed: bool,
    /// The last connection attempt's error, if it failed.
    pub error: Option<String>,
}

/// What a strategy did last, for `info` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyStatus {
    /// The strategy (`srv:_cohort._tcp.example`).
    pub strategy: String,
    /// The resolver asked, when not the system's.
    pub resolver: Option<SocketAddr>,
    /// When the last lookup ended.
    pub last_lookup: Option<SystemTime>,
    /// The addresses of the last successful lookup (this node's own left
    /// out); empty when it found nothing.
    pub last_result: Vec<String>,
    /// When the last successful lookup ended.
    pub last_ok: Option<SystemTime>,
    /// The last lookup's error, `None` when it succeeded.
    pub last_error: Option<String>,
    /// Lookups done.
    pub lookups: u64,
    /// Lookups that failed (empty answers are not counted).
    pub errors: u64,
    /// Addresses it knows, with their nodes.
    pub discovered: Vec<Discovered>,
    /// Nodes it forgot since it started.
    pub forgotten: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse() {
        let p = |s: &str| Strategy::parse(s).map(|s| s.source);
        assert_eq!(
            p("dns:cohort"),
            Ok(Source::Dns {
                host: "cohort".into(),
                port: None
            })
        );
        assert_eq!(
            p("dns:[::1]:7"),
            Ok(Source::Dns {
                host: "::1".into(),
                port: Some(7)
            })
        );
        assert_eq!(
            p("srv:_cohort._tcp.x"),
            Ok(Source::Srv {
                name: "_cohort._tcp.x".into()
            })
        );
        assert_eq!(
            p("file:/tmp/my seeds"),
            Ok(Source::File {
                path: "/tmp/my seeds".into()
            })
        );
        for bad in [
            "",
            "dns",
            "dns:",
            "dns::4000",
            "dns:h:0",
            "dns:h:x",
            "srv:",
            "ftp:x",
            "srv:a b",
        ] {
            assert!(Strategy::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Strategy::dns("h", None)
            .interval(Duration::ZERO)
            .check()
            .is_err());
        assert!(Strategy::file("f")
            .resolver("127.0.0.1:53".parse().unwrap())
            .check()
            .is_err());
    }
}
