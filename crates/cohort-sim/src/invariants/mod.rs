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
mod monitor_down_once;
mod no_delivery_to_exited;
pub mod no_panic;
mod sessions_symmetric;
mod wire_contract;

use crate::sim::Sim;

pub use full_mesh::FullMesh;
pub use monitor_down_once::MonitorDownOnce;
pub use no_delivery_to_exited::NoDeliveryToExited;
pub use no_panic::NoPanic;
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
    ]
}
