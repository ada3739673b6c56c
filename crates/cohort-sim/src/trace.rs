//! The event trace of a run: a hash of every event (always) and the events
//! as text (when asked), so two runs can be compared event for event.

use std::fmt::{self, Write};

use cohort_proto::time::Time;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over everything written to it. Hand-rolled because std's hashers
/// promise no stable output across releases, and the trace hash is compared
/// across runs.
struct Fnv<'a>(&'a mut u64);

impl Fnv<'_> {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            *self.0 ^= u64::from(x);
            *self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

impl Write for Fnv<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// A time in seconds with six decimals, right-aligned in 12 columns: the
/// same text as `{:>12.6}` of the seconds as a float, without formatting a
/// float (a microsecond count below 2^53 divides exactly enough).
struct Secs(Time);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, us) = (self.0 .0 / 1_000_000, self.0 .0 % 1_000_000);
        let digits = s.checked_ilog10().unwrap_or(0) as usize + 1;
        for _ in digits + 7..12 {
            f.write_char(' ')?;
        }
        write!(f, "{s}.{us:06}")
    }
}

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    /// Whether events are hashed (and formatted at all).
    hashing: bool,
    hash: u64,
    events: u64,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps its lines when `record` is set and hashes them
    /// when `hash` or `record` is set; otherwise it only counts events.
    pub fn new(record: bool, hash: bool) -> Self {
        Trace {
            hashing: hash || record,
            hash: FNV_OFFSET,
            events: 0,
            lines: record.then(Vec::new),
        }
    }

    /// Records one event at `now`.
    pub fn event(&mut self, now: Time, args: fmt::Arguments<'_>) {
        self.events += 1;
        if !self.hashing {
            return;
        }
        match &mut self.lines {
            Some(lines) => {
                let line = format!("{} {args}", Secs(now));
                Fnv(&mut self.hash).bytes(line.as_bytes());
                Fnv(&mut self.hash).bytes(b"\n");
                lines.push(line);
            }
            None => {
                // Same bytes as the recorded line, without the allocation;
                // hashing never fails, so only a failing `Display` can (as
                // it would make `format!` panic on the recorded path).
                writeln!(Fnv(&mut self.hash), "{} {args}", Secs(now))
                    .expect("a trace event formats");
            }
        }
    }

    /// Mixes raw bytes (frame bodies) into the hash without a trace line.
    pub fn mix(&mut self, bytes: &[u8]) {
        if !self.hashing {
            return;
        }
        Fnv(&mut self.hash).bytes(bytes);
    }

    /// The hash of everything recorded so far (the starting value when
    /// hashing is off).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Number of events recorded.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The recorded lines (empty unless recording was asked for).
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_the_float_format_did() {
        for us in [
            0u64,
            1,
            999_999,
            1_000_000,
            12_345_678,
            999_999_999,
            1_234_567_890_123,
            u64::from(u32::MAX) * 1000 + 7,
        ] {
            let want = format!("{:>12.6}", us as f64 / 1e6);
            assert_eq!(Secs(Time(us)).to_string(), want, "{us} µs");
        }
    }
}
