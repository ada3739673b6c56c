//! Exhaustive small-scope checking: every interleaving of a few name
//! operations on the real cores of a few nodes.
//!
//! A schedule is a list of [`Choice`]s: which operation starts, which
//! pending message is delivered on which connection, when time advances to
//! the next timer, when one node is cut off and when the cut heals, when a
//! node crashes. The explorer walks every schedule depth first, rebuilding
//! a state by replaying its schedule from the start (the cores are
//! deterministic: time and randomness are inputs). Two reductions keep it
//! small without losing a reachable state:
//! - sleep sets: two choices that act on different nodes alone (a delivery
//!   to node A, a delivery or an operation on node B) commute, so after
//!   exploring one order the other is not explored again;
//! - state caching: a state met before (the same cores, messages and
//!   facts) with a sleep set no larger is not explored again.
//!
//! At the end of each schedule the cluster is healed and settles (every
//! message delivered, timers fired until all nodes are members of each
//! other's tables and quiet), then the end state is checked. Invariants
//! (see [`world`]): `locked_exclusive`, `locked_held`,
//! `unregister_applied`, `unregister_targets_claim`, `told_once`,
//! `one_winner`, `settled`.

pub mod case;
pub mod world;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use self::case::{Case, Choice};
use self::world::{Violation, World};

/// What an exploration found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Complete schedules checked (each settled and checked at its end).
    pub schedules: u64,
    /// States visited (choices taken).
    pub states: u64,
    /// Distinct states (by fingerprint).
    pub distinct: u64,
    /// Visits cut short because the state was met before.
    pub cached: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// The first violation and the schedule that reaches it, if any.
    pub violation: Option<(Violation, Vec<Choice>)>,
    /// Whether the state limit stopped the exploration early.
    pub truncated: bool,
}

/// The explorer's walk.
struct Explorer<'a> {
    case: &'a Case,
    /// Fingerprint -> the smallest sleep sets it was explored with.
    seen: HashMap<u64, Vec<Vec<Choice>>>,
    report: Report,
    max_states: u64,
    reduce: bool,
}

/// Explores every schedule of `case`, stopping at the first violation or
/// after `max_states` states; `reduce` turns on sleep sets and state
/// caching (off, every schedule is walked: for checking the reductions).
pub fn explore(case: &Case, max_states: u64, reduce: bool) -> Report {
    let start = Instant::now();
    let mut ex = Explorer {
        case,
        seen: HashMap::new(),
        report: Report {
            schedules: 0,
            states: 0,
            distinct: 0,
            cached: 0,
            elapsed: Duration::ZERO,
            violation: None,
            truncated: false,
        },
        max_states,
        reduce,
    };
    let root = World::new(case, false);
    if let Some(v) = root.violation.clone() {
        ex.report.violation = Some((v, Vec::new()));
    } else {
        let mut prefix = Vec::new();
        ex.walk(root, &mut prefix, Vec::new());
    }
    ex.report.distinct = ex.seen.len() as u64;
    ex.report.elapsed = start.elapsed();
    ex.report
}

/// Replays `schedule` from the start, then settles and checks the end
/// (unless a choice is not enabled where it is taken). With `trace`, the
/// world records every step.
pub fn replay(case: &Case, schedule: &[Choice], trace: bool) -> Result<World, String> {
    let mut w = World::new(case, trace);
    for (n, &c) in schedule.iter().enumerate() {
        if w.violation.is_some() {
            break;
        }
        if !w.enabled().contains(&c) {
            return Err(format!("choice {n} ({c}) is not enabled there"));
        }
        w.apply(c);
    }
    if w.violation.is_none() && w.enabled().is_empty() {
        w.settle_and_check();
    }
    Ok(w)
}

impl Explorer<'_> {
    fn rebuild(&self, prefix: &[Choice]) -> World {
        let mut w = World::new(self.case, false);
        for &c in prefix {
            w.apply(c);
        }
        w
    }

    fn done(&self) -> bool {
        self.report.violation.is_some() || self.report.truncated
    }

    fn walk(&mut self, mut world: World, prefix: &mut Vec<Choice>, sleep: Vec<Choice>) {
        if self.done() {
            return;
        }
        if let Some(v) = world.violation.clone() {
            self.report.violation = Some((v, prefix.clone()));
            return;
        }
        let fp = world.fingerprint();
        let seen = self.seen.entry(fp).or_default();
        if self.reduce && seen.iter().any(|s| s.iter().all(|c| sleep.contains(c))) {
            self.report.cached += 1;
            return;
        }
        seen.push(sleep.clone());
        let enabled = world.enabled();
        if enabled.is_empty() {
            self.report.schedules += 1;
            world.settle_and_check();
            if let Some(v) = world.violation.clone() {
                self.report.violation = Some((v, prefix.clone()));
            }
            return;
        }
        let todo: Vec<Choice> = enabled.into_iter().filter(|c| !sleep.contains(c)).collect();
        let mut explored: Vec<Choice> = Vec::new();
        let mut world = Some(world);
        for (n, &c) in todo.iter().enumerate() {
            if self.done() {
                return;
            }
            self.report.states += 1;
            if self.report.states > self.max_states {
                self.report.truncated = true;
                return;
            }
            let mut child = if n + 1 == todo.len() {
                world.take().expect("the last child takes the world")
            } else {
                self.rebuild(prefix)
            };
            child.apply(c);
            let actor = c.actor(self.case);
            let child_sleep: Vec<Choice> = sleep
                .iter()
                .chain(&explored)
                .copied()
                .filter(|s| {
                    let a = s.actor(self.case);
                    self.reduce && a.is_some() && actor.is_some() && a != actor
                })
                .collect();
            prefix.push(c);
            self.walk(child, prefix, child_sleep);
            prefix.pop();
            explored.push(c);
        }
    }
}
