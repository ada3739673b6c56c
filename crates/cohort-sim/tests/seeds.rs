//! Runs a few hundred seeds with every fault kind, and a few dozen with
//! each fault kind alone; every invariant must hold on every seed.

use cohort_sim::config::{FaultKind, FaultSet, Mismatch, SimConfig};
use cohort_sim::runner::{self, Outcome};

fn check(outcomes: &[Outcome], base: &SimConfig) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.violation.as_ref().map(|v| {
                format!(
                    "seed {} ({} nodes): {}: {}\n  replay: cargo run -p cohort-sim -- --seed {} --steps {} --faults {} --trace",
                    o.seed, o.nodes, v.invariant, v.message, o.seed, base.steps, base.faults
                )
            })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn three_hundred_seeds_all_faults() {
    let mut base = SimConfig::new(0);
    base.steps = 150;
    let seeds: Vec<u64> = (0..300).collect();
    let outcomes = runner::run_many(&seeds, &base, |_, _| {});
    check(&outcomes, &base);
    // The runs did exercise the faults and the monitors.
    let total = |k: &str| {
        outcomes
            .iter()
            .filter_map(|o| o.counters.get(k))
            .sum::<u64>()
    };
    for kind in FaultKind::ALL {
        assert!(total(kind.name()) > 0, "no {kind} injected in 300 seeds");
    }
    for what in [
        "down: noconnection",
        "down: noproc",
        "down: exit reason",
        "node-down: timeout",
        "pg: join",
        "pg: leave",
        "pg: meta",
        "pg: monitor",
        "names: set_lock",
        "names: clash seen",
    ] {
        assert!(total(what) > 0, "no {what} in 300 seeds");
    }
}

#[test]
fn each_fault_kind_alone() {
    for kind in FaultKind::ALL {
        let mut base = SimConfig::new(0);
        base.steps = 100;
        base.faults = kind.name().parse::<FaultSet>().expect("valid fault name");
        let seeds: Vec<u64> = (1000..1020).collect();
        let outcomes = runner::run_many(&seeds, &base, |_, _| {});
        check(&outcomes, &base);
    }
}

#[test]
fn larger_clusters() {
    let mut base = SimConfig::new(0);
    base.steps = 100;
    base.nodes = Some(12);
    let seeds: Vec<u64> = (2000..2010).collect();
    let outcomes = runner::run_many(&seeds, &base, |_, _| {});
    check(&outcomes, &base);
}

#[test]
fn global_groups() {
    let mut base = SimConfig::new(0);
    base.steps = 150;
    base.groups = true;
    let seeds: Vec<u64> = (3000..3060).collect();
    let outcomes = runner::run_many(&seeds, &base, |_, _| {});
    check(&outcomes, &base);
    let asked: u64 = outcomes
        .iter()
        .filter_map(|o| o.counters.get("groups: answered"))
        .sum();
    assert!(asked > 0, "no cross-group query answered in 60 seeds");
}

/// Each way of differing definitions, with and without faults: the
/// invariants hold (`group_sync_states` among them), and the sessions across differing definitions do
/// form (their nodes end under `sync_error`).
#[test]
fn global_groups_with_differing_definitions() {
    for mismatch in [Mismatch::None, Mismatch::Extra, Mismatch::Missing] {
        for faults in [FaultSet::none(), FaultSet::all()] {
            let mut base = SimConfig::new(0);
            base.steps = 80;
            base.groups = true;
            base.mismatch = mismatch;
            base.faults = faults.clone();
            let seeds: Vec<u64> = (500..512).collect();
            let outcomes = runner::run_many(&seeds, &base, |_, _| {});
            for o in &outcomes {
                assert!(
                    o.passed(),
                    "seed {} --groups on --mismatch {mismatch} --faults {faults}: {:?}",
                    o.seed,
                    o.violation
                );
            }
            let total =
                |k: &str| -> u64 { outcomes.iter().filter_map(|o| o.counters.get(k)).sum() };
            let (other, outside) = (
                total("groups: sync_error, other definition"),
                total("groups: sync_error, not counted back"),
            );
            match mismatch {
                Mismatch::None => assert_eq!(other + outside, 0),
                _ => assert!(outside > 0, "{mismatch} {faults}: no mismatch answer seen"),
            }
            if mismatch == Mismatch::Missing {
                assert!(other > 0, "{faults}: no differing definition seen");
            }
        }
    }
}
