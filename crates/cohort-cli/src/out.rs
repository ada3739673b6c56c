//! Standard output that a closed pipe ends quietly.
//!
//! `println!` panics when stdout is gone (`cohort demo | head -1`); these
//! lines end the command with status 0 instead, as the reader asked for
//! no more.

use std::io::Write;

/// Writes one line to stdout; exits the process quietly (status 0) when
/// the reader has gone, and with status 1 on any other write error.
pub fn line(args: std::fmt::Arguments<'_>) {
    // Rust's stdout is line-buffered even into a pipe: the newline sends the
    // line at once (a script waiting for `ready PID` sees it).
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "cohort: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the executable: see [`line()`].
macro_rules! out {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}
pub(crate) use out;

/// `eprintln!` that never panics: a message for a closed or full stderr
/// is dropped.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use err;
