//! What must hold, one invariant per file.
//!
//! An invariant looks at the whole simulation (node cores, network and the
//! [`Ledger`](crate::ledger::Ledger) of what happened) and says whether it
//! holds. [`Invariant::always`] is checked after every step; it must hold
//! at any moment, faults or not. [`Invariant::eventually`] is checked once,
//! after every partition healed, every node came back and the cluster had
//! time to settle.
//!
//! To add one (for process groups, names, global groups): write a file
//! here with a type implementing [`Invariant`], and list it in [`all`].

mod full_mesh;
mod group_boundary;
pub mod group_sync_states;
mod locked_held;
mod locked_once;
mod monitor_down_once;
mod names_unique;
mod no_delivery_to_exited;
pub mod no_panic;
pub mod pg_monitor_order;
pub mod pg_views;
mod sessions_symmetric;
mod wire_contract;

use crate::sim::Sim;

pub use full_mesh::FullMesh;
pub use group_boundary::GroupBoundary;
pub use group_sync_states::GroupSyncStates;
pub use locked_held::LockedHeld;
pub use locked_once::LockedOnce;
pub use monitor_down_once::MonitorDownOnce;
pub use names_unique::NamesUnique;
pub use no_delivery_to_exited::NoDeliveryToExited;
pub use no_panic::NoPanic;
pub use pg_monitor_order::PgMonitorOrder;
pub use pg_views::PgViews;
pub use sessions_symmetric::SessionsSymmetric;
pub use wire_contract::WireContract;

/// A property of the simulated cluster.
pub trait Invariant {
    /// A short name, printed with violations.
    fn name(&self) -> &'static str;

    /// Checked after every step: what must hold at every moment.
    fn always(&self, sim: &Sim) -> Result<(), String> {
        let _ = sim;
        Ok(())
    }

    /// Checked after heal and quiescence: what must hold once the cluster
    /// had time to settle.
    fn eventually(&self, sim: &Sim) -> Result<(), String> {
        let _ = sim;
        Ok(())
    }
}

/// Every invariant, in the order they are checked.
pub fn all() -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(NoPanic),
        Box::new(WireContract),
        Box::new(NoDeliveryToExited),
        Box::new(MonitorDownOnce),
        Box::new(SessionsSymmetric),
        Box::new(FullMesh),
        Box::new(GroupBoundary),
        Box::new(GroupSyncStates),
        Box::new(PgViews),
        Box::new(PgMonitorOrder),
        Box::new(LockedOnce),
        Box::new(LockedHeld),
        Box::new(NamesUnique),
    ]
}

#[cfg(test)]
mod tests {
    //! Each invariant fails when the fact it guards is broken: the checks
    //! can fail, so their passing means something.

    use std::time::Duration;

    use cohort_proto::pid::ExitReason;

    use super::*;
    use crate::config::{FaultSet, SimConfig};
    use crate::ledger::Stray;
    use crate::sim::Sim;

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
        for inv in all() {
            inv.always(&sim).expect("holds before tampering");
            inv.eventually(&sim).expect("holds before tampering");
        }
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
        assert!(MonitorDownOnce.always(&sim).is_err());
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
        assert!(MonitorDownOnce.eventually(&sim).is_err());
    }

    #[test]
    fn a_late_delivery_is_caught() {
        let mut sim = settled(3);
        let at = sim.now();
        sim.ledger.late_deliveries.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(NoDeliveryToExited.always(&sim).is_err());
    }

    #[test]
    fn a_contract_slip_is_caught() {
        let mut sim = settled(4);
        let at = sim.now();
        sim.ledger.contract.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(WireContract.always(&sim).is_err());
    }

    #[test]
    fn an_unannounced_session_is_caught() {
        let mut sim = settled(5);
        sim.ledger.sessions.remove(&(0, 1));
        assert!(SessionsSymmetric.always(&sim).is_err());
    }

    #[test]
    fn a_missing_mesh_link_is_caught() {
        let mut sim = settled(6);
        sim.disconnect(0, 1);
        let soon = sim.now() + Duration::from_secs(10);
        sim.run_until(soon);
        FullMesh
            .eventually(&sim)
            .expect("a disconnect is allowed to part them");
        // Had node 0 not been asked to forget node 1, it would have to redial.
        sim.ledger.remembers.insert((0, 1));
        assert!(FullMesh.eventually(&sim).is_err());
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
        assert!(PgViews.always(&sim).is_err());
        assert!(PgViews.eventually(&sim).is_err());
    }

    #[test]
    fn a_monitor_that_missed_an_event_is_caught() {
        let mut sim = settled(8);
        let m = sim
            .ledger
            .reg
            .pg_mons
            .values_mut()
            .find(|m| !m.state.is_empty())
            .expect("a monitor with members");
        m.state.clear();
        assert!(PgMonitorOrder.always(&sim).is_err());
    }

    #[test]
    fn a_double_locked_registration_is_caught() {
        let mut sim = settled(9);
        let at = sim.now();
        sim.ledger.reg.locked_doubles.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(LockedOnce.always(&sim).is_err());
    }

    #[test]
    fn a_locked_registration_not_held_by_a_member_is_caught() {
        let mut sim = settled(10);
        let at = sim.now();
        sim.ledger.reg.locked_unheld.push(Stray {
            at,
            what: "test".into(),
        });
        assert!(LockedHeld.always(&sim).is_err());
    }
}
