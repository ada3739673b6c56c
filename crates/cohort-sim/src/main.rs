//! `cohort-sim`: runs simulation seeds, replays one, or measures convergence.
//!
//! ```text
//! cohort-sim --seeds 1000                  # seeds 0..1000, 3-7 nodes each, all faults
//! cohort-sim --seeds 200 --nodes 5 --faults partition,crash,restart --steps 500
//! cohort-sim --seed 42 --trace             # replay seed 42 and print every event
//! cohort-sim --measure                     # convergence vs node count (10, 50, 200), registries at 1k/100k entries
//! cohort-sim --measure --sizes 1000 --global-groups 1,10   # registry cost with global groups
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use cohort_sim::config::{FaultSet, Mismatch, SimConfig};
use cohort_sim::measure::{self, show};
use cohort_sim::runner::{self, Outcome};

#[derive(Debug, Parser)]
#[command(
    name = "cohort-sim",
    about = "Deterministic simulation of cohort clusters"
)]
struct Args {
    /// Number of seeds to run (from --first-seed on).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Replay exactly this seed (ignores --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes per run; by default each seed draws 3 to 7.
    #[arg(long)]
    nodes: Option<usize>,
    /// Fault kinds: all, none, or a comma-separated list of partition,
    /// oneway, overlap, reset, loss, delay, crash, stop, restart.
    #[arg(long, default_value = "all")]
    faults: FaultSet,
    /// Workload/fault steps per run.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// With --seed: print the whole event trace even when the run passes.
    #[arg(long)]
    trace: bool,
    /// Trace lines to print for a failure (the last ones); 0 prints all.
    #[arg(long, default_value_t = 400)]
    trace_tail: usize,
    /// Do not shrink a failing seed to fewer steps.
    #[arg(long)]
    no_shrink: bool,
    /// Keep processes from monitoring themselves (they may by default).
    #[arg(long)]
    no_self_monitors: bool,
    /// Global-group configuration: on (first half of the nodes in a
    /// normal group, the rest in a hidden one; one node's definition may
    /// differ, see --mismatch), off, or seeded (on for odd seeds, off for
    /// even ones: the default, so a campaign covers both).
    #[arg(long, default_value = "seeded")]
    groups: GroupsArg,
    /// With --groups, whose definitions deliberately differ: seeded (drawn
    /// per seed), none, extra (the last node lists itself in the normal
    /// group, which does not count it) or missing (node 0 leaves node 1
    /// out of its group).
    #[arg(long, default_value = "seeded")]
    mismatch: Mismatch,
    /// Measure convergence time and traffic for these cluster sizes.
    #[arg(long)]
    measure: bool,
    /// Cluster sizes for --measure.
    #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
    sizes: Vec<usize>,
    /// Entry counts for the registry part of --measure (pg memberships and
    /// names); `--entries` with no value skips it. The first count that
    /// fits --max-replicas is measured in the mesh row's run, every other
    /// one in a run of its own (pg and names together).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1000,100000")]
    entries: Vec<usize>,
    /// With --measure: registry rows whose nodes × entries (every node
    /// holds every entry) exceed this are skipped, with a line saying so:
    /// a replicated entry takes a few hundred bytes of the simulator's
    /// memory (200 nodes × 100,000 names would take several GB).
    #[arg(long, default_value_t = 5_000_000)]
    max_replicas: usize,
    /// With --measure: instead, split each cluster size into these many
    /// global groups (even-numbered normal, odd-numbered hidden) and
    /// measure what one name registration and one pg join cost in the
    /// whole cluster.
    #[arg(long, value_delimiter = ',')]
    global_groups: Vec<usize>,
}

/// Whether runs use a global-group configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GroupsArg {
    /// Every run.
    On,
    /// No run.
    Off,
    /// Odd seeds.
    Seeded,
}

