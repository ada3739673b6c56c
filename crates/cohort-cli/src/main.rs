//! The `cohort` executable: node daemon, admin client, demo and benchmarks.
#![forbid(unsafe_code)]

mod admin;
mod bench;
mod cert;
mod config;
mod ctl;
mod dashboard;
mod demo;
mod listen;
mod node;
mod out;
mod outbox;
mod sessions;
mod sync;
mod tls;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Cohort: a distributed process registry.
#[derive(Parser)]
#[command(name = "cohort", version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text (logs go to stderr;
    /// the level comes from COHORT_LOG, default "warn").
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the node's flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Runs one node until SIGINT/SIGTERM, then leaves the cluster cleanly.
    Node(Box<NodeArgs>),
    /// Talks to a running node through its admin API.
    Ctl(CtlArgs),
    /// Five nodes in two global groups on loopback: groups, names, a
    /// netsplit with a name clash, the heal, and how it was settled.
    Demo,
    /// Runs the reference scenarios of docs/BENCHMARKS.md on node processes
    /// started here, and prints (or writes a report of) the metrics.
    Bench(bench::BenchArgs),
    /// Makes a development CA and node certificates for mutual TLS between
    /// nodes (--tls-cert, --tls-key, --tls-ca of `cohort node`).
    #[command(subcommand)]
    Cert(cert::CertCmd),
}

