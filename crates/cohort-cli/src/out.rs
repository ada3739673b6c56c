//! Standard output that a closed pipe ends quietly.
//!
//! `println!` panics when stdout is gone (`cohort demo | head -1`); these
//! lines end the command with status 0 instead, as the reader asked for
//! no more.

use std::io::Write;

/// Writes one line to stdout; exits the process quietly (status 0) when
/// the reader has gone, and with status 1 on any other write error.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|_| out.write_all(b"\n"));
    // Line-buffered when a terminal, block-buffered in a pipe: flush so a
    // script waiting for a line (`ready PID`) sees it at once.
    let r = r.and_then(|_| out.flush());
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "cohort: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the executable: see [`line()`].
#[macro_export]
macro_rules! out {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics: a message for a closed or full stderr
/// is dropped.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
