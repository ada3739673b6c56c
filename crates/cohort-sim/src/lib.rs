//! Deterministic simulation of a cohort cluster.
//!
//! The simulator drives N [`NodeCore`](cohort_proto::NodeCore)s on one
//! thread from one seed, in the style of FoundationDB and TigerBeetle
//! simulation: simulated time, a simulated network with TCP semantics and
//! injected faults (partitions, one-way and overlapping partitions,
//! connection resets, black-holed connections, latency spikes, crashes,
//! graceful stops, restarts with a new creation), a random workload of
//! process and cluster operations, and invariants checked after every step
//! and after heal plus quiescence. The same seed gives the same run, event
//! for event; a failing seed replays from the seed alone.
//!
//! Layout, from the bottom up (a module uses only those above it):
//! - [`config`]: what one run does; [`trace`]: the event trace and its hash;
//! - [`net`]: the network's state: connections, pipes, partitions;
//! - [`ledger`]: facts recorded during a run;
//! - [`registry`]: the scopes, name tables and global groups nodes run;
//! - [`sim`]: the simulation: nodes, scheduler, the driver of the cores'
//!   effects, the TCP model, faults, operations and their bookkeeping;
//! - [`workload`]: what one step does;
//! - [`invariants`]: one property per file, judged on the ledger and cores;
//! - [`runner`]: runs seeds (steps, settling, invariants; in parallel),
//!   catches panics, shrinks failures;
//! - [`measure`]: convergence and traffic figures.
//!
//! ```
//! use cohort_sim::{config::SimConfig, runner};
//! let mut cfg = SimConfig::new(7);
//! cfg.steps = 20;
//! let outcome = runner::run(cfg.clone());
//! assert!(outcome.passed(), "{:?}", outcome.violation);
//! assert_eq!(runner::run(cfg).trace_hash, outcome.trace_hash);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod explore;
pub mod invariants;
pub mod ledger;
pub mod measure;
pub mod net;
pub mod registry;
pub mod runner;
pub mod sim;
pub mod trace;
pub mod workload;