impl std::fmt::Display for GroupsArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupsArg::On => "on",
            GroupsArg::Off => "off",
            GroupsArg::Seeded => "seeded (odd seeds)",
        })
    }
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    if args.measure {
        run_measure(&args);
        return Ok(ExitCode::SUCCESS);
    }
    let mut base = SimConfig::new(args.seed.unwrap_or(args.first_seed));
    base.nodes = args.nodes;
    base.steps = args.steps;
    base.faults = args.faults.clone();
    base.self_monitors = !args.no_self_monitors;
    base.groups = args.groups == GroupsArg::On;
    base.groups_per_seed = args.groups == GroupsArg::Seeded;
    base.mismatch = args.mismatch;
    if let Some(seed) = args.seed {
        return Ok(replay(&args, seed, base.for_seed(seed)));
    }
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    println!(
        "running {} seeds ({}..{}), {} steps, nodes {}, faults {}{}",
        seeds.len(),
        args.first_seed,
        args.first_seed + args.seeds,
        args.steps,
        args.nodes
            .map_or_else(|| "3-7".to_string(), |n| n.to_string()),
        args.faults,
        if args.groups != GroupsArg::Off {
            format!(
                ", global groups {} (mismatch: {})",
                args.groups, args.mismatch
            )
        } else {
            String::new()
        }
    );
    let started = Instant::now();
    let every = (seeds.len() / 20).max(1);
    let outcomes = runner::run_many(&seeds, &base, |done, o| {
        if let Some(v) = &o.violation {
            println!("seed {} FAILED: {}: {}", o.seed, v.invariant, v.message);
        }
        if done % every == 0 || done == seeds.len() {
            println!(
                "  {done}/{} seeds done ({:.1}s)",
                seeds.len(),
                started.elapsed().as_secs_f64()
            );
        }
    });
    let events: u64 = outcomes.iter().map(|o| o.events).sum();
    let mut counters: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &outcomes {
        for (k, v) in &o.counters {
            *counters.entry(k).or_default() += v;
        }
    }
    println!("coverage over all seeds:");
    for (k, v) in &counters {
        println!("  {k:<32} {v}");
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    println!(
        "{} seeds, {} failed, {events} events, {:.1}s",
        outcomes.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    let Some(first) = failed.first() else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut cfg = base.clone();
    cfg.seed = first.seed;
    report_failure(&args, cfg);
    let list: Vec<String> = failed.iter().map(|o| o.seed.to_string()).collect();
    println!("failing seeds: {}", list.join(" "));
    Ok(ExitCode::FAILURE)
}

fn replay(args: &Args, seed: u64, mut cfg: SimConfig) -> ExitCode {
    cfg.record_trace = true;
    let o = runner::run(cfg.clone());
    if args.trace {
        for line in &o.trace {
            println!("{line}");
        }
    }
    println!(
        "seed {seed}: {} nodes, {} steps, {} events, trace hash {:016x}, ended at {:.3}s",
        o.nodes,
        o.steps,
        o.events,
        o.trace_hash,
        measure::secs(o.end)
    );
    match &o.violation {
        None => {
            println!("seed {seed} passed");
            ExitCode::SUCCESS
        }
        Some(_) => {
            report_failure(args, cfg);
            ExitCode::FAILURE
        }
    }
}

fn report_failure(args: &Args, cfg: SimConfig) {
    let (cfg, o) = if args.no_shrink {
        let mut c = cfg;
        c.record_trace = true;
        let o = runner::run(c.clone());
        (c, o)
    } else {
        println!("shrinking seed {} from {} steps...", cfg.seed, cfg.steps);
        runner::shrink(&cfg)
    };
    let v = o.violation.as_ref().expect("the shrunk run fails");
    let skip = match args.trace_tail {
        0 => 0,
        n => o.trace.len().saturating_sub(n),
    };
    if skip > 0 {
        println!("... ({skip} earlier events; --trace-tail 0 prints all)");
    }
    for line in &o.trace[skip..] {
        println!("{line}");
    }
    println!(
        "FAILED seed {} with {} steps ({} nodes): invariant {} at {:.6}s{}: {}",
        cfg.seed,
        cfg.steps,
        o.nodes,
        v.invariant,
        measure::secs(v.at),
        v.step
            .map_or_else(|| " (after heal)".to_string(), |s| format!(" (step {s})")),
        v.message
    );
    println!(
        "replay: cohort-sim --seed {} --steps {} --faults {}{}{}{}{} --trace",
        cfg.seed,
        cfg.steps,
        cfg.faults,
        cfg.nodes
            .map_or_else(String::new, |n| format!(" --nodes {n}")),
        if cfg.self_monitors {
            ""
        } else {
            " --no-self-monitors"
        },
        if cfg.groups {
            " --groups on"
        } else {
            " --groups off"
        },
        if cfg.groups && cfg.mismatch != Mismatch::Seeded {
            format!(" --mismatch {}", cfg.mismatch)
        } else {
            String::new()
        },
    );
}

fn run_measure(args: &Args) {
    if !args.global_groups.is_empty() {
        return run_measure_groups(args);
    }
    println!(
        "convergence (simulated time; default settings: tick 1s, peer timeout 5s, backoff 0.1-5s)"
    );
    println!(
        "{:>6} {:>12} {:>16} {:>14} {:>18} {:>16} {:>14}",
        "nodes",
        "form mesh",
        "form frames/node",
        "form KB/node",
        "idle frames/node/s",
        "heal after split",
        "heal KB/node"
    );
    // The registry rows: those of the first entry count that fits
    // --max-replicas share the mesh row's world (one formation, one
    // split); every other entry count forms a world of its own.
    let fits = |n: usize, e: usize| n.saturating_mul(e) <= args.max_replicas;
    let mut rows: Vec<(usize, usize, String)> = Vec::new();
    let mut row = |n: usize,
                   e: usize,
                   ms: Option<[measure::RegistryMeasurement; 2]>,
                   wall: &str| {
        for (w, what) in ["pg", "names"].into_iter().enumerate() {
            let line = match &ms {
                None => format!(
                    "{what:>6} {n:>6} {e:>8}   skipped: {} replicated entries (nodes × entries) > --max-replicas {}",
                    n.saturating_mul(e),
                    args.max_replicas
                ),
                Some(ms) => {
                    let m = &ms[w];
                    format!(
                        "{:>6} {:>6} {:>8} {:>10} {:>10} {:>14.1} {:>22} {:>22}   ({wall})",
                        what,
                        m.nodes,
                        m.entries,
                        show(m.load),
                        show(m.heal),
                        m.heal_traffic.bytes as f64 / 1024.0,
                        format!("{:.2}/{:.0}", m.per_op.0, m.per_op.1),
                        m.per_locked
                            .map_or_else(|| "-".to_string(), |(f, b)| format!("{f:.2}/{b:.0}")),
                    )
                }
            };
            rows.push((w, n, line));
        }
    };
    for &n in &args.sizes {
        let started = Instant::now();
        let rider = args.entries.iter().copied().find(|&e| fits(n, e));
        let (m, regs) = measure::measure_with(n, rider, args.seed.unwrap_or(1));
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{:>6} {:>12} {:>16} {:>14.1} {:>18} {:>16} {:>14.1}   ({:.1}s wall)",
            m.nodes,
            show(m.form),
            m.form_traffic.frames,
            m.form_traffic.bytes as f64 / 1024.0,
            m.idle_traffic.frames,
            show(m.heal),
            m.heal_traffic.bytes as f64 / 1024.0,
            wall
        );
        let kinds: Vec<String> = m
            .by_kind
            .iter()
            .map(|(k, t)| format!("{k} {}f/{:.1}KB", t.frames, t.bytes as f64 / 1024.0))
            .collect();
        println!("       per node by kind: {}", kinds.join(", "));
        let idle: Vec<String> = m
            .idle_by_kind
            .iter()
            .map(|(k, f)| format!("{k} {f}"))
            .collect();
        println!(
            "       idle frames per node per s by kind: {}",
            idle.join(", ")
        );
        let phases: Vec<String> = m
            .phases
            .iter()
            .map(|(p, d)| format!("{p} {:.1}s", d.as_secs_f64()))
            .collect();
        println!(
            "       simulator's wall time by phase: {}",
            phases.join(", ")
        );
        for &e in &args.entries {
            if Some(e) == rider {
                row(n, e, regs.clone(), "in the mesh row's run");
            } else if fits(n, e) {
                let started = Instant::now();
                let ms = measure::measure_registry(n, e, args.seed.unwrap_or(1));
                let wall = format!("{:.1}s wall, pg and names", started.elapsed().as_secs_f64());
                row(n, e, Some(ms), &wall);
            } else {
                row(n, e, None, "");
            }
        }
    }
    if args.entries.is_empty() {
        return;
    }
    println!();
    println!(
        "registry convergence after a half/half split of {}s (simulated time)",
        measure::SPLIT.as_secs()
    );
    println!(
        "{:>6} {:>6} {:>8} {:>10} {:>10} {:>14} {:>22} {:>22}",
        "what",
        "nodes",
        "entries",
        "load",
        "heal",
        "heal KB/node",
        "per op frames/B /node",
        "locked frames/B /node"
    );
    // Pg rows first, then names rows, in the order measured.
    rows.sort_by_key(|&(w, _, _)| w);
    for (_, _, line) in rows {
        println!("{line}");
    }
}

