//! What must hold, one invariant per file.
//!
//! An invariant looks at the whole simulation (node cores, network and the
//! [`Ledger`](crate::ledger::Ledger) of what happened) and says whether it
//! holds. Its [`Invariant::always`] check runs after every step; it must
//! hold at any moment, faults or not. Its [`Invariant::eventually`] check
//! runs once, after every partition healed, every node came back and the
//! cluster had time to settle. An invariant has the checks it needs.
//!
//! To add one (for process groups, names, global groups): write a file
//! here with an [`Invariant`] constant naming its checks, and list it in
//! [`all`].

mod conflict_told_everywhere;
mod full_mesh;
mod group_boundary;
pub mod group_sync_states;
mod invariant;
mod locked_held;
mod locked_once;
mod monitor_down_once;
mod names_unique;
mod no_delivery_to_exited;
pub mod no_panic;
pub mod pg_monitor_order;
pub mod pg_views;
mod sessions_symmetric;
mod unregister_applied;
mod wire_contract;

use crate::sim::Sim;

pub use self::conflict_told_everywhere::CONFLICT_TOLD_EVERYWHERE;
pub use self::full_mesh::FULL_MESH;
pub use self::group_boundary::GROUP_BOUNDARY;
pub use self::group_sync_states::GROUP_SYNC_STATES;
pub use self::invariant::{Check, Invariant, Violation};
pub use self::locked_held::LOCKED_HELD;
pub use self::locked_once::LOCKED_ONCE;
pub use self::monitor_down_once::MONITOR_DOWN_ONCE;
pub use self::names_unique::NAMES_UNIQUE;
pub use self::no_delivery_to_exited::NO_DELIVERY_TO_EXITED;
pub use self::no_panic::NO_PANIC;
pub use self::pg_monitor_order::PG_MONITOR_ORDER;
pub use self::pg_views::PG_VIEWS;
pub use self::sessions_symmetric::SESSIONS_SYMMETRIC;
pub use self::unregister_applied::UNREGISTER_APPLIED;
pub use self::wire_contract::WIRE_CONTRACT;

/// Every invariant, in the order they are checked.
pub fn all() -> Vec<Invariant> {
    vec![
        NO_PANIC,
        WIRE_CONTRACT,
        NO_DELIVERY_TO_EXITED,
        MONITOR_DOWN_ONCE,
        SESSIONS_SYMMETRIC,
        FULL_MESH,
        GROUP_BOUNDARY,
        GROUP_SYNC_STATES,
        PG_VIEWS,
        PG_MONITOR_ORDER,
        LOCKED_ONCE,
        LOCKED_HELD,
        NAMES_UNIQUE,
        UNREGISTER_APPLIED,
        CONFLICT_TOLD_EVERYWHERE,
    ]
}

