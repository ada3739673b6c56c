//! Terms in Erlang's text syntax, as the shell prints them (`~p` on one
//! line): `{hello,42,<<"bytes">>,"chars",#{a => 1}}`.
//!
//! Pids carry their node's name, which Erlang's own `<N.85.0>` leaves out:
//! `<beam@127.0.0.1.85.0>` (node, id, serial).

use std::fmt::Write;

use eetf::{Pid as ErlPid, Term};

/// A term as Erlang's shell would print it, on one line.
///
/// ```
/// use cohort_erl::{Term, erlang_text};
/// let t = Term::from(eetf::Tuple::from(vec![
///     Term::from(eetf::Atom::from("hello")),
///     Term::from(eetf::FixInteger::from(42)),
///     Term::from(eetf::Binary::from(&b"hi"[..])),
/// ]));
/// assert_eq!(erlang_text(&t), r#"{hello,42,<<"hi">>}"#);
/// ```
pub fn erlang_text(t: &Term) -> String {
    let mut s = String::new();
    write_term(&mut s, t);
    s
}

/// A pid with its node's name: `<beam@127.0.0.1.85.0>`.
pub fn pid_text(p: &ErlPid) -> String {
    format!("<{}.{}.{}>", p.node.name, p.id, p.serial)
}

const RESERVED: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "end", "fun", "if", "let", "maybe", "not", "of", "or", "orelse",
    "receive", "rem", "try", "when", "xor",
];

fn atom(s: &mut String, a: &str) {
    let bare = a.starts_with(|c: char| c.is_ascii_lowercase())
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !RESERVED.contains(&a);
    if bare {
        s.push_str(a);
    } else {
        s.push('\'');
        escaped(s, a, '\'');
        s.push('\'');
    }
}

fn escaped(s: &mut String, text: &str, quote: char) {
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c == quote => {
                s.push('\\');
                s.push(c);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\x{{{:X}}}", c as u32);
            }
            c => s.push(c),
        }
    }
}

/// Text the shell would show as a string: UTF-8 without control
/// characters other than newline, tab and carriage return.
fn printable(bytes: &[u8]) -> Option<&str> {
    let t = std::str::from_utf8(bytes).ok()?;
    t.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .then_some(t)
}

fn list<'a>(s: &mut String, items: impl IntoIterator<Item = &'a Term>) {
    for (i, t) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_term(s, t);
    }
}

/// Bytes as numbers between `open` and `close`: `<<0,255>>`, `[1,2]`.
fn numbers(s: &mut String, bytes: &[u8], open: &str, close: &str) {
    s.push_str(open);
    for (i, x) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x}");
    }
    s.push_str(close);
}

fn write_term(s: &mut String, t: &Term) {
    match t {
        Term::Atom(a) => atom(s, &a.name),
        Term::FixInteger(i) => {
            let _ = write!(s, "{}", i.value);
        }
        Term::BigInteger(i) => {
            let _ = write!(s, "{}", i.value);
        }
        Term::Float(f) => {
            // Erlang always shows a fraction: 1.0, 1.0e100.
            let d = format!("{:?}", f.value);
            match d.split_once('e') {
                Some((m, e)) if !m.contains('.') => {
                    let _ = write!(s, "{m}.0e{e}");
                }
                _ => s.push_str(&d),
            }
        }
        Term::Pid(p) => s.push_str(&pid_text(p)),
        Term::Port(p) => {
            let _ = write!(s, "#Port<{}.{}>", p.node.name, p.id);
        }
        Term::Reference(r) => {
            let _ = write!(s, "#Ref<{}", r.node.name);
            for n in &r.id {
                let _ = write!(s, ".{n}");
            }
            s.push('>');
        }
        Term::ExternalFun(f) => {
            s.push_str("fun ");
            atom(s, &f.module.name);
            s.push(':');
            atom(s, &f.function.name);
            let _ = write!(s, "/{}", f.arity);
        }
        Term::InternalFun(_) => s.push_str("#Fun<>"),
        Term::Binary(b) => match printable(&b.bytes) {
            Some(text) if !b.bytes.is_empty() => {
                s.push_str("<<\"");
                escaped(s, text, '"');
                s.push_str("\">>");
            }
            _ => numbers(s, &b.bytes, "<<", ">>"),
        },
        Term::BitBinary(b) => {
            s.push_str("<<");
            let n = b.bytes.len();
            for (i, x) in b.bytes.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                if i + 1 == n && b.tail_bits_size > 0 && b.tail_bits_size < 8 {
                    let _ = write!(s, "{}:{}", x >> (8 - b.tail_bits_size), b.tail_bits_size);
                } else {
                    let _ = write!(s, "{x}");
                }
            }
            s.push_str(">>");
        }
        Term::ByteList(l) => match printable(&l.bytes) {
            Some(text) if l.bytes.is_ascii() => {
                s.push('"');
                escaped(s, text, '"');
                s.push('"');
            }
            _ => numbers(s, &l.bytes, "[", "]"),
        },
        Term::List(l) => {
            s.push('[');
            list(s, &l.elements);
            s.push(']');
        }
        Term::ImproperList(l) => {
            s.push('[');
            list(s, &l.elements);
            s.push('|');
            write_term(s, &l.last);
            s.push(']');
        }
        Term::Tuple(t) => {
            s.push('{');
            list(s, &t.elements);
            s.push('}');
        }
        Term::Map(m) => {
            // Sorted by their text, so the same map prints the same way.
            let mut pairs: Vec<(String, String)> = m
                .map
                .iter()
                .map(|(k, v)| (erlang_text(k), erlang_text(v)))
                .collect();
            pairs.sort();
            s.push_str("#{");
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{k} => {v}");
            }
            s.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{Atom, Binary, ByteList, FixInteger, Float, List, Tuple};

    #[test]
    fn terms_print_as_the_shell_prints_them() {
        let t = |v: Vec<Term>| Term::from(Tuple::from(v));
        let a = |s: &str| Term::from(Atom::from(s));
        let cases = [
            (a("ok"), "ok"),
            (a("Hello world"), "'Hello world'"),
            (a("it's"), "'it\\'s'"),
            (a("end"), "'end'"),
            (a("node@127.0.0.1"), "'node@127.0.0.1'"),
            (Term::from(FixInteger::from(-7)), "-7"),
            (Term::from(Float::try_from(1.0).unwrap()), "1.0"),
            (Term::from(Float::try_from(1e100).unwrap()), "1.0e100"),
            (
                Term::from(Binary::from(&b"a\"b\n"[..])),
                "<<\"a\\\"b\\n\">>",
            ),
            (Term::from(Binary::from(&[0u8, 255][..])), "<<0,255>>"),
            (Term::from(Binary::from(&b""[..])), "<<>>"),
            (Term::from(ByteList::from(b"abc")), "\"abc\""),
            (Term::from(ByteList::from(&[1u8, 2])), "[1,2]"),
            (Term::from(List::nil()), "[]"),
            (
                t(vec![a("hello"), Term::from(FixInteger::from(42))]),
                "{hello,42}",
            ),
            (
                Term::from(ErlPid::new("beam@127.0.0.1", 85, 0, 3)),
                "<beam@127.0.0.1.85.0>",
            ),
        ];
        for (term, want) in cases {
            assert_eq!(erlang_text(&term), want, "{term:?}");
        }
    }
}
