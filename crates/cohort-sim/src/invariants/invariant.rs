//! What an invariant is: a name and the checks it runs, and what a run
//! reports when one does not hold.

use cohort_proto::time::Time;

use crate::sim::Sim;

/// One check of the simulated cluster: `Ok`, or what is wrong, in words.
pub type Check = fn(&Sim) -> Result<(), String>;

/// A property of the simulated cluster, and when it is checked.
#[derive(Debug, Clone, Copy)]
pub struct Invariant {
    /// A short name, printed with violations.
    pub name: &'static str,
    /// Checked after every step, and once more after settling: what must
    /// hold at every moment, faults or not.
    pub always: Option<Check>,
    /// Checked after heal and quiescence: what must hold once the cluster
    /// had time to settle.
    pub eventually: Option<Check>,
}

/// Something that went wrong in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant that failed.
    pub invariant: &'static str,
    /// The step after which it was found (`None`: in the final check).
    pub step: Option<usize>,
    /// Simulated time.
    pub at: Time,
    /// What was wrong.
    pub message: String,
}
