//! Diagnostics: precise, actionable errors about user files (flows, `idflow.yaml`, later tests).

use serde::Serialize;

/// One problem in a file: where it is, which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as the user named it (relative to the flows directory when loaded from one).
    pub file: String,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: u32,
    pub column: u32,
    /// Field path such as `steps[2].with.user` (empty for the whole file).
    pub path: String,
    /// What is wrong and what was expected, lowercase, no trailing period.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}
