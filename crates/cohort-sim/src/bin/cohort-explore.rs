//! `cohort-explore`: checks every interleaving of a few name operations on
//! the real cores of a few nodes (see `cohort_sim::explore`).
//!
//! ```text
//! cohort-explore --mode eventual --setup n0.p1:reg:x --ops n2.p1:unreg:x,n0.p1:unreg:x,n0.p1:reg:x
//! cohort-explore --ops 3 --partition --crash
//! cohort-explore --mode locked --setup n0.p1:reg:x --ops n2.p1:unreg:x --partition --replay o0,p0
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use cohort_sim::explore::case::{
    default_ops, parse_ops, parse_schedule, show_schedule, Case, Op, TableMode,
};
use cohort_sim::explore::{explore, replay};

#[derive(Debug, Parser)]
#[command(
    name = "cohort-explore",
    about = "Exhaustive small-scope checking of the name service on the real cores"
)]
struct Args {
    /// Nodes in the cluster (a full mesh at the start).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Operations run to their end before the exploration, e.g.
    /// n0.p1:reg:x (node 0, process 1, register x).
    #[arg(long, default_value = "")]
    setup: String,
    /// The operations whose interleavings are explored: a comma-separated
    /// list of nN.pP:reg|rereg|unreg:NAME, or a number N for the first N of
    /// n0.p1:reg:x,n1.p1:reg:x,n2.p1:unreg:x,n1.p1:rereg:x.
    #[arg(long, default_value = "2")]
    ops: String,
    /// The table: locked or eventual; both when left out.
    #[arg(long)]
    mode: Option<TableMode>,
    /// One node may be cut off (and the cut healed) at any point while an
    /// operation is unanswered.
    #[arg(long)]
    partition: bool,
    /// One node may crash at any point while an operation is unanswered.
    #[arg(long)]
    crash: bool,
    /// How many times time may advance to the next timer while an
    /// operation is unanswered.
    #[arg(long, default_value_t = 4)]
    timers: usize,
    /// Stop after this many states (the run then fails: not exhaustive).
    #[arg(long, default_value_t = 5_000_000)]
    max_states: u64,
    /// Walk every schedule: no sleep sets, no state caching (to check the
    /// reductions; much slower).
    #[arg(long)]
    no_reduction: bool,
    /// Replay this schedule (as printed for a violation) with a trace
    /// instead of exploring.
    #[arg(long)]
    replay: Option<String>,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let ops: Vec<Op> = match args.ops.parse::<usize>() {
        Ok(n) => default_ops(n),
        Err(_) => parse_ops(&args.ops).map_err(anyhow::Error::msg)?,
    };
    let setup = parse_ops(&args.setup).map_err(anyhow::Error::msg)?;
    if let Some(op) = ops.iter().chain(&setup).find(|o| o.node >= args.nodes) {
        bail!("{op}: there are only {} nodes", args.nodes);
    }
    let modes = match args.mode {
        Some(m) => vec![m],
        None if args.replay.is_some() => bail!("--replay needs --mode"),
        None => vec![TableMode::Locked, TableMode::Eventual],
    };
    let mut failed = false;
    for mode in modes {
        let case = Case {
            nodes: args.nodes,
            setup: setup.clone(),
            ops: ops.clone(),
            mode,
            partition: args.partition,
            crash: args.crash,
            timers: args.timers,
        };
        let ops_list: Vec<String> = ops.iter().map(ToString::to_string).collect();
        let setup_list: Vec<String> = setup.iter().map(ToString::to_string).collect();
        let what = format!(
            "--mode {mode} --setup '{}' --ops '{}'{}{} --timers {}",
            setup_list.join(","),
            ops_list.join(","),
            if args.partition { " --partition" } else { "" },
            if args.crash { " --crash" } else { "" },
            args.timers
        );
        if let Some(s) = &args.replay {
            let schedule = parse_schedule(s).map_err(anyhow::Error::msg)?;
            let w = replay(&case, &schedule, true).map_err(anyhow::Error::msg)?;
            for line in w.trace.iter().flatten() {
                println!("{line}");
            }
            let next: Vec<String> = w.enabled().iter().map(ToString::to_string).collect();
            println!("enabled next: {}", next.join(","));
            match &w.violation {
                Some(v) => {
                    println!("VIOLATION {}: {}", v.invariant, v.what);
                    failed = true;
                }
                None => println!("no violation"),
            }
            continue;
        }
        let r = explore(&case, args.max_states, !args.no_reduction);
        println!(
            "{what}: {} schedules, {} states ({} distinct, {} cut by the cache) in {:.2}s{}",
            r.schedules,
            r.states,
            r.distinct,
            r.cached,
            r.elapsed.as_secs_f64(),
            if r.truncated {
                " (stopped at --max-states: NOT exhaustive)"
            } else {
                ""
            }
        );
        if let Some((v, schedule)) = &r.violation {
            failed = true;
            println!("VIOLATION {}: {}", v.invariant, v.what);
            println!(
                "replay: cargo run --release -p cohort-sim --bin cohort-explore -- {what} --replay '{}'",
                show_schedule(schedule)
            );
        }
        failed |= r.truncated;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
