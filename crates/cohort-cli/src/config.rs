//! The node configuration: command-line flags and an optional TOML file.
//!
//! The file holds everything the flags hold, plus global groups, process
//! group scopes, name tables with their modes and conflict policies, and
//! timing. A flag given on the command line wins over the file. Any error
//! is one line naming the bad entry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cohort::discovery::Strategy;
use cohort::transport::tls::TlsFiles as NodeTlsFiles;
use cohort::NodeName;
use cohort::{GlobalGroupDef, GlobalGroupsConfig, Publish};
use cohort::{LossPolicy, Mode, NamesConfig, TableConfig};
use serde::Deserialize;

/// The TOML file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Node name, `name@host`.
    pub name: Option<String>,
    /// Listen address for peers.
    pub listen: Option<String>,
    /// Seed addresses to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Discovery strategies, one `[[discovery]]` table each.
    #[serde(default)]
    pub discovery: Vec<FileDiscovery>,
    /// Cookie file.
    pub cookie_file: Option<PathBuf>,
    /// Admin API address.
    pub admin: Option<String>,
    /// Tick interval in milliseconds.
    pub tick_interval_ms: Option<u64>,
    /// Peer timeout in milliseconds.
    pub peer_timeout_ms: Option<u64>,
    /// Handshake timeout in milliseconds (default 5000).
    pub handshake_timeout_ms: Option<u64>,
    /// Inbound connections in handshake at once (default 64).
    pub max_handshakes: Option<usize>,
    /// Liveness-probe bound, in milliseconds, when a connection claims the
    /// name of a connected node (default 1000).
    pub probe_timeout_ms: Option<u64>,
    /// Largest frame between nodes, in bytes (default 16 MiB).
    pub max_frame: Option<usize>,
    /// Largest metadata of a name or membership, in bytes (default 64 KiB).
    pub max_meta: Option<usize>,
    /// Worker threads of the node's runtime (default: one per CPU core).
    pub threads: Option<usize>,
    /// Transitive full mesh.
    pub mesh: Option<bool>,
    /// Global groups.
    #[serde(default)]
    pub global_groups: Vec<FileGroup>,
    /// Process-group scopes to start (the default scope `pg` always runs).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Name tables; the first is the default. Without any: one locked
    /// table `global` with the kill policy.
    #[serde(default)]
    pub name_tables: Vec<FileTable>,
    /// At most this many process-group scopes run on the node (admin calls
    /// start a scope on its first use; past the cap they are refused).
    pub max_scopes: Option<usize>,
    /// A scope started by an admin call is stopped again after this many
    /// milliseconds without local members, watchers or use.
    pub scope_idle_ms: Option<u64>,
    /// The Erlang distribution endpoint (absent: none).
    pub erlang: Option<FileErlang>,
    /// Mutual TLS between nodes.
    pub tls: Option<FileTls>,
}

/// The `[erlang]` table: this node joins an Erlang distribution cluster
/// and bridges OTP `pg` scopes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileErlang {
    /// The Erlang node name, `name@host`.
    pub node: Option<String>,
    /// The Erlang cookie's file (first line), default `~/.erlang.cookie`.
    pub cookie_file: Option<PathBuf>,
    /// BEAM nodes to dial.
    #[serde(default)]
    pub connect: Vec<String>,
    /// OTP `pg` scopes to bridge (default `["pg"]`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The `[tls]` table: PEM files of mutual TLS between nodes (the flags
/// `--tls-cert`, `--tls-key` and `--tls-ca` override each key).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// The node's certificate chain.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The CA that peers' certificates must chain to.
    pub ca: Option<PathBuf>,
}

/// One `[[global_groups]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGroup {
    /// Group name.
    pub name: String,
    /// `normal` or `hidden`.
    pub publish: String,
    /// Node names.
    pub nodes: Vec<String>,
}

/// One `[[discovery]]` entry: exactly one of `dns`, `srv` and `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDiscovery {
    /// `HOST[:PORT]`: poll its A/AAAA records.
    pub dns: Option<String>,
    /// An SRV name: poll its records.
    pub srv: Option<String>,
    /// A seeds file, one `HOST:PORT` a line.
    pub file: Option<PathBuf>,
    /// The DNS server to ask, `IP:PORT`.
    pub resolver: Option<String>,
    /// Polling interval in milliseconds.
    pub interval_ms: Option<u64>,
    /// A node missing from the results this long, and not connected, is
    /// forgotten.
    pub forget_after_ms: Option<u64>,
}

/// One `[[name_tables]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    /// Table name.
    pub name: String,
    /// `locked` or `eventual`.
    pub mode: Option<String>,
    /// `kill`, `notify` or `drop_both`.
    pub policy: Option<String>,
    /// Whether a pid may hold several names.
    pub multiple_names: Option<bool>,
}

