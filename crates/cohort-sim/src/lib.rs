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
//! Layout:
//! - [`sim`]: the scheduler and the driver of the cores' effects;
//! - [`net`]: connections, pipes, partitions;
//! - [`workload`]: what one step does;
//! - [`ledger`]: facts recorded during a run;
//! - [`invariants`]: one property per file, judged on the ledger and cores;
//! - [`runner`]: runs seeds (in parallel), catches panics, shrinks failures;
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
pub mod invariants;
pub mod ledger;
pub mod measure;
pub mod net;
pub mod registry;
pub mod runner;
pub mod sim;
pub mod trace;
pub mod workload;
