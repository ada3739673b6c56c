//! Everything happens on one thread in one order decided by the seed:
//! events run by time, and events due at the same time in the order they
//! were scheduled. The queue holds one FIFO per point of time, ordered by
//! time: a new event goes to the back of its time's FIFO, so the order is
//! that of `(time, sequence number)`. (Not one ordered map or heap entry
//! per event: every node of a mesh ticks at the same instants, and each
//! tick round puts n^2 frames in flight at once, spread over a few
//! thousand distinct arrival times; taking them from the front of a FIFO
//! costs far less than sifting a heap of millions.)

use std::collections::{BTreeMap, VecDeque};

use cohort_proto::time::Time;

use crate::net::{LinkId, NodeIdx};

/// Something due at a point of simulated time.
#[derive(Debug)]
pub enum Event {
    /// The node's core asked to be woken now.
    Timer {
        /// The node.
        node: NodeIdx,
        /// The incarnation that asked.
        creation: u32,
    },
    /// A dial reaches the target host.
    Syn {
        /// The connection.
        link: LinkId,
    },
    /// A dial got no answer.
    DialTimeout {
        /// The connection.
        link: LinkId,
    },
    /// The head of a pipe arrives.
    Pipe {
        /// The connection.
        link: LinkId,
        /// The direction: the index of the sending end.
        dir: usize,
    },
    /// A reset reaches one end of a connection.
    Reset {
        /// The connection.
        link: LinkId,
        /// The end told.
        end: usize,
    },
}

/// Simulated time and the events due.
#[derive(Debug)]
pub struct Scheduler {
    now: Time,
    queue: BTreeMap<Time, VecDeque<Event>>,
    /// Emptied FIFOs, kept for reuse.
    spare: Vec<VecDeque<Event>>,
}

impl Scheduler {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Scheduler {
            now: Time::ZERO,
            queue: BTreeMap::new(),
            spare: Vec::new(),
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `ev` at `at` (now, if `at` has passed), after every event
    /// already scheduled for that time.
    pub fn schedule(&mut self, at: Time, ev: Event) {
        let at = at.max(self.now);
        let spare = &mut self.spare;
        self.queue
            .entry(at)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push_back(ev);
    }

    /// Takes the next event due by `until`, moving the clock to its time.
    pub fn next_due(&mut self, until: Time) -> Option<Event> {
        let mut entry = self.queue.first_entry()?;
        let at = *entry.key();
        if at > until {
            return None;
        }
        let ev = entry.get_mut().pop_front().expect("no empty FIFO is kept");
        if entry.get().is_empty() {
            self.spare.push(entry.remove());
        }
        self.now = at;
        Some(ev)
    }

    /// Moves the clock to `until`, unless it is past it already.
    pub fn advance_to(&mut self, until: Time) {
        self.now = self.now.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_of(ev: Event) -> LinkId {
        match ev {
            Event::Syn { link } => link,
            other => panic!("scheduled only Syn events, got {other:?}"),
        }
    }

    #[test]
    fn events_run_by_time_then_in_the_order_scheduled() {
        let mut s = Scheduler::new();
        let t = Time;
        for (at, link) in [(5, 1), (2, 2), (5, 3), (2, 4), (9, 5), (5, 6)] {
            s.schedule(t(at), Event::Syn { link });
        }
        let mut order = Vec::new();
        while let Some(ev) = s.next_due(t(5)) {
            order.push((s.now().0, link_of(ev)));
        }
        assert_eq!(order, vec![(2, 2), (2, 4), (5, 1), (5, 3), (5, 6)]);
        // Past `until` stays queued; a time already passed means now.
        s.schedule(t(1), Event::Syn { link: 7 });
        assert_eq!(s.next_due(t(8)).map(link_of), Some(7));
        assert_eq!(s.now(), t(5));
        assert!(s.next_due(t(8)).is_none());
        s.advance_to(t(8));
        assert_eq!(s.next_due(t(9)).map(link_of), Some(5));
        assert_eq!(s.now(), t(9));
    }
}
