//! Process-group monitors see every join and leave exactly once, in the
//! origin's order.
//!
//! The simulator replays each subscription: its starting snapshot plus
//! every event delivered to it. At every step that replay must equal the
//! node's current view of the monitored scope or group (an event missed or
//! delivered twice shows up as a difference), a leave must match an
//! earlier join, and for each pid the membership counts the subscriber
//! passes through must follow the origin's own sequence of counts
//! (skipping is allowed: a snapshot at reconnect compresses history; going
//! back is not, except to zero when the origin's node goes down).

use super::invariant::Invariant;
use super::pg_views::view_of;
use crate::sim::Sim;

/// Monitors replay to the view, in origin order.
pub const PG_MONITOR_ORDER: Invariant = Invariant {
    name: "pg_monitor_order",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    let reg = &sim.ledger().reg;
    if let Some(s) = reg.pg_anomalies.first() {
        return Err(format!("at {}us: {}", s.at.0, s.what));
    }
    for ((o, creation, sub), m) in &reg.pg_mons {
        let node = &sim.nodes()[*o];
        if !node.is_running() || node.creation != *creation {
            continue;
        }
        let Some(mut view) = view_of(sim, *o, &m.scope) else {
            continue;
        };
        if let Some(g) = &m.group {
            view.retain(|k, _| k == g);
        }
        if view != m.state {
            let groups: std::collections::BTreeSet<&String> =
                view.keys().chain(m.state.keys()).collect();
            let mut d = Vec::new();
            for g in groups {
                if view.get(g) != m.state.get(g) {
                    d.push(format!(
                        "{g}: view {:?} vs events {:?}",
                        view.get(g),
                        m.state.get(g)
                    ));
                }
            }
            return Err(format!(
                "sub {sub} of n{o}.{creation} on {}/{:?}: snapshot + {} events differ from the view: {}",
                m.scope,
                m.group,
                m.events,
                d.join("; ")
            ));
        }
    }
    Ok(())
}