fn run_measure_groups(args: &Args) {
    println!("global groups (simulated time): a registry spans its own group; per operation: frames/KB of its kind in the whole cluster");
    println!(
        "{:>6} {:>6} {:>6} {:>10} {:>14} {:>14} {:>12} {:>18} {:>18} {:>18}",
        "nodes",
        "groups",
        "size",
        "form",
        "form KB/node",
        "idle frames/n/s",
        "cross-group",
        "register f/KB",
        "locked reg f/KB",
        "pg join f/KB"
    );
    let kb = |(f, b): (f64, f64)| format!("{f:.0}/{:.1}", b / 1024.0);
    for &n in &args.sizes {
        for &g in &args.global_groups {
            let started = Instant::now();
            let m = measure::measure_groups(n, g, args.seed.unwrap_or(1));
            println!(
                "{:>6} {:>6} {:>6} {:>10} {:>14.1} {:>14} {:>12} {:>18} {:>18} {:>18}   ({:.1}s wall)",
                m.nodes,
                m.groups,
                m.group_size,
                show(m.form),
                m.form_traffic.bytes as f64 / 1024.0,
                m.idle_traffic.frames,
                m.cross_sessions,
                kb(m.register),
                kb(m.register_locked),
                kb(m.join),
                started.elapsed().as_secs_f64()
            );
            let kinds: Vec<String> = m
                .form_by_kind
                .iter()
                .map(|(k, t)| format!("{k} {} / {:.1} KB", t.frames, t.bytes as f64 / 1024.0))
                .collect();
            println!("        formation per node by kind: {}", kinds.join(", "));
        }
    }
}
