//! One run of an external program on one case: spawned in a process group of
//! its own, its stdout and stderr drained on threads (only a bounded tail
//! kept, so a chatty program can neither block on a full pipe nor fill
//! memory), killed with its whole group at the timeout, and its output file
//! read in `bnh run-case`'s format.

use crate::case::Outputs;
use crate::input::{read_limited, MAX_CASE_BYTES};
use crate::run::Outcome;
use serde::Deserialize;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of stderr kept for the `crashed` message (the end, where errors are).
pub const TAIL_BYTES: usize = 2048;

/// How long the pipes may stay open after the program ended or was killed
/// (a background process it left holds them) before bnh stops waiting.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What one run came to.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// The program wrote a result: outputs, an error (the input rejected) or
    /// `unsupported`.
    Finished(Outcome),
    /// Still running at the timeout; it and its process group were killed.
    TimedOut(String),
    /// It could not start, exited nonzero or by a signal, or wrote no valid
    /// output file; the text says which, with the tail of its stderr.
    Crashed(String),
    /// Ctrl-C: the run was stopped (or never started).
    Interrupted,
}

/// The output file: exactly one of these keys (`bnh run-case` writes the
/// first two; `unsupported` lets a program decline an input it lacks).
#[derive(Deserialize)]
enum Reply {
    #[serde(rename = "outputs")]
    Outputs(Outputs),
    #[serde(rename = "error")]
    Error(String),
    #[serde(rename = "unsupported")]
    Unsupported(String),
}

/// The last [`TAIL_BYTES`] bytes a pipe produced.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > 2 * TAIL_BYTES {
            let cut = self.0.len() - TAIL_BYTES;
            self.0.drain(..cut);
        }
    }

    /// The kept end as text, on one line, control characters dropped.
    fn text(&self) -> String {
        let start = self.0.len().saturating_sub(TAIL_BYTES);
        let s = String::from_utf8_lossy(&self.0[start..]);
        let one_line: String = s
            .trim()
            .chars()
            .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        if start > 0 {
            format!("...{one_line}")
        } else {
            one_line
        }
    }
}

/// Read `pipe` to its end on a thread, keeping its tail in `tail`.
fn drain(mut pipe: impl Read + Send + 'static, tail: Arc<Mutex<Tail>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => tail
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buf[..k]),
            }
        }
    })
}

/// SIGKILL to the process group `child` leads (it was spawned with
/// `process_group(0)`, so its group id is its pid). Errors mean the group
/// is already gone.
fn kill_group(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Run `argv` once: at most `timeout`, result expected in `out` (which must
/// not exist yet).
pub fn run_once(argv: &[OsString], out: &Path, timeout: Duration) -> RunResult {
    if crate::interrupt::requested() {
        return RunResult::Interrupted;
    }
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return RunResult::Crashed(format!("could not start it: {e}")),
    };
    let stderr = Arc::new(Mutex::new(Tail::default()));
    let mut drains = Vec::new();
    if let Some(p) = child.stdout.take() {
        drains.push(drain(p, Arc::new(Mutex::new(Tail::default()))));
    }
    if let Some(p) = child.stderr.take() {
        drains.push(drain(p, Arc::clone(&stderr)));
    }
    let ended = wait_until(&mut child, Instant::now() + timeout);
    if !matches!(ended, Ok(Some(_))) {
        kill_group(&child);
        let _ = child.kill();
        let _ = child.wait();
    }
    settle(&child, &drains);
    let tail = stderr.lock().unwrap_or_else(|e| e.into_inner()).text();
    let with_tail = |what: String| {
        if tail.is_empty() {
            format!("{what}; stderr was empty")
        } else {
            format!("{what}; stderr: {tail}")
        }
    };
    match ended {
        Err(e) => RunResult::Crashed(with_tail(format!("waiting for it failed: {e}"))),
        Ok(None) if crate::interrupt::requested() => RunResult::Interrupted,
        Ok(None) => RunResult::TimedOut(with_tail(format!(
            "no result after {} s (--timeout); killed it and its process group",
            timeout.as_secs_f64()
        ))),
        Ok(Some(status)) if !status.success() => RunResult::Crashed(with_tail(exited(status))),
        Ok(Some(_)) => match read_reply(out) {
            Ok(outcome) => RunResult::Finished(outcome),
            Err(why) => RunResult::Crashed(with_tail(format!("exited 0 but {why}"))),
        },
    }
}

/// Poll until the child exits (`Some`), the deadline passes or Ctrl-C is
/// pressed (`None`). Polling starts at 1 ms and backs off to 20 ms, so
/// quick programs are not slowed down and long ones cost nothing.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline || crate::interrupt::requested() {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Give the drain threads [`DRAIN_GRACE`] to see the pipes close; if a
/// process left behind in the group still holds them, kill the group, and
/// past a second grace stop waiting (the threads end when the pipes close).
fn settle(child: &Child, drains: &[JoinHandle<()>]) {
    let done = |grace: Duration| {
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if drains.iter().all(JoinHandle::is_finished) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    };
    if !done(DRAIN_GRACE) {
        kill_group(child);
        done(DRAIN_GRACE);
    }
}

/// How the program ended, in words.
fn exited(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("ended abnormally ({status})"),
    }
}

/// The program's output file as an [`Outcome`], or why it is unusable.
fn read_reply(out: &Path) -> std::result::Result<Outcome, String> {
    if std::fs::symlink_metadata(out).is_err() {
        return Err("wrote no output file at the {out} path".into());
    }
    let text = read_limited(out, MAX_CASE_BYTES, "output file").map_err(|e| e.to_string())?;
    let reply: Reply = serde_json::from_str(&text).map_err(|e| {
        format!("its output file is not {{\"outputs\": {{...}}}} or {{\"error\": \"...\"}} ({e})")
    })?;
    Ok(match reply {
        Reply::Outputs(o) => Outcome::Outputs(o),
        Reply::Error(msg) => Outcome::Rejected(msg),
        Reply::Unsupported(msg) => Outcome::Unsupported(msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_one_line() {
        let mut t = Tail::default();
        for _ in 0..1000 {
            t.push(b"0123456789\n");
        }
        t.push(b"the end\x1b[0m\n");
        let s = t.text();
        assert!(s.starts_with("...") && s.ends_with("the end[0m"), "{s}");
        assert!(s.len() <= TAIL_BYTES + 3);
        assert!(!s.contains('\n'));
    }
}
