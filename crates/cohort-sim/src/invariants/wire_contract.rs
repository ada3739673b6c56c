//! The cores keep the driver contract: they send and close only on
//! connections they own and have not closed, every frame survives the
//! codec round trip unchanged, and no core asks to be woken in the past
//! over and over.

use super::Invariant;
use crate::sim::Sim;

/// Driver-contract slips are never allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireContract;

impl Invariant for WireContract {
    fn name(&self) -> &'static str {
        "wire_contract"
    }

    fn always(&self, sim: &Sim) -> Result<(), String> {
        let slips = sim.ledger().contract.iter().chain(sim.driver_faults());
        match slips.min_by_key(|s| s.at) {
            Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
            None => Ok(()),
        }
    }
}
