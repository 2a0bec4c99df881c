//! Output to people: every line escaped, a closed pipe ends the command quietly, and
//! reproduction commands name the program as it was invoked.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::{self, Write};

/// The status a shell reports for a process whose output pipe was closed (128 + SIGPIPE).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// `s` with every control character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`),
/// and with Unicode's invisible direction controls escaped too: scenario data printed to
/// a terminal can neither move the cursor, clear the screen nor reorder a line.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Lines of text with every control character but the line breaks escaped.
pub fn escape_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| escape(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text shown in full with every control character escaped (ids, names, explanations).
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(self.0))
    }
}

/// A path, shown escaped.
pub fn path(p: &std::path::Path) -> String {
    escape(&p.display().to_string()).into_owned()
}

/// Write to stdout; a closed pipe ends the process quietly.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
    }
}

/// One line on stdout, control characters but line breaks escaped.
pub fn line(args: fmt::Arguments<'_>) {
    let mut text = escape_lines(&args.to_string());
    text.push('\n');
    write_stdout(text.as_bytes());
}

/// One line on stderr; errors writing it are ignored.
pub fn note_line(args: fmt::Arguments<'_>) {
    let mut text = escape_lines(&args.to_string());
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Print a line on stdout (escaped; a closed pipe ends the command quietly).
macro_rules! say {
    ($($t:tt)*) => { $crate::cli::out::line(format_args!($($t)*)) };
}

/// Print a line on stderr (escaped).
macro_rules! note {
    ($($t:tt)*) => { $crate::cli::out::note_line(format_args!($($t)*)) };
}

pub(crate) use {note, say};

/// The words that start a reproduction command: `cargo run [--release] --` when this
/// process was started by `cargo run` (cargo sets `CARGO`, and the binary sits in
/// `target/<profile>/`), else the program exactly as it was invoked (argv\[0\]).
pub fn program_words() -> Vec<String> {
    let argv0 = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "oversell".into());
    let dir = std::path::Path::new(&argv0).parent();
    let profile = dir.and_then(|d| d.file_name()).and_then(|n| n.to_str());
    let in_target = dir
        .and_then(|d| d.parent())
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "target");
    if std::env::var_os("CARGO").is_some() && in_target {
        let release = profile == Some("release");
        let mut words = vec!["cargo".to_string(), "run".to_string()];
        if release {
            words.push("--release".into());
        }
        words.push("--".into());
        return words;
    }
    vec![argv0]
}

/// A `tracing` writer for the printed trace: each event is escaped (a record's ids can
/// hold control characters) and written whole; a closed pipe ends the command quietly.
#[derive(Default)]
pub struct TraceLine(Vec<u8>);

impl Write for TraceLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TraceLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let mut out = escape(body).into_owned();
        out.push('\n');
        write_stdout(out.as_bytes());
    }
}

/// Makes a [`TraceLine`] per event.
pub fn trace_writer() -> TraceLine {
    TraceLine::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("p\u{1b}[2J\rX\n"), "p\\u{1b}[2J\\rX\\n");
        assert_eq!(escape("plain ✓"), "plain ✓");
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(escape_lines("a\u{7}\nb"), "a\\u{7}\nb");
    }
}
