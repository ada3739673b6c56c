//! The lookups themselves: DNS through hickory-resolver, the seeds file
//! through the file system. Each returns the addresses found, an empty list
//! when there are none, or an error naming what failed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::{DiscoveryError, Source, Strategy, MAX_ADDRS, MAX_FILE_BYTES};

/// How long one DNS query waits for an answer (one attempt per server).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A strategy's lookup, with what it keeps between rounds.
pub(super) enum Lookup {
    Dns {
        resolver: TokioResolver,
        host: String,
        port: Option<u16>,
    },
    Srv {
        resolver: TokioResolver,
        name: String,
    },
    File {
        path: PathBuf,
    },
}

fn resolver(s: &Strategy) -> Result<TokioResolver, DiscoveryError> {
    let err = |e: NetError| DiscoveryError::Resolver {
        strategy: s.source.to_string(),
        why: e.to_string(),
    };
    let mut b = match s.resolver {
        Some(addr) => {
            let conn = |mut c: ConnectionConfig| {
                c.port = addr.port();
                c
            };
            let server = NameServerConfig::new(
                addr.ip(),
                true,
                vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
            );
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            );
            *b.options_mut() = ResolverOpts::default();
            b
        }
        None => TokioResolver::builder_tokio().map_err(err)?,
    };
    let o = b.options_mut();
    // Discovery polls: every round must ask the server, not a cache, and a
    // silent server must not hold a round for long.
    o.cache_size = 0;
    o.timeout = QUERY_TIMEOUT;
    o.attempts = 1;
    if s.resolver.is_some() {
        o.use_hosts_file = ResolveHosts::Never;
    }
    b.build().map_err(err)
}

impl Lookup {
    pub(super) fn new(s: &Strategy) -> Result<Self, DiscoveryError> {
        Ok(match &s.source {
            Source::Dns { host, port } => Lookup::Dns {
                resolver: resolver(s)?,
                host: host.clone(),
                port: *port,
            },
            Source::Srv { name } => Lookup::Srv {
                resolver: resolver(s)?,
                name: name.clone(),
            },
            Source::File { path } => Lookup::File { path: path.clone() },
        })
    }

    /// Looks the addresses up; `own_port` is the port of `dns:HOST`
    /// without one.
    pub(super) async fn run(&mut self, own_port: u16) -> Result<Vec<String>, String> {
        let found = match self {
            Lookup::Dns {
                resolver,
                host,
                port,
            } => {
                let port = port.unwrap_or(own_port);
                ips(resolver, host.as_str())
                    .await?
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port).to_string())
                    .collect()
            }
            Lookup::Srv { resolver, name } => srv(resolver, name).await?,
            Lookup::File { path } => read_seeds(path)?,
        };
        if found.len() > MAX_ADDRS {
            return Err(format!(
                "{} addresses found, more than the {MAX_ADDRS} taken from one lookup",
                found.len()
            ));
        }
        Ok(found)
    }
}

fn no_records(e: &NetError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

async fn ips(r: &TokioResolver, host: &str) -> Result<BTreeSet<std::net::IpAddr>, String> {
    match r.lookup_ip(host).await {
        Ok(l) => Ok(l.iter().take(MAX_ADDRS + 1).collect()),
        Err(e) if no_records(&e) => Ok(BTreeSet::new()),
        Err(e) => Err(format!("{host}: {e}")),
    }
}

async fn srv(r: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
    let lookup = match r.srv_lookup(name).await {
        Ok(l) => l,
        Err(e) if no_records(&e) => return Ok(Vec::new()),
        Err(e) => return Err(format!("{name}: {e}")),
    };
    let mut targets = BTreeSet::new();
    for rec in lookup.answers() {
        if let RData::SRV(s) = &rec.data {
            targets.insert((s.target.to_string(), s.port));
            if targets.len() > MAX_ADDRS {
                return Err(format!(
                    "{name}: more than {MAX_ADDRS} SRV records (at most that many are taken)"
                ));
            }
        }
    }
    let mut out = BTreeSet::new();
    for (target, port) in targets {
        // A target that does not resolve fails the whole lookup: taking the
        // others alone would count its node as gone.
        for ip in ips(r, &target).await? {
            out.insert(SocketAddr::new(ip, port).to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// Reads the seeds file at every round: a change is seen at the next one,
/// even when it kept the file's length and modification time (coarse
/// file-system clocks); the file is small and bounded.
fn read_seeds(path: &Path) -> Result<Vec<String>, String> {
    let at = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{at}: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{at}: {} bytes, more than the {MAX_FILE_BYTES} read",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(|e| format!("{at}: {e}"))?,
            MAX_FILE_BYTES + 1,
        ),
        &mut text,
    )
    .map_err(|e| format!("{at}: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{at}: more than the {MAX_FILE_BYTES} bytes read"));
    }
    parse_seeds(&text).map_err(|e| format!("{at}: {e}"))
}

/// Parses a seeds file: one `HOST:PORT` a line, blank lines and `#`
/// comments ignored. Any bad line refuses the whole file.
pub(super) fn parse_seeds(text: &str) -> Result<Vec<String>, String> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format!("line {}: {line:?} is not HOST:PORT", i + 1);
        let (host, port) = line.rsplit_once(':').ok_or_else(bad)?;
        let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
        let host_ok = !host.is_empty()
            && !host.contains(char::is_whitespace)
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !port_ok || !host_ok || line.len() > 300 {
            return Err(bad());
        }
        out.insert(line.to_string());
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seeds_files_parse() {
        let text = "# seeds\n127.0.0.1:4000\n\n  db.internal:4001  # the db host\n[::1]:4002\n127.0.0.1:4000\n";
        assert_eq!(
            parse_seeds(text).unwrap(),
            vec!["127.0.0.1:4000", "[::1]:4002", "db.internal:4001"]
        );
        for bad in ["nohost", "h:0", "h:70000", ":4000", "::1:4000", "a b:1"] {
            let e = parse_seeds(&format!("ok:1\n{bad}\n")).unwrap_err();
            assert!(e.starts_with("line 2:"), "{bad}: {e}");
        }
    }
}
