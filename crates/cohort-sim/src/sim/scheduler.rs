//! The scheduler: simulated time and the queue of events.
//!
//! Everything happens on one thread in one order decided by the seed:
//! events sit in a `BTreeMap` keyed by `(time, sequence number)`, so events
//! due at the same time run in the order they were scheduled.

use std::collections::BTreeMap;

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
    seq: u64,
    queue: BTreeMap<(Time, u64), Event>,
}

impl Scheduler {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Scheduler {
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
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
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    /// Takes the next event due by `until`, moving the clock to its time.
    pub fn next_due(&mut self, until: Time) -> Option<Event> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > until {
            return None;
        }
        let ((at, _), ev) = entry.remove_entry();
        self.now = at;
        Some(ev)
    }

    /// Moves the clock to `until`, unless it is past it already.
    pub fn advance_to(&mut self, until: Time) {
        self.now = self.now.max(until);
    }
}
