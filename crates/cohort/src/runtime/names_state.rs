//! The read side of the name tables (a concurrent map per table, updated
//! by the core's `View` effects under the engine lock, so `whereis` and
//! `registered_names` never take that lock), the callers waiting for an
//! answer, and the subscribers; and the execution of name-service effects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::core::names::{NameEvent, NamesConfig, NamesEffect, NamesError, SharedClaim};

/// The read views' hasher: foldhash with a fixed seed (names come from
/// authenticated peers only).
type FoldHash = foldhash::fast::FixedState;

/// A visible entry: the winning claim, shared with the core (so the name
/// is stored once), looked up by its name. It knows whether the holder is
/// a process of this node (`whereis` hides those once the node stopped).
pub(crate) struct Entry(pub(super) SharedClaim);

impl std::borrow::Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl std::hash::Hash for Entry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state)
    }
}

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        self.0.name() == o.0.name()
    }
}

impl Eq for Entry {}

pub(super) type View = DashMap<Entry, (), FoldHash>;

/// Shards of a read view: enough that a write (under its shard's lock)
/// rarely waits for readers of other names.
const SHARDS: usize = 64;

/// The read side of the name tables and the callers waiting for answers.
pub(crate) struct NamesShared {
    pub(super) tables: Vec<(String, View)>,
    pub(super) pending: Mutex<HashMap<u64, oneshot::Sender<Result<bool, NamesError>>>>,
    pub(super) next_op: AtomicU64,
    pub(super) subs: Mutex<Vec<(usize, super::stream::EventSender<NameEvent>)>>,
    /// The node stopped: its processes are gone, so are their names.
    stopped: AtomicBool,
}

impl NamesShared {
    /// The node stopped: every caller still waiting gets `Stopped`
    /// (dropping its reply channel answers it so).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn new(cfg: &NamesConfig, seed: u64) -> Self {
        NamesShared {
            tables: cfg
                .tables
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        DashMap::with_hasher_and_shard_amount(
                            FoldHash::with_seed(seed | 1),
                            SHARDS,
                        ),
                    )
                })
                .collect(),
            pending: Mutex::new(HashMap::new()),
            next_op: AtomicU64::new(1),
            subs: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        }
    }

    /// Whether the node stopped (its local processes ended with it).
    pub(super) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Carries out one name-service effect, under the engine lock.
    pub(crate) fn apply(&self, fx: NamesEffect) {
        match fx {
            NamesEffect::View { table, name, entry } => {
                if let Some((_, view)) = self.tables.get(table) {
                    match entry {
                        // Replaces key and value at once: readers never see a gap.
                        Some(rec) => match view.entry(Entry(rec)) {
                            dashmap::Entry::Occupied(o) => {
                                o.replace_entry(());
                            }
                            dashmap::Entry::Vacant(v) => {
                                v.insert(());
                            }
                        },
                        None => {
                            view.remove(name.as_str());
                        }
                    }
                }
            }
            NamesEffect::Event { table, event } => {
                let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
                subs.retain(|(t, tx)| *t != table || tx.send(event.clone()).is_ok());
            }
            NamesEffect::Reply { op, result } => {
                let tx = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&op);
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
        }
    }
}
