//! A bounded check of the external term format, run on every frame from the
//! distribution port before a decoder sees it.
//!
//! The decoder (`eetf`) trusts the counts it reads (it reserves a vector of
//! the announced length) and recurses once per nesting level, so a hostile
//! peer could make it allocate gigabytes or overflow the stack with a few
//! bytes. This walk allocates nothing: every count must fit in the bytes
//! that remain, nesting is limited to [`MAX_DEPTH`], the whole frame to
//! `max_terms` terms, and encodings the bridge never negotiates (atom cache
//! references, compressed terms, local terms, funs) are refused.

/// Deepest nesting of tuples, lists and maps accepted.
pub const MAX_DEPTH: usize = 128;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
    terms: usize,
    max_terms: usize,
}

impl<'a> Walk<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() - self.pos < n {
            return Err(Malformed("truncated term"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<usize, Malformed> {
        Ok(self.take(1)?[0] as usize)
    }
    fn u16(&mut self) -> Result<usize, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    /// A count of items each at least one byte long must fit in what is left.
    fn count(&mut self, n: usize) -> Result<usize, Malformed> {
        if n > self.buf.len() - self.pos {
            return Err(Malformed("count larger than the frame"));
        }
        Ok(n)
    }
    fn atom(&mut self) -> Result<(), Malformed> {
        match self.u8()? {
            100 | 118 => {
                let n = self.u16()?;
                self.take(n).map(drop)
            }
            115 | 119 => {
                let n = self.u8()?;
                self.take(n).map(drop)
            }
            _ => Err(Malformed("expected an atom")),
        }
    }
    fn term(&mut self, depth: usize) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed("term nested too deeply"));
        }
        self.terms += 1;
        if self.terms > self.max_terms {
            return Err(Malformed("too many terms in one frame"));
        }
        match self.u8()? {
            97 => self.take(1).map(drop),
            98 => self.take(4).map(drop),
            70 => self.take(8).map(drop),
            99 => self.take(31).map(drop),
            100 | 118 => {
                let n = self.u16()?;
                self.take(n).map(drop)
            }
            115 | 119 => {
                let n = self.u8()?;
                self.take(n).map(drop)
            }
            106 => Ok(()),
            107 => {
                let n = self.u16()?;
                self.take(n).map(drop)
            }
            109 => {
                let n = self.u32()?;
                self.take(n).map(drop)
            }
            77 => {
                let n = self.u32()?;
                self.take(1 + n).map(drop)
            }
            110 => {
                let n = self.u8()?;
                self.take(1 + n).map(drop)
            }
            111 => {
                let n = self.u32()?;
                self.take(1 + n).map(drop)
            }
            104 => {
                let n = self.u8()?;
                self.seq(n, depth)
            }
            105 => {
                let n = self.u32()?;
                let n = self.count(n)?;
                self.seq(n, depth)
            }
            108 => {
                let n = self.u32()?;
                let n = self.count(n)?;
                self.seq(n, depth)?;
                self.term(depth + 1)
            }
            116 => {
                let n = self.u32()?;
                let n = self.count(n)?;
                self.seq(n.checked_mul(2).ok_or(Malformed("map too large"))?, depth)
            }
            // NEW_PID_EXT, PID_EXT
            88 => {
                self.atom()?;
                self.take(12).map(drop)
            }
            103 => {
                self.atom()?;
                self.take(9).map(drop)
            }
            // NEW_PORT_EXT, PORT_EXT, V4_PORT_EXT
            89 => {
                self.atom()?;
                self.take(8).map(drop)
            }
            102 => {
                self.atom()?;
                self.take(5).map(drop)
            }
            120 => {
                self.atom()?;
                self.take(12).map(drop)
            }
            // NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT, REFERENCE_EXT
            90 => {
                let n = self.u16()?;
                if n > 5 {
                    return Err(Malformed("reference too long"));
                }
                self.atom()?;
                self.take(4 + 4 * n).map(drop)
            }
            114 => {
                let n = self.u16()?;
                if n > 5 {
                    return Err(Malformed("reference too long"));
                }
                self.atom()?;
                self.take(1 + 4 * n).map(drop)
            }
            101 => {
                self.atom()?;
                self.take(5).map(drop)
            }
            // EXPORT_EXT: module, function, arity
            113 => {
                self.atom()?;
                self.atom()?;
                self.term(depth + 1)
            }
            80 => Err(Malformed("compressed term")),
            82 => Err(Malformed("atom cache reference (never negotiated)")),
            112 | 117 => Err(Malformed("fun (not accepted from the distribution port)")),
            121 => Err(Malformed("local term")),
            _ => Err(Malformed("unknown term tag")),
        }
    }
    fn seq(&mut self, n: usize, depth: usize) -> Result<(), Malformed> {
        for _ in 0..n {
            self.term(depth + 1)?;
        }
        Ok(())
    }
}

