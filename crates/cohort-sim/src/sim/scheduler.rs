//! The scheduler: simulated time and the queue of events.
//!
//! Everything happens on one thread in one order decided by the seed:
//! events sit in a binary heap ordered by `(time, sequence number)`, so
//! events due at the same time run in the order they were scheduled. (A
//! heap rather than an ordered map: a large mesh schedules one event per
//! frame, and a heap pushes and pops them without allocating per event.)

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

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

/// An event in the queue, ordered by its key `(time, sequence number)`
/// alone (keys are unique).
#[derive(Debug)]
struct Due {
    at: Time,
    seq: u64,
    ev: Event,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Simulated time and the events due.
#[derive(Debug)]
pub struct Scheduler {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<Due>>,
}

impl Scheduler {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Scheduler {
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `ev` at `at` (now, if `at` has passed), after every event
    /// already scheduled for that time.
    pub fn schedule(&mut self, at: Time, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Due {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    /// Takes the next event due by `until`, moving the clock to its time.
    pub fn next_due(&mut self, until: Time) -> Option<Event> {
        if self.queue.peek()?.0.at > until {
            return None;
        }
        let Reverse(due) = self.queue.pop().expect("peeked");
        self.now = due.at;
        Some(due.ev)
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
        let t = |us| Time(us);
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