/// What the flags say (each overrides the file).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--name`.
    pub name: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--connect`, repeated.
    pub connect: Vec<String>,
    /// `--discover` and its settings.
    pub discovery: DiscoveryFlags,
    /// `--cookie-file`.
    pub cookie_file: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--admin`.
    pub admin: Option<String>,
    /// Hidden `--bench-api`: serve the `/bench/` endpoints.
    pub bench_api: bool,
    /// `--threads`.
    pub threads: Option<usize>,
    /// The admin API's security and limits flags.
    pub admin_opts: AdminFlags,
    /// The Erlang distribution endpoint's flags.
    pub erlang: ErlangFlags,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-ca`.
    pub tls_ca: Option<PathBuf>,
}

/// `--erlang-*` flags (each overrides its `[erlang]` entry; lists add to it).
#[derive(Debug, Default, Clone)]
pub struct ErlangFlags {
    /// `--erlang-node`.
    pub node: Option<String>,
    /// `--erlang-cookie-file`.
    pub cookie_file: Option<PathBuf>,
    /// `--erlang-connect`, repeated.
    pub connect: Vec<String>,
    /// `--erlang-scope`, repeated.
    pub scopes: Vec<String>,
}

/// The Erlang distribution endpoint, checked.
#[derive(Debug, Clone)]
pub struct ErlangConfig {
    /// The Erlang node name.
    pub node: String,
    /// The cookie's file; `None` is `~/.erlang.cookie`.
    pub cookie_file: Option<PathBuf>,
    /// BEAM nodes to dial.
    pub connect: Vec<String>,
    /// Bridged scopes.
    pub scopes: Vec<String>,
    /// The host's EPMD: 127.0.0.1 at `ERL_EPMD_PORT`, else 4369, as `erl`
    /// finds it.
    pub epmd: String,
}

/// An Erlang node name: `name@host`, both parts non-empty, at most 255 bytes.
fn erlang_node(s: &str, what: &str) -> Result<()> {
    match s.split_once('@') {
        Some((n, h)) if !n.is_empty() && !h.is_empty() && s.len() <= 255 && !h.contains('@') => {
            Ok(())
        }
        _ => bail!("{what}: {s:?} is not an Erlang node name (name@host)"),
    }
}

fn erlang_config(file: Option<&FileErlang>, f: &ErlangFlags) -> Result<Option<ErlangConfig>> {
    let empty = FileErlang::default();
    let fe = file.unwrap_or(&empty);
    let Some(node) = f.node.clone().or(fe.node.clone()) else {
        if file.is_some()
            || !f.connect.is_empty()
            || !f.scopes.is_empty()
            || f.cookie_file.is_some()
        {
            bail!("--erlang-node is required to bridge to Erlang (or `node` in [erlang])");
        }
        return Ok(None);
    };
    erlang_node(&node, "--erlang-node")?;
    let mut connect = fe.connect.clone();
    connect.extend(f.connect.iter().cloned());
    for (i, c) in connect.iter().enumerate() {
        erlang_node(c, &format!("erlang.connect[{}]", i + 1))?;
    }
    let mut scopes = fe.scopes.clone();
    scopes.extend(f.scopes.iter().cloned());
    if scopes.is_empty() {
        scopes.push("pg".into());
    }
    for (i, sc) in scopes.iter().enumerate() {
        check_name("the scope name", sc).map_err(|e| anyhow!("erlang.scopes[{}]: {e}", i + 1))?;
    }
    let mut seen = std::collections::HashSet::new();
    scopes.retain(|s| seen.insert(s.clone()));
    let port = match std::env::var("ERL_EPMD_PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| anyhow!("ERL_EPMD_PORT: {p:?} is not a port"))?,
        Err(_) => 4369,
    };
    Ok(Some(ErlangConfig {
        node,
        cookie_file: f.cookie_file.clone().or(fe.cookie_file.clone()),
        connect,
        scopes,
        epmd: format!("127.0.0.1:{port}"),
    }))
}

/// The discovery flags.
#[derive(Debug, Default, Clone)]
pub struct DiscoveryFlags {
    /// `--discover`, repeated.
    pub strategies: Vec<String>,
    /// `--resolver`.
    pub resolver: Option<String>,
    /// `--discover-interval-ms`.
    pub interval_ms: Option<u64>,
    /// `--discover-forget-ms`.
    pub forget_ms: Option<u64>,
}

/// Flags of the admin API besides its address.
#[derive(Debug, Default, Clone)]
pub struct AdminFlags {
    /// `--admin-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--admin-host`, repeated: more names the `Host` header may carry.
    pub hosts: Vec<String>,
    /// `--admin-tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--admin-tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--admin-insecure`: plain HTTP on a non-loopback address.
    pub insecure: bool,
    /// `--metrics-open`: `/metrics` without the token.
    pub metrics_open: bool,
    /// `--admin-max-connections`.
    pub max_connections: Option<usize>,
    /// `--admin-header-timeout-ms`.
    pub header_timeout_ms: Option<u64>,
    /// `--dashboard-read-only`: the dashboard shows, and refuses actions.
    pub dashboard_read_only: bool,
    /// `--admin-idle-timeout-ms`.
    pub idle_timeout_ms: Option<u64>,
    /// `--admin-ws-queue-bytes`.
    pub ws_queue_bytes: Option<usize>,
}

/// Where the admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    /// `--admin none`: no admin API.
    Off,
    /// `HOST:PORT` with an IP.
    Tcp(SocketAddr),
    /// `unix:PATH`: a Unix socket created with mode 0600.
    Unix(PathBuf),
}

impl AdminAddr {
    /// Parses `none`, `unix:PATH` or `IP:PORT` (the `--admin` flag).
    pub fn parse(s: &str) -> Result<AdminAddr> {
        if s == "none" {
            return Ok(AdminAddr::Off);
        }
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                bail!("--admin: {s:?} has no path (unix:PATH)");
            }
            return Ok(AdminAddr::Unix(PathBuf::from(p)));
        }
        s.parse()
            .map(AdminAddr::Tcp)
            .map_err(|_| anyhow!("--admin: {s:?} is not an address (IP:PORT, unix:PATH or none)"))
    }
}

/// The TLS certificate and key of the admin API (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The admin API's address, security and limits, checked.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens.
    pub addr: AdminAddr,
    /// The token file, if not from the environment or the default file.
    pub token_file: Option<PathBuf>,
    /// More `Host` header values accepted (`NAME` or `NAME:PORT`).
    pub hosts: Vec<String>,
    /// TLS for a TCP address.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address was asked for explicitly.
    pub insecure: bool,
    /// `/metrics` answers without the token.
    pub metrics_open: bool,
    /// At most this many connections at once; more are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this, counted from when the
    /// server waits for them (a new connection, or the previous answer).
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is dropped with
    /// its connection.
    pub idle_timeout: Duration,
    /// Bytes queued for one WebSocket client at most; past them the client
    /// is sent a close frame and dropped.
    pub ws_queue_bytes: usize,
    /// The dashboard refuses actions (block, unblock, disconnect, sync,
    /// unregister) and does not offer them.
    pub dashboard_read_only: bool,
    /// The node's name tables and their modes, for the dashboard.
    pub name_tables: Vec<(String, String)>,
}

impl AdminConfig {
    /// Defaults for `addr`.
    pub fn new(addr: AdminAddr) -> Self {
        AdminConfig {
            addr,
            token_file: None,
            hosts: Vec::new(),
            tls: None,
            insecure: false,
            metrics_open: false,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            ws_queue_bytes: 4 << 20,
            dashboard_read_only: false,
            name_tables: Vec::new(),
        }
    }
}

/// The admin API's settings. A non-loopback TCP address without its own
/// certificate serves HTTPS with the node's cluster certificate (`[tls]`)
/// when there is one.
fn admin_config(
    addr_s: &str,
    f: &AdminFlags,
    node_tls: Option<&NodeTlsFiles>,
) -> Result<AdminConfig> {
    let addr = AdminAddr::parse(addr_s)?;
    let mut c = AdminConfig::new(addr.clone());
    c.token_file = f.token_file.clone();
    for h in &f.hosts {
        if h.is_empty() || h.contains(['/', ' ', '@']) {
            bail!("--admin-host: {h:?} is not a host name (NAME or NAME:PORT)");
        }
        c.hosts.push(h.to_ascii_lowercase());
    }
    c.tls = match (&f.tls_cert, &f.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => bail!("--admin-tls-cert needs --admin-tls-key"),
        (None, Some(_)) => bail!("--admin-tls-key needs --admin-tls-cert"),
    };
    c.insecure = f.insecure;
    c.metrics_open = f.metrics_open;
    c.dashboard_read_only = f.dashboard_read_only;
    if let (AdminAddr::Tcp(a), None, Some(n)) = (&addr, &c.tls, node_tls) {
        if !a.ip().is_loopback() && !c.insecure {
            c.tls = Some(TlsFiles {
                cert: n.cert.clone(),
                key: n.key.clone(),
            });
        }
    }
    match (&addr, &c.tls) {
        (AdminAddr::Tcp(a), None) if !a.ip().is_loopback() && !c.insecure => bail!(
            "--admin {a}: the admin API would be reachable from the network in plain HTTP; give --admin-tls-cert and --admin-tls-key (or the node's --tls-cert, --tls-key and --tls-ca), or --admin-insecure"
        ),
        (AdminAddr::Unix(_) | AdminAddr::Off, Some(_)) => {
            bail!("--admin-tls-cert and --admin-tls-key apply to a TCP --admin address only")
        }
        _ => {}
    }
    if let Some(n) = f.max_connections {
        if n == 0 {
            bail!("--admin-max-connections: must be at least 1");
        }
        c.max_connections = n;
    }
    for (v, what, field) in [
        (
            f.header_timeout_ms,
            "--admin-header-timeout-ms",
            &mut c.header_timeout,
        ),
        (
            f.idle_timeout_ms,
            "--admin-idle-timeout-ms",
            &mut c.idle_timeout,
        ),
    ] {
        if let Some(ms) = v {
            if ms == 0 {
                bail!("{what}: must be at least 1");
            }
            *field = Duration::from_millis(ms);
        }
    }
    if let Some(b) = f.ws_queue_bytes {
        if b < 1024 {
            bail!("--admin-ws-queue-bytes: must be at least 1024");
        }
        c.ws_queue_bytes = b;
    }
    Ok(c)
}

/// Everything a node needs, checked.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: NodeName,
    /// Listen address.
    pub listen: String,
    /// Seeds.
    pub connect: Vec<String>,
    /// Discovery strategies.
    pub discovery: Vec<Strategy>,
    /// Cookie file, if not from the environment or the default file.
    pub cookie_file: Option<PathBuf>,
    /// The admin API.
    pub admin: AdminConfig,
    /// Tick interval.
    pub tick_interval: Option<Duration>,
    /// Peer timeout.
    pub peer_timeout: Option<Duration>,
    /// Handshake timeout.
    pub handshake_timeout: Option<Duration>,
    /// Inbound connections in handshake at once.
    pub max_handshakes: Option<usize>,
    /// Liveness-probe bound.
    pub probe_timeout: Option<Duration>,
    /// Largest frame between nodes.
    pub max_frame: Option<usize>,
    /// Largest metadata of a name or membership.
    pub max_meta: Option<usize>,
    /// Worker threads of the node's runtime (`None`: one per CPU core).
    pub threads: Option<usize>,
    /// Mesh on or off.
    pub mesh: bool,
    /// Global groups.
    pub groups: GlobalGroupsConfig,
    /// Extra scopes.
    pub scopes: Vec<String>,
    /// Name tables.
    pub names: NamesConfig,
    /// Serve the bench-only `/bench/` admin endpoints.
    pub bench_api: bool,
    /// Limits of the scopes admin calls start.
    pub scope_limits: ScopeLimits,
    /// The Erlang distribution endpoint, if configured.
    pub erlang: Option<ErlangConfig>,
    /// Mutual TLS between nodes, when on.
    pub tls: Option<NodeTlsFiles>,
}

/// Most worker threads a node's runtime may be given (`threads`): each is an OS
/// thread with its own stack, so a typo of a few zeros must not start them.
pub const MAX_THREADS: usize = 1024;

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:4370";

/// Checks an admin address given to `cohort ctl`: HOST:PORT,
/// `https://HOST:PORT` or `unix:PATH` (clap shows the error with the flag's
/// name).
pub fn admin_addr(s: &str) -> std::result::Result<String, String> {
    let example = "HOST:PORT (for example 127.0.0.1:4370), https://HOST:PORT or unix:PATH";
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() {
            return Err(format!("{s:?} has no path; give {example}"));
        }
        return Ok(s.to_string());
    }
    if let Some(rest) = s.strip_prefix("https://") {
        return admin_addr(rest).map(|_| s.to_string());
    }
    if s.contains("://") {
        return Err(format!("{s:?} has a scheme; give {example}"));
    }
    if s.contains('/') {
        return Err(format!("{s:?} has a path; give {example}"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port; give {example}"));
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(format!(
            "{s:?} is not HOST:PORT ([ADDR]:PORT for IPv6); give {example}"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("{s:?}: {port:?} is not a port; give {example}")),
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // toml's message spans lines (a snippet); keep it to one line.
        let msg = e.message().to_string();
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].lines().count().max(1);
                format!(" (line {line})")
            })
            .unwrap_or_default();
        anyhow!("config {}: {msg}{at}", path.display())
    })
}

