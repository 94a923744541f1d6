//! Names read from files (case names, implementation names in CSVs, paths
//! found by walking folders) printed so they cannot move the cursor, change
//! colours or start a new line: a case named `"x\ncheck: PASS"` must not
//! forge a verdict line.

use std::borrow::Cow;
use std::path::Path;

/// Whether `c` must not reach a terminal or Markdown file raw: control
/// characters (C0, DEL, C1) and the invisible direction/format marks that
/// reorder text (U+200B–U+200F, U+202A–U+202E, U+2066–U+2069).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as a Rust escape (`\n`, `\u{1b}`);
/// borrowed unchanged when there is none, which is the usual case.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path, escaped like [`escape`] (paths come from the file system, which
/// allows newlines and escape codes in names).
pub fn escape_path(p: &Path) -> String {
    escape(&p.to_string_lossy()).into_owned()
}

/// A name for a Markdown table cell: escaped like [`escape`], and `|` written
/// as `\|` so a name cannot add columns.
pub fn escape_md(s: &str) -> String {
    escape(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_names_borrowed() {
        assert!(matches!(escape("bn2d-small"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(escape("x\u{202e}y\u{9b}"), "x\\u{202e}y\\u{9b}");
        assert_eq!(escape("naïve µs"), "naïve µs");
        assert_eq!(escape_md("a|b\r"), "a\\|b\\r");
    }
}
