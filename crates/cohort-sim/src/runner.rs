//! Running seeds: one run (steps, settling, invariants) under
//! `catch_unwind`, many runs across threads, and shrinking a failing run
//! to fewer steps.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cohort_proto::time::Time;

use crate::config::SimConfig;
use crate::invariants::{self, no_panic, Violation};
use crate::sim::Sim;
use crate::workload;

/// What one run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Number of nodes the run had.
    pub nodes: usize,
    /// Steps run.
    pub steps: usize,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// Hash of the whole event trace.
    pub trace_hash: u64,
    /// Number of trace events.
    pub events: u64,
    /// The trace lines (empty unless recording was asked for).
    pub trace: Vec<String>,
    /// Simulated time at the end.
    pub end: Time,
    /// What happened how often (see [`Sim::counters`]).
    pub counters: BTreeMap<&'static str, u64>,
}

impl Outcome {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

/// Runs one seed; a panic anywhere becomes a `no_panic` violation.
pub fn run(cfg: SimConfig) -> Outcome {
    let seed = cfg.seed;
    let steps = cfg.steps;
    let mut sim: Option<Sim> = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        sim = Some(Sim::new(cfg));
        drive(sim.as_mut().expect("just set"))
    }));
    let violation = match result {
        Ok(v) => v,
        Err(payload) => Some(Violation {
            invariant: "no_panic",
            step: None,
            at: sim.as_ref().map(Sim::now).unwrap_or_default(),
            message: no_panic::describe(payload.as_ref()),
        }),
    };
    match sim {
        Some(sim) => Outcome {
            seed,
            nodes: sim.nodes().len(),
            steps,
            violation,
            trace_hash: sim.trace().hash(),
            events: sim.trace().len(),
            trace: sim.trace().lines().to_vec(),
            end: sim.now(),
            counters: sim.counters(),
        },
        None => Outcome {
            seed,
            nodes: 0,
            steps,
            violation,
            trace_hash: 0,
            events: 0,
            trace: Vec::new(),
            end: Time::ZERO,
            counters: BTreeMap::new(),
        },
    }
}

/// Runs `sim`: the workload's steps with the invariants checked after each,
/// then the final heal and the settle period, and the invariants once
/// more. Returns the first violation.
pub fn drive(sim: &mut Sim) -> Option<Violation> {
    let invariants = invariants::all();
    for step in 0..sim.config().steps {
        workload::step(sim);
        sim.record_clashes();
        if let Some(v) = invariants::check(&invariants, sim, Some(step)) {
            return Some(v);
        }
    }
    sim.settle();
    invariants::check(&invariants, sim, None)
}

/// Runs `seeds` on all cores; `base` gives the configuration of each seed.
/// `progress` is called after each finished seed with the number done.
/// Returns the outcomes in seed order.
pub fn run_many(
    seeds: &[u64],
    base: &SimConfig,
    progress: impl Fn(usize, &Outcome) + Sync,
) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; seeds.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(k) else {
                    break;
                };
                let o = run(base.for_seed(seed));
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(n, &o);
                out.lock().expect("no panics while holding the lock")[k] = Some(o);
            });
        }
    });
    out.into_inner()
        .expect("no panics while holding the lock")
        .into_iter()
        .map(|o| o.expect("every seed ran"))
        .collect()
}

/// Looks for the fewest steps with which `cfg`'s seed still fails: the
/// steps of a shorter run are a prefix of the longer one's, so the last
/// failing length found is the shortest trace that shows the bug.
/// Returns the shortest failing configuration and its outcome (with the
/// trace recorded).
pub fn shrink(cfg: &SimConfig) -> (SimConfig, Outcome) {
    let fails = |steps: usize| {
        let mut c = cfg.clone();
        c.steps = steps;
        c.record_trace = false;
        !run(c).passed()
    };
    let mut hi = cfg.steps;
    // Halve while it still fails, then bisect between the last pass and
    // the last failure. Failures need not be monotonic in the step count,
    // so this finds a short failing run, not always the shortest.
    let mut lo = 0;
    while hi > 0 && fails(hi / 2) {
        hi /= 2;
    }
    if hi > 0 {
        lo = hi / 2;
    }
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let mut best = cfg.clone();
    best.steps = hi;
    best.record_trace = true;
    let outcome = run(best.clone());
    (best, outcome)
}
