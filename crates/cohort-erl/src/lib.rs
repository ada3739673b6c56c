//! Erlang distribution endpoint for Cohort.
//!
//! A [`Bridge`] makes a Cohort [`Node`] a visible node of an Erlang
//! distribution cluster: it registers a node name with the host's EPMD,
//! accepts and dials BEAM nodes (handshake version 6, OTP 23+, MD5 cookie
//! challenge), ticks both ways and reconnects, and bridges OTP `pg` scopes
//! both ways:
//!
//! - on its Erlang side it runs one scope process per bridged scope,
//!   registered under the scope's name, speaking OTP 25's `pg` protocol
//!   (`{discover, Peer}`, `{'$gen_cast', {sync, Peer, Groups}}`,
//!   `{join, Peer, Group, Pids}`, `{leave, Peer, Pids, Groups}`, monitors on
//!   the peer scope processes);
//! - a Cohort process in group `G` of a bridged scope appears to BEAM as an
//!   Erlang pid minted on the bridge's node name (kept for as long as the
//!   Cohort process lives); a message sent to that pid reaches the Cohort
//!   process as the bytes of the term's external format ([`decode_term`]
//!   reads them back);
//! - a BEAM process in group `G` (an atom) appears in Cohort as a *proxy*: a
//!   Cohort process on this node, joined into `G` once per BEAM membership,
//!   that forwards the bytes it receives to the BEAM pid as a binary. The
//!   proxy ends when the BEAM process leaves its last group, exits, or its
//!   node goes down.
//!
//! It also answers `global`'s connection protocol as a node holding no
//! names, so `global:sync/0` on the BEAM nodes does not wait for it, and
//! `net_adm:ping/1`.
//!
//! Groups are bridged when they are atoms on the BEAM side (Cohort group
//! `"workers"` is the atom `workers`); other group terms are left out.
//! Run one bridge per BEAM cluster: the proxies of a second bridge would be
//! advertised back to BEAM as Cohort members.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = cohort::Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
//! let bridge = cohort_erl::Bridge::start(
//!     &node,
//!     cohort_erl::BridgeConfig::new("cohort@127.0.0.1")
//!         .cookie("secret")
//!         .peer("beam@127.0.0.1")
//!         .scope("app"),
//! )
//! .await?;
//! let worker = node.spawn();
//! node.scope("app").join("workers", worker.pid())?; // BEAM: pg:get_members(app, workers)
//! # drop(bridge); Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bridge;
mod conn;
mod error;
pub mod ext;
mod text;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cohort::{Node, Pid};
pub use eetf::{Pid as ErlPid, Term};
pub use error::BridgeError;
pub use text::{erlang_text, pid_text};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bridge::{Event, State, Tables};

/// Configuration of a [`Bridge`].
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The Erlang node name, `name@host` (for example `cohort@127.0.0.1`).
    pub name: String,
    /// The cookie; `None` reads the first line of `cookie_file`.
    pub cookie: Option<String>,
    /// Where to read the cookie when none is given; `None` is
    /// `~/.erlang.cookie`, as OTP reads it.
    pub cookie_file: Option<PathBuf>,
    /// BEAM nodes to dial (and redial); others may dial in.
    pub peers: Vec<String>,
    /// OTP `pg` scopes to bridge (each a Cohort scope of the same name).
    pub scopes: Vec<String>,
    /// Address the distribution port listens on (default `0.0.0.0:0`).
    pub listen: String,
    /// The EPMD to register with (default `127.0.0.1:4369`); peers are
    /// looked up on their own host at the same port.
    pub epmd: String,
    /// An idle connection sends a tick this often (default 15 s, OTP's
    /// `net_ticktime` 60 s / 4).
    pub tick: Duration,
    /// A connection silent this long is down (default 60 s).
    pub timeout: Duration,
    /// A handshake must finish within this (default 7 s).
    pub handshake_timeout: Duration,
    /// Largest frame accepted from a BEAM node (default 8 MiB); a larger one
    /// closes the connection.
    pub max_frame: usize,
    /// Most terms in one frame (default 1 000 000): bounds what decoding a
    /// frame may allocate.
    pub max_terms: usize,
}

