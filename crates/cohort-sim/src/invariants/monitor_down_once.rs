//! Every monitor yields exactly one `Down`, never two, and none after a
//! demonitor.
//!
//! At every moment: no monitor has two `Down`s, none came after its
//! demonitor, none arrived for a monitor the watcher never set, and a
//! `Down` carrying an exit reason names the reason the target really ended
//! with (otherwise it is `NoProc` or `NoConnection`).
//!
//! After quiescence: a monitor whose watcher lives and that was neither
//! demonitored nor fired must still be justified: its target lives, and
//! (if remote) the watcher's node has a session with the target's
//! incarnation. Anything else is a lost `Down`.

use cohort_proto::pid::ExitReason;

use super::invariant::Invariant;
use crate::ledger::Ending;
use crate::sim::Sim;

/// Exactly one `Down` per monitor.
pub const MONITOR_DOWN_ONCE: Invariant = Invariant {
    name: "monitor_down_once",
    always: Some(always),
    eventually: Some(eventually),
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    let ledger = sim.ledger();
    if let Some(s) = ledger.stray_downs.first() {
        return Err(format!("at {}us: {}", s.at.0, s.what));
    }
    for ((watcher, mref), m) in &ledger.monitors {
        if m.downs.len() > 1 {
            return Err(format!(
                "monitor {} of {watcher} on {} fired {} times: {:?}",
                mref.0,
                m.target,
                m.downs.len(),
                m.downs
            ));
        }
        for (at, reason, after_demonitor) in &m.downs {
            if *after_demonitor {
                return Err(format!(
                    "monitor {} of {watcher} on {} fired at {}us after demonitor",
                    mref.0, m.target, at.0
                ));
            }
            if matches!(reason, ExitReason::NoProc | ExitReason::NoConnection) {
                continue;
            }
            let ended = ledger.procs.get(&m.target).and_then(|p| p.ended.clone());
            match ended {
                Some((_, Ending::Exited(r))) if r == *reason => {}
                other => {
                    return Err(format!(
                        "monitor {} of {watcher} got Down({reason}) for {}, which {}",
                        mref.0,
                        m.target,
                        match other {
                            None => "is alive".to_string(),
                            Some((_, how)) => format!("ended with {how:?}"),
                        }
                    ));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let ledger = sim.ledger();
    for ((watcher, mref), m) in &ledger.monitors {
        if !m.downs.is_empty() || m.demonitored || !ledger.is_alive(watcher) {
            continue;
        }
        let Some(w) = sim.index_of(watcher.node()) else {
            continue;
        };
        let target = &m.target;
        let justified = ledger.is_alive(target)
            && (target.node() == watcher.node()
                || sim.nodes()[w]
                    .core()
                    .and_then(|c| c.cluster().peer_creation(target.node()))
                    == Some(target.creation()));
        if !justified {
            let state = match ledger.procs.get(target).and_then(|p| p.ended.clone()) {
                Some((at, how)) => format!("ended at {}us ({how:?})", at.0),
                None if ledger.procs.contains_key(target) => {
                    "alive, but its node has no session with the watcher's".to_string()
                }
                None => "never existed".to_string(),
            };
            return Err(format!(
                "monitor {} of {watcher} on {target} never fired; the target {state}",
                mref.0
            ));
        }
    }
    Ok(())
}
