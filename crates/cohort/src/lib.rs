//! Cohort: a distributed process registry.
//!
//! Nodes form an authenticated cluster over TCP; local processes (mailboxes)
//! get pids that work across the cluster and can be monitored from any
//! node; they join process groups ([`Scope`], OTP's `pg`), register global
//! names ([`runtime::NameTable`], OTP's `global`), and global groups split
//! the cluster into separate name spaces (OTP's `global_group`).
//!
//! The crate has two halves (`docs/ARCHITECTURE.md` in the repository):
//! - [`core`]: sans-IO state machines (handshake, peer sessions, mesh,
//!   liveness, processes and monitors, process groups, names, global
//!   groups). No sockets, no clock, no tokio.
//! - [`runtime`] and [`transport`]: the tokio shell that carries out the
//!   core's effects over TCP (or an in-memory network in tests).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cohort_registry::Node;
//! let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
//! let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
//! b.connect(&a.local_addr()).await?;
//! let mut pa = a.spawn();
//! let pb = b.spawn();
//! pb.send(pa.pid(), "hello");
//! let msg = pa.recv().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cookie;
pub mod discovery;
/// The sans-IO protocol core (the `cohort-proto` crate).
pub use cohort_proto as core;
pub mod error;
pub mod runtime;
pub mod transport;

pub use crate::core::global_group::{
    GlobalGroupDef, GlobalGroupsConfig, GlobalGroupsError, GlobalGroupsInfo, Publish,
};
pub use crate::core::names::{
    LossPolicy, Mode, NameEvent, NamesConfig, NamesError, TableConfig, UnregisterReason,
};
pub use crate::core::pg::{
    Group, Member, Members, PgError, PgEvent, PgEventKind, Select, Span, DEFAULT_SCOPE,
};
pub use crate::core::pid::{ExitReason, NodeName, Pid};
pub use crate::core::process::{Message, MonitorRef};
pub use crate::core::proto::RefuseReason;
pub use crate::core::{ConnectError, DownReason};
pub use crate::error::StartError;
pub use crate::runtime::{
    GroupNodeEvent, NameTable, Node, NodeBuilder, NodeEvent, PgMonitor, Process, Scope, Stats,
    Where,
};