/// Checks a distribution frame's body (what follows the pass-through tag
/// 112): one or more terms, each starting with version byte 131, up to the
/// end of the frame, with at most `max_terms` terms in all.
pub fn check_frame(body: &[u8], max_terms: usize) -> Result<(), Malformed> {
    let mut w = Walk {
        buf: body,
        pos: 0,
        terms: 0,
        max_terms,
    };
    let mut n = 0;
    while w.pos < body.len() {
        if w.u8()? != 131 {
            return Err(Malformed("term without version byte 131"));
        }
        w.term(0)?;
        n += 1;
        if n > 2 {
            return Err(Malformed("more than a control message and a payload"));
        }
    }
    if n == 0 {
        return Err(Malformed("empty frame"));
    }
    Ok(())
}

/// Checks one term in the external format (starting with 131), as delivered
/// to Cohort processes.
pub fn check_term(bytes: &[u8], max_terms: usize) -> Result<(), Malformed> {
    let mut w = Walk {
        buf: bytes,
        pos: 0,
        terms: 0,
        max_terms,
    };
    if w.u8()? != 131 {
        return Err(Malformed("term without version byte 131"));
    }
    w.term(0)?;
    if w.pos != bytes.len() {
        return Err(Malformed("bytes after the term"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(t: eetf::Term) -> Vec<u8> {
        let mut v = Vec::new();
        t.encode(&mut v).unwrap();
        v
    }

    #[test]
    fn accepts_what_the_codec_writes() {
        let pid = eetf::Pid::new("a@b", 1, 2, 3);
        let t = eetf::Term::from(eetf::Tuple::from(vec![
            eetf::Term::from(eetf::Atom::from("join")),
            pid.clone().into(),
            eetf::List::from(vec![pid.into(), eetf::Binary::from(vec![1, 2]).into()]).into(),
            eetf::FixInteger::from(-7).into(),
        ]));
        let b = enc(t);
        check_term(&b, 100).unwrap();
        let mut two = b.clone();
        two.extend_from_slice(&b);
        check_frame(&two, 100).unwrap();
    }

    #[test]
    fn refuses_huge_counts_deep_nesting_and_truncation() {
        // A list announcing 2^32-1 elements in a 10-byte frame.
        assert!(check_term(&[131, 108, 255, 255, 255, 255, 106, 106], 1000).is_err());
        // A map announcing many pairs.
        assert!(check_term(&[131, 116, 0, 1, 0, 0], 1000).is_err());
        // 10 000 nested one-tuples.
        let mut deep = vec![131];
        deep.extend(std::iter::repeat_n([104u8, 1], 10_000).flatten());
        deep.push(106);
        assert_eq!(
            check_term(&deep, 1_000_000),
            Err(Malformed("term nested too deeply"))
        );
        // Truncated binary, compressed term, term budget.
        assert!(check_term(&[131, 109, 0, 0, 0, 9, 1], 10).is_err());
        assert!(check_term(&[131, 80, 0, 0, 0, 1, 1], 10).is_err());
        let many = enc(eetf::List::from(vec![eetf::Term::from(eetf::List::nil()); 50]).into());
        assert!(check_term(&many, 10).is_err());
        assert!(check_term(&many, 100).is_ok());
    }
}