fn resolver_addr(s: &str, what: &str) -> Result<std::net::SocketAddr> {
    s.parse()
        .map_err(|_| anyhow!("{what}: {s:?} is not IP:PORT (the DNS server to ask)"))
}

fn millis(v: Option<u64>, what: &str) -> Result<Option<Duration>> {
    match v {
        Some(0) => bail!("{what}: must be at least 1"),
        v => Ok(v.map(Duration::from_millis)),
    }
}

/// The strategies of the `[[discovery]]` tables, then of the flags.
fn discovery(file: &[FileDiscovery], f: &DiscoveryFlags) -> Result<Vec<Strategy>> {
    let mut out = Vec::new();
    for (i, d) in file.iter().enumerate() {
        let at = format!("discovery[{}]", i + 1);
        let mut s = match (&d.dns, &d.srv, &d.file) {
            (Some(h), None, None) => Strategy::parse(&format!("dns:{h}")),
            (None, Some(n), None) => Strategy::parse(&format!("srv:{n}")),
            (None, None, Some(p)) => Ok(Strategy::file(p)),
            _ => bail!("{at}: give exactly one of dns = \"HOST[:PORT]\", srv = \"NAME\" or file = \"PATH\""),
        }
        .map_err(|e| anyhow!("{at}: {e}"))?;
        if let Some(r) = &d.resolver {
            s = s.resolver(resolver_addr(r, &format!("{at}.resolver"))?);
        }
        if let Some(t) = millis(d.interval_ms, &format!("{at}.interval_ms"))? {
            s = s.interval(t);
        }
        if let Some(t) = millis(d.forget_after_ms, &format!("{at}.forget_after_ms"))? {
            s = s.forget_after(t);
        }
        if s.resolver.is_some() && d.file.is_some() {
            bail!("{at}: resolver applies to dns and srv only");
        }
        out.push(s);
    }
    let resolver = f
        .resolver
        .as_deref()
        .map(|r| resolver_addr(r, "--resolver"))
        .transpose()?;
    let interval = millis(f.interval_ms, "--discover-interval-ms")?;
    let forget = millis(f.forget_ms, "--discover-forget-ms")?;
    for text in &f.strategies {
        let mut s = Strategy::parse(text).map_err(|e| anyhow!("--discover: {e}"))?;
        if let Some(r) = resolver {
            if !matches!(s.source, cohort::discovery::Source::File { .. }) {
                s = s.resolver(r);
            }
        }
        if let Some(t) = interval {
            s = s.interval(t);
        }
        if let Some(t) = forget {
            s = s.forget_after(t);
        }
        out.push(s);
    }
    // The flag applies to the flags' strategies only (a table has its own).
    if f.resolver.is_some()
        && !out[file.len()..]
            .iter()
            .any(|s| !matches!(s.source, cohort::discovery::Source::File { .. }))
    {
        bail!("--resolver: no --discover dns: or srv: strategy to use it");
    }
    Ok(out)
}

