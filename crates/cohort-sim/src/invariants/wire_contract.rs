//! The cores keep the driver contract: they send and close only on
//! connections they own and have not closed, every frame survives the
//! codec round trip unchanged, and no core asks to be woken in the past
//! over and over.

use super::invariant::Invariant;
use crate::sim::Sim;

/// Driver-contract slips are never allowed.
pub const WIRE_CONTRACT: Invariant = Invariant {
    name: "wire_contract",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    let slips = sim.ledger().contract.iter().chain(sim.driver_faults());
    match slips.min_by_key(|s| s.at) {
        Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
        None => Ok(()),
    }
}