impl BridgeConfig {
    /// Defaults for node `name`.
    pub fn new(name: impl Into<String>) -> Self {
        BridgeConfig {
            name: name.into(),
            cookie: None,
            cookie_file: None,
            peers: Vec::new(),
            scopes: Vec::new(),
            listen: "0.0.0.0:0".into(),
            epmd: "127.0.0.1:4369".into(),
            tick: Duration::from_secs(15),
            timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(7),
            max_frame: 8 << 20,
            max_terms: 1_000_000,
        }
    }
    /// Sets the cookie.
    pub fn cookie(mut self, c: impl Into<String>) -> Self {
        self.cookie = Some(c.into());
        self
    }
    /// Adds a BEAM node to dial.
    pub fn peer(mut self, p: impl Into<String>) -> Self {
        self.peers.push(p.into());
        self
    }
    /// Adds a scope to bridge.
    pub fn scope(mut self, s: impl Into<String>) -> Self {
        self.scopes.push(s.into());
        self
    }
    /// Sets the tick interval and the silence after which a peer is down.
    pub fn ticks(mut self, tick: Duration, timeout: Duration) -> Self {
        self.tick = tick;
        self.timeout = timeout;
        self
    }

    fn load_cookie(&self) -> Result<String, BridgeError> {
        if let Some(c) = &self.cookie {
            if c.is_empty() {
                return Err(BridgeError::Cookie("the cookie is empty".into()));
            }
            return Ok(c.clone());
        }
        let path = match &self.cookie_file {
            Some(p) => p.clone(),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".erlang.cookie"))
                .ok_or_else(|| BridgeError::Cookie("HOME is not set".into()))?,
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BridgeError::Cookie(format!("{}: {e}", path.display())))?;
        let line = text.lines().next().unwrap_or("").trim().to_string();
        if line.is_empty() {
            return Err(BridgeError::Cookie(format!("{} is empty", path.display())));
        }
        Ok(line)
    }
}

/// A running Erlang distribution endpoint for a Cohort node; dropping it
/// leaves the Erlang cluster (unregisters from EPMD, closes connections).
pub struct Bridge {
    name: String,
    port: u16,
    scopes: Vec<String>,
    /// The Cohort process messages from BEAM processes come from.
    from_beam: Pid,
    events: mpsc::Sender<Event>,
    tables: Arc<Mutex<Tables>>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish()
    }
}