#[derive(Args)]
struct NodeArgs {
    /// Node name, name@host.
    #[arg(long)]
    name: Option<String>,
    /// Address to accept peers on, HOST:PORT.
    #[arg(long)]
    listen: Option<String>,
    /// A node to connect to (repeatable); retried until it answers.
    #[arg(long)]
    connect: Vec<String>,
    /// Finds peers (repeatable): dns:HOST[:PORT] (A/AAAA records, at this
    /// node's listen port unless PORT is given), srv:NAME (SRV records) or
    /// file:PATH (one HOST:PORT a line, read again when it changes).
    /// Discovery only adds: a failed or empty lookup changes nothing.
    #[arg(long, value_name = "STRATEGY")]
    discover: Vec<String>,
    /// The DNS server that --discover dns: and srv: ask, IP:PORT (default:
    /// the system's).
    #[arg(long, value_name = "IP:PORT")]
    resolver: Option<String>,
    /// How often --discover strategies look up [default: 5000].
    #[arg(long, value_name = "MS")]
    discover_interval_ms: Option<u64>,
    /// A node missing from a --discover strategy's results this long, and
    /// not connected, is forgotten (no more redials) [default: 60000].
    #[arg(long, value_name = "MS")]
    discover_forget_ms: Option<u64>,
    /// File holding the cookie (else COHORT_COOKIE, else ~/.cohort.cookie).
    #[arg(long)]
    cookie_file: Option<PathBuf>,
    /// TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Admin API: IP:PORT (default 127.0.0.1:4370), unix:PATH (a socket
    /// with mode 0600) or none. A non-loopback IP needs --admin-tls-cert and
    /// --admin-tls-key, or --admin-insecure.
    #[arg(long)]
    admin: Option<String>,
    /// File holding the admin API's bearer token (else COHORT_ADMIN_TOKEN,
    /// which wins, else ~/.cohort.admin-token, created on first start).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Another name clients reach the admin API by (NAME or NAME:PORT;
    /// repeatable): requests whose Host header is not the listen address,
    /// localhost or one of these are refused.
    #[arg(long = "admin-host", value_name = "NAME")]
    admin_hosts: Vec<String>,
    /// PEM certificate chain: serve the admin API over TLS.
    #[arg(long, requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// PEM private key of --admin-tls-cert.
    #[arg(long, requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// Allows plain HTTP on a non-loopback --admin address.
    #[arg(long)]
    admin_insecure: bool,
    /// Serves /metrics without the token.
    #[arg(long)]
    metrics_open: bool,
    /// Admin connections open at once at most (WebSockets included); more
    /// are closed at once [default: 256].
    #[arg(long, value_name = "N")]
    admin_max_connections: Option<usize>,
    /// A request's headers must arrive within this, counted from the
    /// connection's start or its previous answer [default: 10000].
    #[arg(long, value_name = "MS")]
    admin_header_timeout_ms: Option<u64>,
    /// A request body that sends nothing for this long is dropped
    /// [default: 30000].
    #[arg(long, value_name = "MS")]
    admin_idle_timeout_ms: Option<u64>,
    /// Bytes waiting for one attached WebSocket client at most; a client
    /// that lets more pile up is sent a close frame and dropped, and its
    /// process exits [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    admin_ws_queue_bytes: Option<usize>,
    /// The web dashboard (`GET /` of the admin API) shows the cluster but
    /// offers no action, and refuses them (block, unblock, disconnect,
    /// sync, unregister).
    #[arg(long)]
    dashboard_read_only: bool,
    /// Serves the bench-only /bench/ admin endpoints (used by `cohort bench`).
    #[arg(long, hide = true)]
    bench_api: bool,
    /// Worker threads of the node's runtime [default: one per CPU core].
    /// From the environment too, so `COHORT_THREADS=1 cohort bench ...`
    /// runs the bench's nodes with one worker each.
    #[arg(long, env = "COHORT_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Joins an Erlang distribution cluster under this node name
    /// (name@host): registers with the host's EPMD (ERL_EPMD_PORT, else
    /// 4369) and bridges OTP pg scopes.
    #[arg(long, value_name = "NAME@HOST")]
    erlang_node: Option<String>,
    /// File holding the Erlang cookie, first line (default ~/.erlang.cookie).
    #[arg(long, value_name = "FILE")]
    erlang_cookie_file: Option<PathBuf>,
    /// A BEAM node to dial and redial (repeatable); others may dial in.
    #[arg(long, value_name = "NAME@HOST")]
    erlang_connect: Vec<String>,
    /// An OTP pg scope to bridge (repeatable; default pg).
    #[arg(long, value_name = "SCOPE")]
    erlang_scope: Vec<String>,
    /// Mutual TLS between nodes: this node's PEM certificate chain, valid
    /// for the host of --name (`cohort cert node` makes one). Needs
    /// --tls-key and --tls-ca; re-read on SIGHUP and POST /tls/reload.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The PEM CA certificate(s) that peers' certificates must chain to.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

#[derive(Args)]
struct CtlArgs {
    /// The node's admin API: HOST:PORT, https://HOST:PORT or unix:PATH
    /// (also after the subcommand).
    #[arg(long, global = true, env = "COHORT_ADMIN", default_value = config::DEFAULT_ADMIN,
          value_parser = config::admin_addr)]
    admin: String,
    /// File holding the admin token (else COHORT_ADMIN_TOKEN, which wins,
    /// else ~/.cohort.admin-token).
    #[arg(long, global = true)]
    admin_token_file: Option<PathBuf>,
    /// PEM certificate(s) to trust for an https:// admin API (for example
    /// the node's self-signed --admin-tls-cert).
    #[arg(long, global = true, env = "COHORT_ADMIN_CA")]
    admin_ca: Option<PathBuf>,
    /// Print JSON (also after the subcommand).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Global-group state of the node.
    Info,
    /// Connected visible nodes.
    Nodes {
        /// Include hidden connections.
        #[arg(long)]
        hidden: bool,
    },
    /// Registered names.
    Names {
        /// node:NAME or group:NAME.
        #[arg(long = "where")]
        at: Option<String>,
    },
    /// Who holds a name.
    Whereis {
        /// The name.
        name: String,
        /// node:NAME or group:NAME.
        #[arg(long = "where")]
        at: Option<String>,
    },
    /// Members of a process group.
    Members {
        /// The scope.
        scope: String,
        /// The group.
        group: String,
        /// Only local members.
        #[arg(long, conflicts_with = "remote")]
        local: bool,
        /// Only remote members.
        #[arg(long)]
        remote: bool,
    },
    /// Groups of a scope.
    Groups {
        /// The scope.
        scope: String,
    },
    /// Process-group scopes running on the node.
    Scopes,
    /// Sends a message to a registered name.
    Send {
        /// The name.
        name: String,
        /// The message.
        message: String,
        /// node:NAME or group:NAME.
        #[arg(long = "where")]
        at: Option<String>,
    },
    /// Unregisters a name, whoever holds it (its holder is told).
    Unregister {
        /// The name.
        name: String,
    },
    /// Re-checks global groups and names with every peer.
    Sync,
    /// Fault injection: drop and refuse all traffic with NODE.
    Block {
        /// The node.
        node: String,
    },
    /// Lifts a block.
    Unblock {
        /// The node.
        node: String,
    },
    /// Prints the URL of the node's web dashboard, with the token in its
    /// fragment (it logs the browser in; browsers never send a fragment).
    Dashboard {
        /// Open it in the default browser (xdg-open, or open on macOS).
        #[arg(long)]
        open: bool,
    },
    /// Attaches a process: registers names, joins groups, prints `ready PID`
    /// and then every message it receives, until killed.
    Hold {
        /// A name to register (repeatable).
        #[arg(long)]
        register: Vec<String>,
        /// SCOPE/GROUP to join (repeatable).
        #[arg(long)]
        join: Vec<String>,
    },
}

