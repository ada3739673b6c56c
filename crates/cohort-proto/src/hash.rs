//! The hasher of the core's hash maps (processes, process groups, names).

/// foldhash with a fixed seed. Fast on the short keys the core hashes
/// (group and name strings, serials, pids), and fixed rather than seeded
/// per process: a map's iteration order then depends only on what was
/// inserted, so a seed replays the same run in the simulator. Keys come
/// from this node and its authenticated peers only, so resistance to hash
/// flooding by an outsider is not needed.
pub(crate) type FixedHasher = foldhash::fast::FixedState;
