//! [`ConfigError`]: one line naming the file, the line and the key, and turning toml's errors
//! (which carry byte spans) into that form.

use core::fmt;
use core::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// A problem with a configuration file, printed as one line:
///
/// - `FILE:LINE: KEY: REASON` for a bad or missing value (`KEY` is dotted: `interface.mtu`);
/// - `FILE:LINE: syntax: MESSAGE` when the file is not valid TOML;
/// - `FILE: cannot read: ERROR` when the file itself cannot be read.
///
/// `FILE` is the path as the user gave it and `LINE` is 1-based. A missing key is reported at
/// its section's header, or at line 1 when the whole section is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Line(self))]
pub struct ConfigError {
    file: PathBuf,
    line: Option<usize>,
    key: Option<String>,
    reason: String,
}

impl ConfigError {
    /// The configuration file, as given.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The 1-based line, when the problem has one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The dotted key (`fc.role`), `syntax` for a TOML syntax error, `None` for an I/O error.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, without the file, line and key.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The file cannot be read at all.
    pub(super) fn unreadable(file: &Path, err: &std::io::Error) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            key: None,
            reason: format!("cannot read: {err}"),
        }
    }
}

/// Renders the one-line form; a separate type so that `thiserror` can derive `Display` from it.
struct Line<'a>(&'a ConfigError);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &e.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", e.reason)
    }
}

/// The text being parsed and its file name: makes errors that point into it.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub file: &'a Path,
}

impl Source<'_> {
    /// The 1-based line holding byte `offset` (clamped to the text).
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// An error at the line holding the start of `span` (line 1 without a span).
    pub fn error(&self, span: Option<Range<usize>>, key: &str, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(span.map_or(1, |s| self.line_of(s.start))),
            key: Some(key.to_owned()),
            reason,
        }
    }

    /// Turns an error from `toml::from_str` into a [`ConfigError`] naming the key it is about.
    ///
    /// toml reports a byte span (of the offending key for an unknown one, of the value for a
    /// wrong type) but no public key path, so the document is parsed again into its spanned
    /// tree and the path is found from the span. If that parse fails, the error was a syntax
    /// error.
    pub fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let doc = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(syntax) => return self.syntax(&syntax),
        };
        let span = err.span();
        let path = span
            .as_ref()
            .and_then(|span| locate(doc.get_ref(), span))
            .unwrap_or_default();
        if path.is_empty() {
            // Not expected: every deserialization error points into some entry.
            return self.error(span, "config", first_line(err.message()).to_owned());
        }
        let key = path.join(".");
        let top_level = match path.as_slice() {
            [name] => doc.get_ref().get(name.as_str()).map(|v| v.get_ref()),
            _ => None,
        };
        let reason = match top_level {
            Some(DeValue::Table(_)) if is_unknown(err.message()) => "unknown section".to_owned(),
            Some(value) if !is_unknown(err.message()) && !matches!(value, DeValue::Table(_)) => {
                format!("expected a table, got {}", kind(value))
            }
            _ => key_reason(err.message()),
        };
        self.error(span, &key, reason)
    }

    /// A TOML syntax error: `FILE:LINE: syntax: MESSAGE` (first line of toml's message).
    pub fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        self.error(err.span(), "syntax", first_line(err.message()).to_owned())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Finds the dotted path of the entry a span points into: the key itself (an unknown key) or
/// its value (a wrong type), descending into tables and arrays of tables. Header tables
/// (`[interface]`) have the header's span, not their body's, so every table is searched.
fn locate(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<String>> {
    let inside = |s: Range<usize>| s == *span || (s.start <= span.start && span.start < s.end);
    for (key, value) in table.iter() {
        let here = || vec![key.get_ref().to_string()];
        if inside(key.span()) {
            return Some(here());
        }
        let nested: Vec<&DeTable<'_>> = match value.get_ref() {
            DeValue::Table(t) => vec![t],
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for t in nested {
            if let Some(rest) = locate(t, span) {
                let mut path = here();
                path.extend(rest);
                return Some(path);
            }
        }
        if inside(value.span()) {
            return Some(here());
        }
    }
    None
}

/// What kind of TOML value this is, for "expected a table, got ...".
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// serde's message for a key that no field is named after.
fn is_unknown(message: &str) -> bool {
    message.starts_with("unknown field")
}

/// Rewrites serde's wording into this file's: `unknown key`, `expected an integer, got string
/// "x"`, `integer out of range`.
fn key_reason(message: &str) -> String {
    let message = first_line(message);
    if is_unknown(message) {
        return "unknown key".to_owned();
    }
    let Some((got, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    // toml hands integers that do not fit an i64 over as i128 or u64.
    if got.starts_with("integer") && got.contains(" as ") {
        return "integer out of range".to_owned();
    }
    let expected = match expected {
        "i64" => "an integer",
        "a sequence" => "an array",
        e if e.starts_with("struct ") => "a table",
        e => e,
    };
    // serde quotes numbers in backticks and strings in double quotes: keep the string as is.
    let got = match got {
        "map" => "a table".to_owned(),
        "sequence" => "an array".to_owned(),
        g if g.starts_with("string ") => g.to_owned(),
        g => g.replace('`', "").replace("floating point", "float"),
    };
    format!("expected {expected}, got {got}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_line() {
        let source = Source {
            text: "a\nb\nc\n",
            file: Path::new("x/peer.conf"),
        };
        let e = source.error(Some(4..5), "fc.role", "bad".to_owned());
        assert_eq!(e.to_string(), "x/peer.conf:3: fc.role: bad");
        assert_eq!(e.line(), Some(3));
        assert_eq!(e.key(), Some("fc.role"));
        assert_eq!(e.reason(), "bad");
        assert_eq!(e.file(), Path::new("x/peer.conf"));
        let e = source.error(None, "peer.public_key", "missing".to_owned());
        assert_eq!(e.to_string(), "x/peer.conf:1: peer.public_key: missing");
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = ConfigError::unreadable(Path::new("p.conf"), &io);
        assert_eq!(e.to_string(), format!("p.conf: cannot read: {io}"));
        assert_eq!((e.line(), e.key()), (None, None));
    }

    #[test]
    fn lines_from_offsets() {
        let source = Source {
            text: "ab\n\ncd",
            file: Path::new("f"),
        };
        let lines: Vec<usize> = (0..=8).map(|o| source.line_of(o)).collect();
        assert_eq!(lines, [1, 1, 1, 2, 3, 3, 3, 3, 3]);
    }

    #[test]
    fn rewrites_serde_messages() {
        let cases = [
            ("unknown field `x`, expected `a`", "unknown key"),
            (
                "invalid type: string \"x\", expected i64",
                "expected an integer, got string \"x\"",
            ),
            (
                "invalid type: integer `5`, expected a string",
                "expected a string, got integer 5",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "expected an integer, got float 1.5",
            ),
            (
                "invalid type: string \"a\", expected a sequence",
                "expected an array, got string \"a\"",
            ),
            (
                "invalid type: map, expected a string",
                "expected a string, got a table",
            ),
            (
                "invalid type: integer `99999999999999999999` as i128, expected i64",
                "integer out of range",
            ),
            (
                "invalid type: string \"map `x`\", expected i64",
                "expected an integer, got string \"map `x`\"",
            ),
            ("something else\nmore", "something else"),
        ];
        for (message, want) in cases {
            assert_eq!(key_reason(message), want, "{message}");
        }
    }
}
