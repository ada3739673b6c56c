//! The same seed gives the same run, event for event.

use cohort_sim::config::{FaultSet, SimConfig};
use cohort_sim::runner;

fn cfg(seed: u64, steps: usize) -> SimConfig {
    let mut c = SimConfig::new(seed);
    c.steps = steps;
    c
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in [0, 1, 42, 966, 0xdead_beef] {
        let a = runner::run(cfg(seed, 150));
        let b = runner::run(cfg(seed, 150));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.events, b.events, "seed {seed} diverged");
        assert_eq!(a.end, b.end);
        assert!(a.events > 100, "seed {seed} did almost nothing");
    }
}

#[test]
fn recording_the_trace_does_not_change_the_run() {
    let plain = runner::run(cfg(7, 120));
    let mut c = cfg(7, 120);
    c.record_trace = true;
    let recorded = runner::run(c);
    assert_eq!(plain.trace_hash, recorded.trace_hash);
    assert_eq!(recorded.trace.len() as u64, recorded.events);
}

#[test]
fn replay_is_identical_line_for_line() {
    let mut c = cfg(11, 100);
    c.record_trace = true;
    let a = runner::run(c.clone());
    let b = runner::run(c);
    assert_eq!(a.trace, b.trace);
}

#[test]
fn different_seeds_give_different_runs() {
    let hashes: std::collections::BTreeSet<u64> = (0..20)
        .map(|s| runner::run(cfg(s, 60)).trace_hash)
        .collect();
    assert_eq!(hashes.len(), 20);
}

#[test]
fn a_shorter_run_is_a_prefix_of_a_longer_one() {
    // The shrinker relies on this: cutting steps keeps the events before the cut.
    let mut short = cfg(5, 40);
    short.record_trace = true;
    let mut long = short.clone();
    long.steps = 80;
    let s = runner::run(short);
    let l = runner::run(long);
    let cut = s
        .trace
        .iter()
        .position(|line| line.ends_with("final heal"))
        .expect("the run ends with a final heal");
    assert!(cut > 50);
    assert_eq!(s.trace[..cut], l.trace[..cut]);
}

#[test]
fn no_faults_means_no_fault_events() {
    let mut c = cfg(3, 100);
    c.faults = FaultSet::none();
    let o = runner::run(c);
    assert!(o.passed(), "{:?}", o.violation);
    for kind in ["crash", "stop", "partition", "reset", "loss"] {
        assert!(
            !o.counters.contains_key(kind),
            "{kind} injected without faults"
        );
    }
}