impl Bridge {
    /// Starts the endpoint for `node`: binds the distribution port,
    /// registers with EPMD (an error if none runs), starts dialing
    /// `config.peers` and watching `config.scopes`.
    pub async fn start(node: &Node, config: BridgeConfig) -> Result<Bridge, BridgeError> {
        let cookie = config.load_cookie()?;
        let name = conn::node_name(&config.name)?;
        for s in &config.scopes {
            if s.is_empty() || s.len() > 255 {
                return Err(BridgeError::Config(format!("scope {s:?}: 1 to 255 bytes")));
            }
        }
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| BridgeError::Listen(config.listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BridgeError::Listen(config.listen.clone(), e))?
            .port();
        let (epmd_conn, creation) = conn::epmd_register(&config.epmd, name.name(), port).await?;
        tracing::info!(name = %config.name, port, creation, "erlang distribution endpoint registered with EPMD");

        let (tx, rx) = mpsc::channel(4096);
        let tables = Arc::new(Mutex::new(Tables::default()));
        let mut scopes = Vec::new();
        let mut snapshots = Vec::new();
        let mut tasks = Vec::new();
        for (i, s) in config.scopes.iter().enumerate() {
            let scope = node.scope(s);
            let (mut mon, snap) = scope
                .monitor_scope()
                .map_err(|e| BridgeError::Scope(s.clone(), e))?;
            snapshots.push(snap);
            scopes.push((s.clone(), scope));
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(ev) = mon.recv().await {
                    let ev = match ev {
                        Ok(ev) => ev,
                        Err(lagged) => {
                            // The bridge forwards at once into a bounded queue,
                            // so this takes a stalled bridge; BEAM peers then
                            // miss these changes until the next snapshot.
                            tracing::error!(
                                scope = i,
                                "Erlang bridge: {lagged}; BEAM peers miss these group changes"
                            );
                            continue;
                        }
                    };
                    if tx.send(Event::Pg { scope: i, ev }).await.is_err() {
                        break;
                    }
                }
            }));
        }
        let state = State::new(
            &config.name,
            creation,
            node.clone(),
            tx.clone(),
            tables.clone(),
            scopes,
        );
        let agent = node.spawn();
        let from_beam = agent.pid().clone();
        tasks.push(tokio::spawn(async move {
            bridge::run(state, rx, agent, snapshots).await;
        }));

        let ctx = conn::Ctx {
            local: conn::local_node(name, creation),
            cookie,
            epmd: config.epmd.clone(),
            tick: config.tick,
            timeout: config.timeout,
            handshake_timeout: config.handshake_timeout,
            max_frame: config.max_frame,
            max_terms: config.max_terms,
            events: tx.clone(),
            dialing: Arc::new(Mutex::new(HashSet::new())),
            connected: Arc::new(Mutex::new(HashSet::new())),
            stop: tokio_util::sync::CancellationToken::new(),
        };
        let stop = ctx.stop.clone();
        tasks.push(tokio::spawn(conn::accept_loop(ctx.clone(), listener)));
        for p in &config.peers {
            tasks.push(tokio::spawn(conn::dial_loop(ctx.clone(), p.clone())));
        }
        // The EPMD registration lasts as long as this connection.
        tasks.push(tokio::spawn(async move {
            let mut c = epmd_conn;
            let mut b = [0u8; 64];
            use tokio::io::AsyncReadExt;
            while matches!(c.read(&mut b).await, Ok(n) if n > 0) {}
            tracing::warn!("the EPMD connection closed; this node is no longer registered");
        }));
        Ok(Bridge {
            name: config.name,
            port,
            scopes: config.scopes,
            from_beam,
            events: tx,
            tables,
            tasks,
            stop,
        })
    }

    /// The Erlang node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The distribution port (registered with EPMD).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bridged OTP `pg` scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The sender of every message a BEAM process sends to a Cohort
    /// process: a message from this pid holds a term in the external
    /// format ([`decode_term`] reads it).
    pub fn from_beam(&self) -> &Pid {
        &self.from_beam
    }

    /// The BEAM nodes connected now.
    pub fn nodes(&self) -> Vec<String> {
        self.tables.lock().unwrap().nodes.clone()
    }

    /// The Erlang pid BEAM sees for a Cohort process in a bridged scope (a
    /// pid is minted when the process first joins a bridged group).
    pub fn erlang_pid(&self, pid: &Pid) -> Option<ErlPid> {
        self.tables.lock().unwrap().to_erl.get(pid).cloned()
    }

    /// The Cohort proxy standing for a BEAM pid that is in a bridged group.
    pub fn proxy_of(&self, pid: &ErlPid) -> Option<Pid> {
        self.tables.lock().unwrap().proxies.get(pid).cloned()
    }

    /// The BEAM pid a Cohort proxy stands for.
    pub fn beam_pid(&self, proxy: &Pid) -> Option<ErlPid> {
        self.tables.lock().unwrap().beam_of.get(proxy).cloned()
    }

    /// Sends a term to a BEAM pid (dropped if its node is not connected, as
    /// Erlang's `!` to a lost node).
    pub async fn send(&self, to: &ErlPid, term: Term) {
        let _ = self
            .events
            .send(Event::Send {
                to: to.clone(),
                term,
            })
            .await;
    }
}

impl Bridge {
    /// Leaves the Erlang cluster now (as dropping the bridge does): closes
    /// every connection and unregisters from EPMD; BEAM nodes drop this
    /// node's members at once.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.stop.cancel();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decodes what a Cohort process receives from a BEAM process (a term in
/// the external format), with the same bounds the distribution port uses.
pub fn decode_term(bytes: &[u8]) -> Result<Term, String> {
    ext::check_term(bytes, 1_000_000).map_err(|e| e.to_string())?;
    Term::decode(bytes).map_err(|e| e.to_string())
}

/// Encodes a term in the external format.
pub fn encode_term(term: &Term) -> Vec<u8> {
    bridge::encode(term).unwrap_or_default()
}