/// The first of `invariants` that does not hold: after step `step`
/// (`always` checks), or with `step` `None` after settling (each
/// invariant's `always` and then its `eventually` check).
pub fn check(invariants: &[Invariant], sim: &Sim, step: Option<usize>) -> Option<Violation> {
    for inv in invariants {
        let checks = match step {
            Some(_) => [inv.always, None],
            None => [inv.always, inv.eventually],
        };
        for check in checks.into_iter().flatten() {
            if let Err(message) = check(sim) {
                return Some(Violation {
                    invariant: inv.name,
                    step,
                    at: sim.now(),
                    message,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    //! Each invariant fails when the fact it guards is broken: the checks
    //! can fail, so their passing means something.

    use std::time::Duration;

    use cohort_proto::pid::ExitReason;
    use cohort_proto::time::Time;

    use super::*;
    use crate::config::{FaultSet, SimConfig};
    use crate::ledger::{LockedAck, Rival, Stray, Witness};

    /// A settled cluster with some processes and monitors, no faults.
    fn settled(seed: u64) -> Sim {
        let mut cfg = SimConfig::new(seed);
        cfg.nodes = Some(4);
        cfg.faults = FaultSet::none();
        cfg.settle = Duration::from_secs(10);
        let mut sim = Sim::new(cfg);
        for _ in 0..150 {
            crate::workload::step(&mut sim);
        }
        sim.settle();
        assert_eq!(check(&all(), &sim, None), None, "holds before tampering");
        sim
    }

    #[test]
    fn a_second_down_is_caught() {
        let mut sim = settled(1);
        let now = sim.now();
        let m = sim
            .ledger
            .monitors
            .values_mut()
            .find(|m| m.downs.len() == 1)
            .expect("some monitor fired");
        let again = m.downs[0].clone();
        m.downs.push((now, again.1, again.2));
        assert!(monitor_down_once::always(&sim).is_err());
    }

    #[test]
    fn a_lost_down_is_caught() {
        let fired = |sim: &Sim| {
            sim.ledger
                .monitors
                .iter()
                .any(|((w, _), m)| m.downs.len() == 1 && !m.demonitored && sim.ledger.is_alive(w))
        };
        let mut sim = (2..40)
            .map(settled)
            .find(fired)
            .expect("a seed where a live watcher's monitor fired");
        let m = sim
            .ledger
            .monitors
            .iter()
            .find(|((w, _), m)| m.downs.len() == 1 && !m.demonitored && sim.ledger.is_alive(w))
            .map(|(k, _)| k.clone())
            .expect("some live watcher's monitor fired");
        let rec = sim.ledger.monitors.get_mut(&m).expect("present");
        // Pretend the Down never came: the target is dead, so it is owed.
        let reason = rec.downs.pop().expect("fired").1;
        if reason == ExitReason::NoConnection {
            // The target may still live; make it dead for the check.
            let t = rec.target.clone();
            sim.ledger
                .end(&t, sim.now(), crate::ledger::Ending::NodeGone);
        }
        assert!(monitor_down_once::eventually(&sim).is_err());
    }

    #[test]
    fn a_late_delivery_is_caught() {
        let mut sim = settled(3);
        let at = sim.now();
        sim.ledger.late_deliveries.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(no_delivery_to_exited::always(&sim).is_err());
    }

    #[test]
    fn a_contract_slip_is_caught() {
        let mut sim = settled(4);
        let at = sim.now();
        sim.ledger.contract.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(wire_contract::always(&sim).is_err());
    }

    #[test]
    fn an_unannounced_session_is_caught() {
        let mut sim = settled(5);
        sim.ledger.sessions.remove(&(0, 1));
        assert!(sessions_symmetric::always(&sim).is_err());
    }

    #[test]
    fn a_missing_mesh_link_is_caught() {
        let mut sim = settled(6);
        sim.disconnect(0, 1);
        let soon = sim.now() + Duration::from_secs(10);
        sim.run_until(soon);
        full_mesh::eventually(&sim).expect("a disconnect is allowed to part them");
        // Had node 0 not been asked to forget node 1, it would have to redial.
        sim.ledger.remembers.insert((0, 1));
        assert!(full_mesh::eventually(&sim).is_err());
    }

    #[test]
    fn a_member_missing_from_a_view_is_caught() {
        let mut sim = settled(7);
        let key = sim
            .ledger
            .reg
            .pg_local
            .keys()
            .next()
            .cloned()
            .expect("some membership");
        // Pretend the node made one more membership than its view shows.
        let groups = sim.ledger.reg.pg_local.get_mut(&key).expect("present");
        groups.entry("phantom".into()).or_default().insert(999, 1);
        assert!(pg_views::always(&sim).is_err());
        assert!(pg_views::eventually(&sim).is_err());
    }

    #[test]
    fn a_monitor_that_missed_an_event_is_caught() {
        // The first seed whose run ends with a monitor that saw members.
        let mut sim = (8..64)
            .map(settled)
            .find(|s| s.ledger.reg.pg_mons.values().any(|m| !m.state.is_empty()))
            .expect("a seed with a monitor with members");
        let m = sim
            .ledger
            .reg
            .pg_mons
            .values_mut()
            .find(|m| !m.state.is_empty())
            .expect("a monitor with members");
        m.state.clear();
        assert!(pg_monitor_order::always(&sim).is_err());
    }

    /// A locked registration acknowledged at the end of `sim`, with node 1
    /// as a witness synced with node 0 from the start.
    fn locked_ack(sim: &Sim, holds: Option<bool>, rivals: Vec<Rival>) -> LockedAck {
        let now = sim.now();
        LockedAck {
            table: "locked".into(),
            name: "test".into(),
            pid: sim.nodes()[0].pid(999),
            node: 0,
            replace: false,
            started: now,
            acked: now,
            witnesses: vec![Witness {
                node: 1,
                synced_since: (Time::ZERO, Time::ZERO),
                session_up: true,
                holds,
            }],
            rivals,
        }
    }

    #[test]
    fn a_double_locked_registration_is_caught() {
        let mut sim = settled(9);
        let rival = Rival {
            pid: sim.nodes()[1].pid(998),
            node: 1,
            acked: Time::ZERO,
        };
        let mut ack = locked_ack(&sim, Some(true), vec![rival]);
        ack.replace = true;
        sim.ledger.reg.locked_acks.push(ack.clone());
        locked_once::always(&sim).expect("re_register takes held names");
        sim.ledger
            .reg
            .locked_acks
            .last_mut()
            .expect("pushed")
            .replace = false;
        assert!(locked_once::always(&sim).is_err());
        // Not synced with the rival's node: nothing to refuse with.
        sim.ledger
            .reg
            .locked_acks
            .last_mut()
            .expect("pushed")
            .witnesses[0]
            .session_up = false;
        locked_once::always(&sim).expect("the rival's node is not in session");
    }

    #[test]
    fn a_locked_registration_not_held_by_a_member_is_caught() {
        let mut sim = settled(10);
        let held = locked_ack(&sim, Some(true), Vec::new());
        sim.ledger.reg.locked_acks.push(held);
        locked_held::always(&sim).expect("the witness holds it");
        let not_held = locked_ack(&sim, Some(false), Vec::new());
        sim.ledger.reg.locked_acks.push(not_held);
        assert!(locked_held::always(&sim).is_err());
    }
}