/// Logs go to stderr through a writer thread: a full or closed stderr
/// drops log lines (never blocks a task, never panics). Colours only on a
/// terminal. The guard flushes what is queued when dropped.
fn init_logs(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("COHORT_LOG").unwrap_or_else(|_| "warn".into());
    // The writer's queue is allocated up front (tracing-appender's default,
    // 128,000 lines, costs ~4 MB of RSS per node); a few thousand lines
    // absorb any burst a healthy stderr keeps up with.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(4096)
        .lossy(true)
        .thread_name("cohort-log")
        .finish(std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if json {
        b.json().init();
    } else {
        b.init();
    }
    guard
}

fn ctl(args: CtlArgs) -> anyhow::Result<i32> {
    let c = ctl::Ctl::new(
        &args.admin,
        args.admin_token_file.as_deref(),
        args.admin_ca.as_deref(),
        args.json,
    )?;
    match args.cmd {
        CtlCmd::Info => c.info()?,
        CtlCmd::Nodes { hidden } => c.nodes(hidden)?,
        CtlCmd::Names { at } => c.names(&at)?,
        CtlCmd::Whereis { name, at } => c.whereis(&name, &at)?,
        CtlCmd::Members {
            scope,
            group,
            local,
            remote,
        } => c.members(
            &scope,
            &group,
            if local {
                Some("local")
            } else if remote {
                Some("remote")
            } else {
                None
            },
        )?,
        CtlCmd::Groups { scope } => c.groups(&scope)?,
        CtlCmd::Scopes => c.scopes()?,
        CtlCmd::Send { name, message, at } => c.send(&name, &message, &at)?,
        CtlCmd::Unregister { name } => c.unregister(&name)?,
        CtlCmd::Sync => c.sync()?,
        CtlCmd::Block { node } => c.block(&node, true)?,
        CtlCmd::Unblock { node } => c.block(&node, false)?,
        CtlCmd::Dashboard { open } => c.dashboard(open)?,
        CtlCmd::Hold { register, join } => return c.hold(&register, &join),
    }
    Ok(0)
}

fn main() -> ExitCode {
    // clap prints the whole message (with "did you mean" hints, or the
    // help) and exits with status 2 on bad arguments, 0 for --help.
    let cli = Cli::parse();
    let _logs = init_logs(cli.log_json);
    let result: anyhow::Result<i32> = match cli.command {
        Command::Ctl(args) => ctl(args),
        Command::Node(a) => {
            let a = *a;
            let flags = config::Flags {
                name: a.name,
                listen: a.listen,
                connect: a.connect,
                discovery: config::DiscoveryFlags {
                    strategies: a.discover,
                    resolver: a.resolver,
                    interval_ms: a.discover_interval_ms,
                    forget_ms: a.discover_forget_ms,
                },
                cookie_file: a.cookie_file,
                config: a.config,
                admin: a.admin,
                bench_api: a.bench_api,
                threads: a.threads,
                erlang: config::ErlangFlags {
                    node: a.erlang_node,
                    cookie_file: a.erlang_cookie_file,
                    connect: a.erlang_connect,
                    scopes: a.erlang_scope,
                },
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
                tls_ca: a.tls_ca,
                admin_opts: config::AdminFlags {
                    token_file: a.admin_token_file,
                    hosts: a.admin_hosts,
                    tls_cert: a.admin_tls_cert,
                    tls_key: a.admin_tls_key,
                    insecure: a.admin_insecure,
                    metrics_open: a.metrics_open,
                    dashboard_read_only: a.dashboard_read_only,
                    max_connections: a.admin_max_connections,
                    header_timeout_ms: a.admin_header_timeout_ms,
                    idle_timeout_ms: a.admin_idle_timeout_ms,
                    ws_queue_bytes: a.admin_ws_queue_bytes,
                },
            };
            config::resolve(&flags)
                .and_then(|cfg| runtime(cfg.threads).block_on(node::run(cfg)).map(|_| 0))
        }
        Command::Demo => runtime(None).block_on(demo::run()).map(|_| 0),
        Command::Bench(args) => bench::run(args),
        Command::Cert(cmd) => cert::run(cmd).map(|_| 0),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            crate::out::err!("cohort: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime of a node: `threads` workers (default: one per CPU core).
fn runtime(threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.enable_all().build().expect("tokio runtime")
}
