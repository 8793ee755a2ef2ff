//! Printing results: plain tables and short messages for people, or one
//! JSON (or YAML) document for programs. Everything goes to stdout; a closed pipe
//! (`theia claim list | head -1`) ends output quietly instead of panicking.

use std::io::Write;

use comfy_table::{Table, presets};
use serde_json::Value;

use crate::args::OutputFormat;
use crate::error::CliError;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Tables or JSON.
    pub format: OutputFormat,
}

impl Output {
    /// Prints `json()` or `table()` depending on the format; only the chosen
    /// one is built.
    pub fn show(
        &self,
        json: impl FnOnce() -> Value,
        table: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Json => print_json(&json()),
            OutputFormat::Yaml => print_yaml(&json()),
            OutputFormat::Table => print_text(&table()),
        }
    }
}

/// A progress line on stderr, only when stderr is a terminal: rewritten
/// in place, erased when done, so that nothing of it stays in a log or
/// mixes with what goes to stdout.
pub struct Progress {
    shown: bool,
    enabled: bool,
}

impl Progress {
    /// A progress line that shows only on a terminal.
    pub fn on_terminal() -> Self {
        Self {
            shown: false,
            enabled: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, text: &str) {
        if self.enabled {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K{}", printable(text));
            let _ = err.flush();
            self.shown = true;
        }
    }

    /// Erases the line, if one was shown.
    pub fn done(&mut self) {
        if std::mem::take(&mut self.shown) {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Prints one pretty JSON document.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::other(format!("cannot render JSON: {e}")))?;
    print_text(&text)
}

/// Prints the same document as YAML.
pub fn print_yaml(value: &Value) -> Result<(), CliError> {
    let text = serde_yaml_ng::to_string(value)
        .map_err(|e| CliError::other(format!("cannot render YAML: {e}")))?;
    print_text(&text)
}

/// Prints text, ending it with a newline.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `text` safe for a terminal: control characters (escape sequences, line
/// breaks inside a value) are shown escaped, as `\u{1b}`, never acted on.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Columns separated by two spaces, a header line in capitals, no borders:
/// easy to read and to split on whitespace. Cells are [`printable`].
pub fn table<R, C>(headers: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = Vec<C>>,
    C: Into<String>,
{
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(headers.iter().map(|h| h.to_owned()).collect::<Vec<_>>());
    for row in rows {
        t.add_row(
            row.into_iter()
                .map(|c| printable(&c.into()))
                .collect::<Vec<String>>(),
        );
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    trim_lines(&t.to_string())
}

/// `key:  value` lines with aligned values, each [`printable`].
pub fn fields(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    items
        .iter()
        .map(|(k, v)| format!("{:<width$}  {}", format!("{k}:"), printable(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn trim_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_reach_the_terminal_escaped() {
        use super::{fields, printable, table};
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        let shown = fields(&[("driver", "evil\u{1b}]0;pwned\u{7}".to_owned())]);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown:?}"
        );
        let t = table(&["A"], vec![vec!["x\u{1b}[31m".to_owned()]]);
        assert!(!t.contains('\u{1b}'), "{t:?}");
    }

    use super::*;

    #[test]
    fn tables_split_on_whitespace() {
        let t = table(
            &["NAME", "QUOTA"],
            [vec!["acme", "compute.vcpu=8"], vec!["b", "-"]],
        );
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines,
            [
                vec!["NAME", "QUOTA"],
                vec!["acme", "compute.vcpu=8"],
                vec!["b", "-"]
            ]
        );
        assert!(
            t.lines().all(|l| !l.ends_with(' ') && !l.starts_with(' ')),
            "{t:?}"
        );
        assert!(!t.contains('|') && !t.contains('─'), "{t}");
    }

    #[test]
    fn fields_align_values() {
        let f = fields(&[("name", "acme".into()), ("delegates", "-".into())]);
        assert_eq!(f, "name:       acme\ndelegates:  -");
    }
}
