//! The sans-IO core: every protocol decision of a node, as a state machine.
//!
//! [`NodeCore`] takes inputs (a connection opened, a frame arrived, a local
//! process spawned or ended, time passed) and queues [`Effect`]s (dial, send
//! a frame, close, deliver to a mailbox, node up/down). It owns no sockets,
//! reads no clock and draws randomness only from the seeded generator it is
//! given, so the same inputs always give the same effects: the tokio runtime
//! and the deterministic simulator drive the very same code.
//!
//! This crate is the protocol of Cohort nodes, quinn-proto style: no tokio,
//! no socket and no clock in its dependency tree. The `cohort` crate is the
//! runtime around it (`docs/ARCHITECTURE.md` in the repository).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod ctx;
pub mod effect;
pub mod global_group;
mod hash;
pub mod ids;
pub mod limits;
pub mod names;
mod node;
pub mod pg;
pub mod pid;
pub mod process;
pub mod proto;
pub mod route;
pub mod time;

pub use self::effect::{ConnId, ConnectError, DownReason, Effect, Effects, ReqId};
pub use self::node::{CoreConfig, NodeCore, FLUSH_REST};
