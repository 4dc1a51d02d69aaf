//! Configuration errors: every one names the file, the position (when known) and the field
//! path, so that an operator can fix the file without guessing (DESIGN.md section 1).

use std::fmt;

/// A position in the configuration file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// A configuration that could not be loaded. Displays as
/// `<file>:<line>:<column>: <field path>: <reason>`; the `config error: ` prefix is added by
/// the command line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub position: Option<Position>,
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(
        field: impl Into<String>,
        position: Option<Position>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            file: String::new(),
            position,
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_owned();
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}