fn node_name(s: &str, what: &str) -> Result<NodeName> {
    NodeName::new(s).map_err(|e| anyhow!("{what}: {e}"))
}

/// The TLS files: all three (each from its flag, else the `[tls]` table)
/// or none.
fn tls_files(flags: &Flags, file: Option<&FileTls>) -> Result<Option<NodeTlsFiles>> {
    let pick = |flag: &Option<PathBuf>, key: fn(&FileTls) -> &Option<PathBuf>| {
        flag.clone().or_else(|| file.and_then(|f| key(f).clone()))
    };
    let cert = pick(&flags.tls_cert, |f| &f.cert);
    let key = pick(&flags.tls_key, |f| &f.key);
    let ca = pick(&flags.tls_ca, |f| &f.ca);
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(NodeTlsFiles { cert, key, ca })),
        (cert, key, ca) => {
            let missing: Vec<&str> = [
                (cert.is_none(), "--tls-cert (tls.cert)"),
                (key.is_none(), "--tls-key (tls.key)"),
                (ca.is_none(), "--tls-ca (tls.ca)"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, n)| *n)
            .collect();
            bail!(
                "TLS between nodes needs a certificate, its key and the CA; missing {}",
                missing.join(" and ")
            )
        }
    }
}

/// Combines flags and file into a checked configuration.
pub fn resolve(flags: &Flags) -> Result<NodeConfig> {
    let file = match &flags.config {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let name = flags
        .name
        .clone()
        .or(file.name.clone())
        .ok_or_else(|| anyhow!("--name is required (or `name` in the config file)"))?;
    let name = node_name(&name, "--name")?;
    let listen = flags
        .listen
        .clone()
        .or(file.listen.clone())
        .ok_or_else(|| anyhow!("--listen is required (or `listen` in the config file)"))?;
    let admin_s = flags
        .admin
        .clone()
        .or(file.admin.clone())
        .unwrap_or_else(|| DEFAULT_ADMIN.into());
    let tls = tls_files(flags, file.tls.as_ref())?;
    let admin = admin_config(&admin_s, &flags.admin_opts, tls.as_ref())?;
    let discovery = discovery(&file.discovery, &flags.discovery)?;
    let mut connect = file.connect.clone();
    connect.extend(flags.connect.iter().cloned());
    let mut groups = Vec::new();
    for (i, g) in file.global_groups.iter().enumerate() {
        let at = format!("global_groups[{}] ({:?})", i + 1, g.name);
        check_name("the group name", &g.name).map_err(|e| anyhow!("{at}: {e}"))?;
        let publish: Publish = g
            .publish
            .parse()
            .map_err(|e: String| anyhow!("{at}: {e}"))?;
        let nodes = g
            .nodes
            .iter()
            .map(|n| node_name(n, &format!("{at}.nodes")))
            .collect::<Result<Vec<_>>>()?;
        groups.push(GlobalGroupDef::new(g.name.clone(), publish, nodes));
    }
    let groups = GlobalGroupsConfig::new(groups);
    groups.validate(&name).map_err(|e| anyhow!("{e}"))?;
    for (i, sc) in file.scopes.iter().enumerate() {
        check_name("the scope name", sc).map_err(|e| anyhow!("scopes[{}]: {e}", i + 1))?;
    }
    let mut names = NamesConfig::empty();
    let mut table_names = std::collections::HashSet::new();
    for (i, t) in file.name_tables.iter().enumerate() {
        let at = format!("name_tables[{}] ({:?})", i + 1, t.name);
        check_name("the table name", &t.name).map_err(|e| anyhow!("{at}: {e}"))?;
        if !table_names.insert(t.name.as_str()) {
            bail!("{at}: a table named {:?} is defined twice", t.name);
        }
        let mut tc = TableConfig::new(t.name.clone());
        if let Some(m) = &t.mode {
            tc = tc.mode(match m.as_str() {
                "locked" => Mode::Locked,
                "eventual" => Mode::Eventual,
                other => {
                    bail!("{at}: unknown mode {other:?} (expected \"locked\" or \"eventual\")")
                }
            });
        }
        if let Some(p) = &t.policy {
            tc = tc.policy(match p.as_str() {
                "kill" => LossPolicy::Kill,
                "notify" => LossPolicy::Notify,
                "drop_both" => LossPolicy::DropBoth,
                other => bail!("{at}: unknown policy {other:?} (expected \"kill\", \"notify\" or \"drop_both\")"),
            });
        }
        if let Some(m) = t.multiple_names {
            tc = tc.multiple_names(m);
        }
        names = names.table(tc);
    }
    if file.name_tables.is_empty() {
        names = NamesConfig::default();
    }
    let erlang = erlang_config(file.erlang.as_ref(), &flags.erlang)?;
    let mut admin = admin;
    admin.name_tables = names
        .tables
        .iter()
        .map(|t| {
            let mode = match t.mode {
                cohort::Mode::Locked => "locked",
                cohort::Mode::Eventual => "eventual",
                _ => "other",
            };
            (t.name.clone(), mode.to_string())
        })
        .collect();
    Ok(NodeConfig {
        erlang,
        tls,
        name,
        listen,
        connect,
        discovery,
        cookie_file: flags.cookie_file.clone().or(file.cookie_file.clone()),
        admin,
        tick_interval: file.tick_interval_ms.map(Duration::from_millis),
        peer_timeout: file.peer_timeout_ms.map(Duration::from_millis),
        handshake_timeout: file.handshake_timeout_ms.map(Duration::from_millis),
        max_handshakes: file.max_handshakes,
        probe_timeout: file.probe_timeout_ms.map(Duration::from_millis),
        max_frame: file.max_frame,
        max_meta: file.max_meta,
        threads: match flags.threads.or(file.threads) {
            Some(0) => bail!("threads: must be at least 1 (worker threads of the node's runtime)"),
            Some(n) if n > MAX_THREADS => {
                bail!("threads: {n} is more than {MAX_THREADS} (worker threads of the node's runtime)")
            }
            t => t,
        },
        mesh: file.mesh.unwrap_or(true),
        groups,
        scopes: file.scopes.clone(),
        names,
        bench_api: flags.bench_api,
        scope_limits: {
            let d = ScopeLimits::default();
            if file.max_scopes == Some(0) {
                bail!("max_scopes: must be at least 1 (the default scope `pg` always runs)");
            }
            ScopeLimits {
                max_scopes: file.max_scopes.unwrap_or(d.max_scopes),
                idle: file
                    .scope_idle_ms
                    .map(Duration::from_millis)
                    .unwrap_or(d.idle),
                sync_wait: d.sync_wait,
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> Result<NodeConfig> {
        let dir =
            std::env::temp_dir().join(format!("cohort-cfg-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        let r = resolve(&Flags {
            config: Some(p),
            ..Default::default()
        });
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_full_file_resolves() {
        let c = with_file(
            r#"
name = "a@127.0.0.1"
listen = "127.0.0.1:0"
connect = ["127.0.0.1:9"]
scopes = ["jobs"]
[[global_groups]]
name = "g1"
publish = "normal"
nodes = ["a@127.0.0.1", "b@127.0.0.1"]
[[global_groups]]
name = "g2"
publish = "hidden"
nodes = ["c@127.0.0.1"]
[[name_tables]]
name = "global"
mode = "eventual"
policy = "notify"
"#,
        )
        .unwrap();
        assert_eq!(c.name.as_str(), "a@127.0.0.1");
        assert_eq!(c.groups.groups.len(), 2);
        assert_eq!(c.groups.groups[1].publish, Publish::Hidden);
        assert_eq!(c.scopes, vec!["jobs".to_string()]);
        assert_eq!(c.admin.addr, AdminAddr::Tcp(DEFAULT_ADMIN.parse().unwrap()));
    }

    #[test]
    fn the_tls_table_and_flags_give_all_three_files_or_none() {
        let file = "name = \"a@h\"\nlisten = \"x\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nca = \"ca.pem\"\n";
        let t = with_file(file).unwrap().tls.unwrap();
        assert_eq!(
            (t.cert, t.key, t.ca),
            ("c.pem".into(), "k.pem".into(), "ca.pem".into())
        );
        // A flag wins over its key.
        let flags = Flags {
            tls_cert: Some("other.pem".into()),
            ..Default::default()
        };
        let f = FileTls {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ca: Some("ca.pem".into()),
        };
        let t = tls_files(&flags, Some(&f)).unwrap().unwrap();
        assert_eq!(t.cert, PathBuf::from("other.pem"));
        assert!(tls_files(&Flags::default(), None).unwrap().is_none());
        let e = with_file("name = \"a@h\"\nlisten = \"x\"\n[tls]\ncert = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing --tls-key (tls.key) and --tls-ca (tls.ca)"),
            "{e}"
        );
        let e = with_file("name = \"a@h\"\nlisten = \"x\"\n[tls]\ncrt = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("crt"), "{e}");
    }

    #[test]
    fn errors_name_the_bad_entry_on_one_line() {
        let cases = [
            ("name = \"a@h\"\nlisten = \"x\"\nbogus = 1\n", "bogus"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"loud\"\nnodes = [\"a@h\"]\n",
                "global_groups[1] (\"g1\"): unknown publish type \"loud\"",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"normal\"\nnodes = [\"a@h\", \"b@h\"]\n[[global_groups]]\nname = \"g2\"\npublish = \"normal\"\nnodes = [\"b@h\"]\n",
                "node b@h is listed in both \"g1\" and \"g2\"",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"normal\"\nnodes = [\"nohost\"]\n",
                "global_groups[1] (\"g1\").nodes: invalid node name \"nohost\"",
            ),
            ("name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"t\"\nmode = \"fast\"\n", "unknown mode \"fast\""),
            ("name = [\n", "line"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"t\"\n[[name_tables]]\nname = \"t\"\nmode = \"eventual\"\n",
                "name_tables[2] (\"t\"): a table named \"t\" is defined twice",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"\"\n",
                "name_tables[1] (\"\"): the table name is empty",
            ),
            ("name = \"a@h\"\nlisten = \"x\"\nscopes = [\"ok\", \"\"]\n", "scopes[2]: the scope name is empty"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"\"\npublish = \"normal\"\nnodes = [\"a@h\"]\n",
                "the group name is empty",
            ),
        ];
        for (text, want) in cases {
            let err = with_file(text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains('\n'), "{err:?} spans lines");
        }
    }

    #[test]
    fn discovery_tables_and_flags() {
        use cohort::discovery::Source;
        let c = with_file(
            r#"
name = "a@127.0.0.1"
listen = "127.0.0.1:0"
[[discovery]]
srv = "_cohort._tcp.svc.example"
resolver = "10.0.0.10:53"
interval_ms = 1000
forget_after_ms = 30000
[[discovery]]
dns = "cohort.internal:4000"
[[discovery]]
file = "/etc/cohort/seeds"
"#,
        )
        .unwrap();
        assert_eq!(c.discovery.len(), 3);
        let srv = &c.discovery[0];
        assert_eq!(
            srv.source,
            Source::Srv {
                name: "_cohort._tcp.svc.example".into()
            }
        );
        assert_eq!(srv.resolver, Some("10.0.0.10:53".parse().unwrap()));
        assert_eq!(srv.interval, Duration::from_secs(1));
        assert_eq!(srv.forget_after, Duration::from_secs(30));
        assert_eq!(
            c.discovery[1].source,
            Source::Dns {
                host: "cohort.internal".into(),
                port: Some(4000)
            }
        );
        assert_eq!(c.discovery[1].resolver, None);
        let base = "name = \"a@h\"\nlisten = \"x\"\n[[discovery]]\n";
        for (table, want) in [
            ("", "discovery[1]: give exactly one of"),
            (
                "dns = \"a\"\nsrv = \"b\"\n",
                "discovery[1]: give exactly one of",
            ),
            (
                "dns = \"\"\n",
                "discovery[1]: \"dns:\" is not a discovery strategy",
            ),
            (
                "srv = \"s\"\nresolver = \"dns.local\"\n",
                "discovery[1].resolver",
            ),
            (
                "srv = \"s\"\ninterval_ms = 0\n",
                "discovery[1].interval_ms: must be at least 1",
            ),
            (
                "file = \"f\"\nresolver = \"127.0.0.1:53\"\n",
                "resolver applies to dns and srv only",
            ),
            ("file = \"f\"\nport = 1\n", "unknown field `port`"),
        ] {
            let err = with_file(&format!("{base}{table}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want),
                "{table:?}: {err:?} should contain {want:?}"
            );
            assert!(!err.contains('\n'), "{err:?} spans lines");
        }
        let flags = |d: DiscoveryFlags| {
            resolve(&Flags {
                name: Some("a@h".into()),
                listen: Some("127.0.0.1:0".into()),
                discovery: d,
                ..Default::default()
            })
        };
        let c = flags(DiscoveryFlags {
            strategies: vec!["dns:cohort".into(), "file:/tmp/seeds".into()],
            resolver: Some("127.0.0.1:5353".into()),
            interval_ms: Some(250),
            forget_ms: None,
        })
        .unwrap();
        assert_eq!(
            c.discovery[0].resolver,
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(c.discovery[1].resolver, None, "a file has no resolver");
        assert_eq!(c.discovery[1].interval, Duration::from_millis(250));
        let e = flags(DiscoveryFlags {
            strategies: vec!["file:/tmp/seeds".into()],
            resolver: Some("127.0.0.1:5353".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--resolver:"), "{e}");
    }

    #[test]
    fn the_erlang_table_and_its_flags() {
        let text = "name = \"a@h\"\nlisten = \"x\"\n[erlang]\nnode = \"cohort@127.0.0.1\"\nconnect = [\"beam@127.0.0.1\"]\nscopes = [\"pg\", \"demo\"]\n";
        let e = with_file(text).unwrap().erlang.unwrap();
        assert_eq!(e.node, "cohort@127.0.0.1");
        assert_eq!(e.connect, vec!["beam@127.0.0.1".to_string()]);
        assert_eq!(e.scopes, vec!["pg".to_string(), "demo".to_string()]);
        assert_eq!(e.cookie_file, None);
        // Without [erlang] and flags: no endpoint.
        assert!(with_file("name = \"a@h\"\nlisten = \"x\"\n")
            .unwrap()
            .erlang
            .is_none());
        let flags = |f: ErlangFlags| {
            resolve(&Flags {
                name: Some("a@h".into()),
                listen: Some("127.0.0.1:0".into()),
                erlang: f,
                ..Default::default()
            })
        };
        let e = flags(ErlangFlags {
            node: Some("c@127.0.0.1".into()),
            scopes: vec!["demo".into(), "demo".into()],
            ..Default::default()
        })
        .unwrap()
        .erlang
        .unwrap();
        assert_eq!(e.scopes, vec!["demo".to_string()]);
        let cases = [
            (
                ErlangFlags {
                    connect: vec!["beam@h".into()],
                    ..Default::default()
                },
                "--erlang-node is required",
            ),
            (
                ErlangFlags {
                    node: Some("nohost".into()),
                    ..Default::default()
                },
                "--erlang-node: \"nohost\" is not an Erlang node name",
            ),
            (
                ErlangFlags {
                    node: Some("c@h".into()),
                    connect: vec!["@h".into()],
                    ..Default::default()
                },
                "erlang.connect[1]",
            ),
        ];
        for (f, want) in cases {
            let err = flags(f).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let err =
            with_file("name = \"a@h\"\nlisten = \"x\"\n[erlang]\nnode = \"c@h\"\ncookie = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("cookie"), "{err}");
    }

    #[test]
    fn flags_override_and_bad_flags_are_named() {
        let e = resolve(&Flags {
            name: Some("bad".into()),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--name:"), "{e}");
        let e = resolve(&Flags {
            name: Some("a@h".into()),
            listen: Some("127.0.0.1:0".into()),
            admin: Some("nowhere".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--admin:"), "{e}");
    }

    #[test]
    fn a_network_admin_address_uses_the_node_certificate() {
        let c = resolve(&Flags {
            name: Some("a@h".into()),
            listen: Some("127.0.0.1:0".into()),
            admin: Some("0.0.0.0:4370".into()),
            tls_cert: Some("node.pem".into()),
            tls_key: Some("node.key".into()),
            tls_ca: Some("ca.pem".into()),
            ..Default::default()
        })
        .unwrap();
        let t = c.admin.tls.expect("HTTPS with the node's certificate");
        assert_eq!((t.cert, t.key), ("node.pem".into(), "node.key".into()));
        // On loopback the node's certificate is not used by default.
        let c = resolve(&Flags {
            name: Some("a@h".into()),
            listen: Some("127.0.0.1:0".into()),
            tls_cert: Some("node.pem".into()),
            tls_key: Some("node.key".into()),
            tls_ca: Some("ca.pem".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(c.admin.tls.is_none());
    }

    #[test]
    fn admin_addresses_and_their_security() {
        let cfg = |admin: &str, f: AdminFlags| {
            resolve(&Flags {
                name: Some("a@h".into()),
                listen: Some("127.0.0.1:0".into()),
                admin: Some(admin.into()),
                admin_opts: f,
                ..Default::default()
            })
            .map(|c| c.admin)
        };
        assert_eq!(
            cfg("none", AdminFlags::default()).unwrap().addr,
            AdminAddr::Off
        );
        assert_eq!(
            cfg("unix:/tmp/x.sock", AdminFlags::default()).unwrap().addr,
            AdminAddr::Unix("/tmp/x.sock".into())
        );
        for open in ["0.0.0.0:4370", "[::]:4370", "10.1.2.3:4370"] {
            let e = cfg(open, AdminFlags::default()).unwrap_err().to_string();
            assert!(e.contains("--admin-insecure"), "{open}: {e}");
            let insecure = AdminFlags {
                insecure: true,
                ..Default::default()
            };
            assert!(cfg(open, insecure).unwrap().insecure);
            let tls = AdminFlags {
                tls_cert: Some("c.pem".into()),
                tls_key: Some("k.pem".into()),
                ..Default::default()
            };
            assert!(cfg(open, tls).unwrap().tls.is_some());
        }
        let half = AdminFlags {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        let e = cfg("127.0.0.1:1", half).unwrap_err().to_string();
        assert!(e.contains("--admin-tls-key"), "{e}");
        let zero = AdminFlags {
            max_connections: Some(0),
            ..Default::default()
        };
        assert!(cfg("127.0.0.1:1", zero).is_err());
        assert!(cfg("unix:", AdminFlags::default()).is_err());
    }
}

/// The longest name, group name or scope name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a name, group or scope given by a client or a config file.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} is {} bytes long (at most {MAX_NAME_BYTES})",
            s.len()
        ));
    }
    Ok(())
}

/// Limits of the scopes that admin calls start on their first use.
#[derive(Debug, Clone, Copy)]
pub struct ScopeLimits {
    /// At most this many scopes run on the node; a call that would start
    /// one more is refused.
    pub max_scopes: usize,
    /// A scope started by an admin call is stopped again once it has had
    /// no local member, no watcher and no use for this long.
    pub idle: Duration,
    /// A scope started by an admin call answers its first reads once it
    /// has heard from every connected peer, or after this long.
    pub sync_wait: Duration,
}

impl Default for ScopeLimits {
    fn default() -> Self {
        ScopeLimits {
            max_scopes: 1024,
            idle: Duration::from_secs(60),
            sync_wait: Duration::from_secs(5),
        }
    }
}
