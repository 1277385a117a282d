//! Configuration errors: the file, the line (when it can be located) and what is wrong, and
//! the helper the section validators build them with.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line number, when the error can be located.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The configuration text being validated, to locate errors in: by the byte span the `toml`
/// parser gives (of a value, a table or a `Spanned` field) or by offset.
pub(super) struct ConfigText<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl ConfigText<'_> {
    /// An error saying `message`, at the line where `span` starts (none: the file as a whole).
    pub(super) fn err(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            line: span.map(|s| self.line(s.start)),
            message,
        }
    }

    /// The span of the line that sets `key` in table `[section]`, if the text sets it there.
    pub(super) fn key_span(&self, section: &str, key: &str) -> Option<Range<usize>> {
        let header = format!("[{section}]");
        let mut in_section = false;
        let mut pos = 0;
        for line in self.text.split_inclusive('\n') {
            let start = pos;
            pos += line.len();
            let t = line.trim();
            if t.starts_with('[') {
                in_section = t == header;
                continue;
            }
            if in_section {
                if let Some(rest) = t.strip_prefix(key) {
                    if rest.trim_start().starts_with('=') {
                        return Some(start..pos);
                    }
                }
            }
        }
        None
    }

    /// The 1-based line of byte offset `pos`.
    pub(super) fn line(&self, pos: usize) -> usize {
        line_of(self.text, pos)
    }
}
