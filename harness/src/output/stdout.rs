//! Standard output that never panics. `println!` panics when stdout is a
//! closed pipe (`bnh list | head -0`) or a full disk (`>/dev/full`), exit 101,
//! possibly before result files are written. Here the first failure is
//! remembered, later prints are skipped, and [`finish`] turns it into the
//! exit status once every file has been written: a closed pipe ends quietly
//! with the command's own status (as grep and ripgrep do), any other error
//! gets one message and exit 1.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Write `bytes` to stdout unless an earlier write failed; failures are
/// recorded for [`finish`], never raised.
pub fn write_bytes(bytes: &[u8]) {
    let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        *failed = Some(e);
    }
}

/// Write `text` to stdout (see [`write_bytes`]).
pub fn print(text: &str) {
    write_bytes(text.as_bytes());
}

/// Whether a write to stdout has failed.
pub fn failed() -> bool {
    FAILED.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The exit status once the command is done: `code` when stdout was fine
/// or is a closed pipe; exit 1 with one message for any other stdout error.
pub fn finish(code: ExitCode) -> ExitCode {
    write_bytes(b"");
    let failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    match failed.as_ref() {
        None => code,
        Some(e) if e.kind() == ErrorKind::BrokenPipe => code,
        Some(e) => {
            eprintln!("bnh: error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `print!` through [`print`](fn@print): never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout::print(&::std::format!($($arg)*))
    };
}

/// `println!` through [`print`](fn@print): never panics.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::stdout::print("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::stdout::print(&::std::format!("{}\n", ::std::format_args!($($arg)*)))
    };
}

/// One line on stderr that never panics (`eprintln!` does when stderr is a
/// full disk); a warning that cannot be shown is dropped.
pub fn warn(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}
