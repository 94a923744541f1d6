//! Ctrl-C during a long command (`bnh bench`, `bnh all`): the first one asks
//! the command to stop at its next checkpoint (after the current
//! measurement), so it can keep what it measured and remove its temp files;
//! a second one ends the process at once (exit 130).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Catch SIGINT for the rest of the process. Uses the `ctrlc`
/// crate: its handler runs on a normal thread, so it can print and exit safely.
pub fn install() {
    // An error means a handler is already set (a second command in a test); keep it.
    let _ = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        crate::output::stdout::warn(
            "bnh: interrupted; stopping after the current step (Ctrl-C again to stop at once)",
        );
    });
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// A checkpoint: `Err(Interrupted)` once Ctrl-C was pressed.
pub fn check(what: &str) -> Result<()> {
    if requested() {
        return Err(Error::Interrupted(what.to_string()));
    }
    Ok(())
}
