//! Cohort: a distributed process registry for Rust — what Erlang/OTP's `pg`,
//! `global` and `global_group` give BEAM systems, as a tokio library.
//!
//! # The concepts
//!
//! - A **node** ([`Node`]) is one member of a cluster: a name such as
//!   `a@127.0.0.1`, a listen address, and a cookie (a shared secret). Nodes
//!   connect over TCP (optionally TLS), prove to each other that they know
//!   the cookie, and by default form a full mesh: connecting to one member
//!   connects you to all. Many nodes can live in one process; there is no
//!   global state.
//! - A **process** ([`Process`]) is a mailbox with a [`Pid`] that is valid
//!   across the cluster: any node can [`send`](Node::send) to it or
//!   [`monitor`](Process::monitor) it and receive a [`Message::Down`] when
//!   it ends or its node becomes unreachable.
//! - A **scope** ([`Scope`], OTP's `pg` scope) is an independent set of
//!   **process groups**. A **group** is a name (`"workers"`) with members:
//!   any process can [`join`](Scope::join) any group, a pid may join more
//!   than once, members of a process that ends or of a node that goes down
//!   are removed. Reads ([`members`](Scope::members),
//!   [`select`](Scope::select)) are local and never wait for the network;
//!   changes reach other nodes eventually, and [`monitor`](Scope::monitor)
//!   streams them.
//! - A **name table** ([`NameTable`], OTP's `global`) maps names to pids, one
//!   holder per name across the cluster. In a [`Mode::Locked`] table a
//!   registration takes the name on every connected node before it returns;
//!   after a netsplit heals, clashing registrations are settled by a rank
//!   (earliest claim wins, or your own, see [`TableConfig::rank`]) and the
//!   loser is killed or told ([`LossPolicy`]). Tables also hold **locks**
//!   ([`Node::set_lock`], [`Node::trans`]).
//! - **Global groups** ([`GlobalGroupsConfig`], OTP's `global_group`) split
//!   one cluster into groups of nodes with separate name spaces; a lookup
//!   can say [`Where`] to look ([`Node::whereis_at`]).
//!
//! # Two nodes in one process
//!
//! This example runs as a doctest: two nodes on loopback TCP, a process
//! group seen from the other node, a global name, a message, a monitor.
//!
//! ```
//! use std::time::Duration;
//!
//! use cohort_registry::{Message, Node, PgEventKind, Select};
//! use tokio::time::timeout;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Two nodes with the same cookie, each on an ephemeral loopback port.
//!     let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
//!     let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
//!     let peer = b.connect(&a.local_addr()).await?;
//!     assert_eq!(&peer, a.name());
//!
//!     // A process on `a` joins the group "workers" of the default scope;
//!     // `b` watches the group and sees the join arrive.
//!     let mut worker = a.spawn();
//!     let (mut changes, _members_now) = b.pg().monitor("workers")?;
//!     a.pg().join("workers", worker.pid())?;
//!     // Event streams are bounded: an item is Err(Lagged(n)) when this
//!     // subscriber fell n events behind (see EventStream).
//!     let change = timeout(Duration::from_secs(10), changes.recv()).await?.unwrap()?;
//!     assert_eq!(change.kind, PgEventKind::Join);
//!     assert_eq!(b.pg().members("workers").to_vec(), vec![worker.pid().clone()]);
//!
//!     // `b` picks a member and sends to it; the message crosses the wire.
//!     let client = b.spawn();
//!     let to = b.pg().select("workers", Select::Random, None).unwrap();
//!     client.send(&to, "job 1");
//!     match timeout(Duration::from_secs(10), worker.recv()).await?.unwrap() {
//!         Message::Data { from, payload } => {
//!             assert_eq!(from.as_ref(), Some(client.pid()));
//!             assert_eq!(&payload[..], b"job 1");
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//!
//!     // A global name: once `register` returns, no other process in the
//!     // connected cluster can take "db".
//!     let db = a.spawn();
//!     a.names().register("db", db.pid()).await?;
//!     assert_eq!(a.names().whereis("db").as_ref(), Some(db.pid()));
//!
//!     // `b` monitors the worker; when it exits, `b`'s process is told why.
//!     let mut watcher = b.spawn();
//!     let mref = watcher.monitor(worker.pid());
//!     // Between two processes, signals arrive in the order they were sent:
//!     // once the worker has this message, the monitor is in place on `a`
//!     // (had the worker ended before that, the reason would be `NoProc`).
//!     watcher.send(worker.pid(), "are you there?");
//!     timeout(Duration::from_secs(10), worker.recv()).await?;
//!     worker.exit(cohort_registry::ExitReason::Normal);
//!     match timeout(Duration::from_secs(10), watcher.recv()).await?.unwrap() {
//!         Message::Down { mref: m, reason, .. } => {
//!             assert_eq!(m, mref);
//!             assert_eq!(reason, cohort_registry::ExitReason::Normal);
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//!     a.shutdown().await;
//!     b.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! # Where to go next
//!
//! - [`NodeBuilder`]: every setting of a node (timeouts, mesh, TLS with
//!   [`transport::tls::TlsFiles`], name tables with [`NamesConfig`], global
//!   groups, frame limits).
//! - [`Scope`], [`NameTable`] and [`Node`]'s global-group methods
//!   ([`Node::whereis_at`], [`Node::global_group_info`]) each start with an
//!   example.
//! - [`discovery`]: finding nodes from a file or DNS.
//! - The `examples/` directory of the repository: a two-node chat over
//!   names, a worker pool with `select`, a netsplit settled by a custom
//!   rank, and an external Python process attached to a `cohort node`
//!   daemon over its WebSocket.
//! - [`core`] (the `cohort-proto` crate): the sans-IO protocol the runtime
//!   drives; only needed to embed the protocol elsewhere or to simulate it.
//!
//! # Crate layout
//!
//! - [`core`]: sans-IO state machines (handshake, peer sessions, mesh,
//!   liveness, processes and monitors, process groups, names, global
//!   groups). No sockets, no clock, no tokio.
//! - [`runtime`] and [`transport`]: the tokio shell that carries out the
//!   core's effects over TCP (or an in-memory network in tests).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cookie;
pub mod discovery;
/// The sans-IO protocol core (the `cohort-proto` crate).
pub use cohort_proto as core;
pub mod error;
pub mod runtime;
pub mod transport;

pub use crate::cookie::{CookieError, CookieSource};
pub use crate::core::global_group::{
    GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsError, GlobalGroupsInfo, Publish,
};
pub use crate::core::names::{
    Claim, LockId, LossPolicy, Mode, NameEvent, NamesConfig, NamesError, TableConfig,
    UnregisterReason,
};
pub use crate::core::pg::{
    Group, Member, Members, PgError, PgEvent, PgEventKind, Select, Span, DEFAULT_SCOPE,
};
pub use crate::core::pid::{ExitReason, InvalidNodeName, NodeName, Pid};
pub use crate::core::process::{Message, MonitorRef};
pub use crate::core::proto::RefuseReason;
pub use crate::core::{ConnectError, DownReason};
pub use crate::error::{CodecError, ConfigError, StartError};
pub use crate::runtime::{
    EventStream, GroupNodeEvent, Lagged, NameTable, Node, NodeBuilder, NodeEvent, PeerStats,
    PgMonitor, Process, Scope, ScopeSnapshot, Stats, ToAddr, Where, EVENT_BUFFER,
};
pub use crate::transport::tls::{TlsError, TlsFiles};
