//! The `COMMAND` of `--external NAME=COMMAND`: split into words like a
//! POSIX shell would (quotes and backslashes, no expansion, no shell run),
//! its program looked up before any work, and `{case}`/`{out}` filled in
//! per run.

use crate::error::{Error, Result};
use crate::output::escape;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Placeholder for the case file's path.
pub const CASE: &str = "{case}";
/// Placeholder for the path the program must write its result to.
pub const OUT: &str = "{out}";

/// A parsed command: its words, with placeholders still in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    words: Vec<String>,
}

impl CommandTemplate {
    /// Split `command` into words; `{case}` then `{out}` are appended as
    /// words of their own when the command does not mention them, so
    /// `python3 k.py` runs as `python3 k.py CASE OUT`. `name` is only used
    /// in messages.
    pub fn parse(name: &str, command: &str) -> Result<CommandTemplate> {
        let mut words = shell_words::split(command).map_err(|e| {
            Error::Usage(format!(
                "--external {name}: cannot split the command `{}` into words ({e}); close every quote, or quote the word with the stray quote",
                escape(command)
            ))
        })?;
        if words.is_empty() {
            return Err(Error::Usage(format!(
                "--external {name}: the command is empty; give NAME=COMMAND, e.g. --external 'torch=python3 scripts/torch_kernel.py {{case}} {{out}}'"
            )));
        }
        if !words.iter().any(|w| w.contains(CASE)) {
            words.push(CASE.to_string());
        }
        if !words.iter().any(|w| w.contains(OUT)) {
            words.push(OUT.to_string());
        }
        Ok(CommandTemplate { words })
    }

    /// The words as given (placeholders unfilled), for messages and `bnh list`.
    pub fn shown(&self) -> String {
        shell_words::join(&self.words)
    }

    /// The program: the first word.
    pub fn program(&self) -> &str {
        &self.words[0]
    }

    /// The argument vector of one run: every `{case}` and `{out}` inside
    /// every word replaced by the paths (as OS strings, so any path works;
    /// no word is split again).
    pub fn argv(&self, case: &Path, out: &Path) -> Vec<OsString> {
        self.words
            .iter()
            .map(|w| fill(w, case.as_os_str(), out.as_os_str()))
            .collect()
    }

    /// Refuse (exit 2, before any work) a program that cannot be run: a path
    /// that is not an executable file, or a bare name found on no `PATH` folder.
    pub fn check_program(&self, name: &str) -> Result<()> {
        let program = self.program();
        if program.contains(CASE) || program.contains(OUT) {
            return Err(Error::Usage(format!(
                "--external {name}: the program `{}` is a placeholder; put the program first and {CASE}/{OUT} among its arguments",
                escape(program)
            )));
        }
        if program.contains('/') {
            return match executable(Path::new(program)) {
                Ok(()) => Ok(()),
                Err(why) => Err(Error::Usage(format!(
                    "--external {name}: the program `{}` {why}; fix the path or build the program first",
                    escape(program)
                ))),
            };
        }
        if find_on_path(program).is_some() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "--external {name}: the program `{}` is not found on PATH; install it, or give its full path (e.g. /usr/bin/{})",
            escape(program),
            escape(program)
        )))
    }
}

/// `word` with each placeholder replaced by its path.
fn fill(word: &str, case: &OsStr, out: &OsStr) -> OsString {
    let mut filled = OsString::new();
    let mut rest = word;
    loop {
        let next = [(CASE, case), (OUT, out)]
            .into_iter()
            .filter_map(|(p, v)| rest.find(p).map(|at| (at, p, v)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, placeholder, value)) => {
                filled.push(&rest[..at]);
                filled.push(value);
                rest = &rest[at + placeholder.len()..];
            }
            None => {
                filled.push(rest);
                return filled;
            }
        }
    }
}

/// `Ok` when `path` is a regular file with an execute bit, else why not.
fn executable(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) => Err(format!("cannot be found ({e})")),
        Ok(m) if !m.is_file() => Err("is not a regular file".into()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Err("is not executable (chmod +x it, or run it through its interpreter)".into())
        }
        Ok(_) => Ok(()),
    }
}

/// The first executable `PATH` entry named `program`, as `execvp` would pick.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_inside_words_and_appended_when_absent() {
        let t = CommandTemplate::parse("x", "run --case={case} 'a b'").unwrap();
        let argv = t.argv(Path::new("c d.json"), Path::new("/t/o.json"));
        assert_eq!(argv, ["run", "--case=c d.json", "a b", "/t/o.json"]);
        let t = CommandTemplate::parse("x", "k {out}{case}").unwrap();
        let argv = t.argv(Path::new("C"), Path::new("O"));
        assert_eq!(argv, ["k", "OC"]);
        let t = CommandTemplate::parse("x", "k").unwrap();
        assert_eq!(t.argv(Path::new("C"), Path::new("O")), ["k", "C", "O"]);
    }

    #[test]
    fn bad_commands_are_refused() {
        assert!(CommandTemplate::parse("x", "k 'open").is_err());
        assert!(CommandTemplate::parse("x", "   ").is_err());
        let t = CommandTemplate::parse("x", "no-such-program-bnh-test").unwrap();
        let e = t.check_program("x").unwrap_err().to_string();
        assert!(e.contains("not found on PATH"), "{e}");
        let t = CommandTemplate::parse("x", "/no/such/bnh").unwrap();
        assert!(t.check_program("x").is_err());
        let t = CommandTemplate::parse("x", "sh -c true").unwrap();
        t.check_program("x").unwrap();
    }
}
