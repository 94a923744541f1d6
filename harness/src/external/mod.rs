//! `--external NAME=COMMAND`: batch-norm implementations in any language,
//! run out of process, one run per case file.
//!
//! For each case bnh runs `COMMAND` with `{case}` and `{out}` replaced by the
//! case file's path and a fresh output path in a temp folder, and reads the
//! output file in `bnh run-case`'s format (`{"outputs": {...}}` or
//! `{"error": "..."}`). A run past `--timeout` is killed with its process
//! group (verdict `timeout`); a nonzero exit or a missing or invalid output
//! file is `crashed`. Out of process, a broken external can neither crash
//! nor hang bnh. The contract is `docs/EXTERNAL.md`.
//!
//! - [`command`]: parsing, placeholder filling and the program's look-up;
//! - [`run`](mod@run): one run with timeout, bounded pipes and the output file.

pub mod command;
pub mod run;

use crate::error::{Error, Result};
use crate::output::escape;
use bn_impls::Info;
use command::CommandTemplate;
use run::RunResult;
use std::path::Path;
use std::time::Duration;

/// Seconds one run may take unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT_SECS: f64 = 120.0;

/// Longest accepted external name, in bytes (as for plugins).
pub const MAX_NAME_LEN: usize = crate::plugin::MAX_NAME_LEN;

/// One `--external`: its name (a column of `bnh check`), command and timeout.
#[derive(Debug, Clone)]
pub struct External {
    /// Name, description (`external: COMMAND`); externals count as stable,
    /// so a failure fails the check.
    pub info: Info,
    pub command: CommandTemplate,
    pub timeout: Duration,
}

impl External {
    /// Run the program on the case at `case`, expecting its result at `out`.
    pub fn run(&self, case: &Path, out: &Path) -> RunResult {
        run::run_once(&self.command.argv(case, out), out, self.timeout)
    }
}

/// `--timeout SECONDS` as a duration: positive and finite, else exit 2.
pub fn timeout(secs: f64) -> Result<Duration> {
    let fix = "give a positive number of seconds, e.g. --timeout 120";
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::Usage(format!("--timeout {secs}: {fix}")));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::Usage(format!("--timeout {secs}: too large; {fix}")))
}

/// Parse every `--external NAME=COMMAND` (after the plugins are loaded, so
/// names can be checked against theirs): names valid and distinct, commands
/// split, programs found. Any problem is exit 2 before work starts.
pub fn parse_all(specs: &[String], timeout: Duration) -> Result<Vec<External>> {
    let taken: Vec<String> = crate::plugin::all()
        .iter()
        .map(|i| i.info().name.to_string())
        .collect();
    let mut out: Vec<External> = Vec::new();
    for spec in specs {
        let ext = parse(spec, timeout)?;
        let name = ext.info.name;
        if taken.iter().any(|t| t == name) {
            return Err(Error::Usage(format!(
                "--external {name}: '{name}' is already the name of a built-in implementation or --plugin (see `bnh list`); give the external another name"
            )));
        }
        if out.iter().any(|e| e.info.name == name) {
            return Err(Error::Usage(format!(
                "--external {name}: the name is given twice; give each --external its own name"
            )));
        }
        out.push(ext);
    }
    Ok(out)
}

/// One `NAME=COMMAND`.
fn parse(spec: &str, timeout: Duration) -> Result<External> {
    let Some((name, command)) = spec.split_once('=') else {
        return Err(Error::Usage(format!(
            "--external `{}`: no '='; give NAME=COMMAND, e.g. --external 'torch=python3 scripts/torch_kernel.py {{case}} {{out}}'",
            escape(spec)
        )));
    };
    check_name(name)?;
    let command = CommandTemplate::parse(name, command)?;
    command.check_program(name)?;
    let description = format!("external: {}", command.shown());
    Ok(External {
        info: Info {
            // A handful per process, for its whole life: leaking is the
            // simple way to give them the `'static` names `Info` holds.
            name: Box::leak(name.to_string().into_boxed_str()),
            description: Box::leak(description.into_boxed_str()),
            stable: true,
            deterministic: false,
        },
        command,
        timeout,
    })
}

/// 1 to [`MAX_NAME_LEN`] bytes of `[a-z0-9_-]`, as plugin names.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--external: the name '{}' is not valid; use 1 to {MAX_NAME_LEN} characters of [a-z0-9_-] before the '='",
            escape(name)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_timeouts_are_validated() {
        let t = Duration::from_secs(1);
        assert!(parse_all(&["ok_1-x=sh -c true".into()], t).is_ok());
        for bad in ["Torch=sh", "=sh", "a b=sh", "nospec", "welford=sh"] {
            assert!(parse_all(&[bad.into()], t).is_err(), "{bad}");
        }
        let twice = ["a=sh".to_string(), "a=sh".to_string()];
        assert!(parse_all(&twice, t).is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(timeout(0.5).unwrap(), Duration::from_millis(500));
    }
}
