//! Diagnostics: what the compiler says about a graph file, located at file:line:column.
//!
//! Every problem found in a graph file becomes a [`Diagnostic`]; passes collect them into
//! [`Diagnostics`] so that all semantic errors of a file are reported together.

use std::fmt;

/// Where in a graph file something is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// A compiler bug: a pass left the IR broken (the verifier's finding), not the input's fault.
    Internal,
}

/// One located message: what is wrong, at which node, and how to fix it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub loc: Option<Loc>,
    /// The node (layer) the message is about, where there is one.
    pub node: Option<String>,
    pub message: String,
    /// The fix, in one sentence.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: String::new(),
            loc: None,
            node: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(message) }
    }

    /// A compiler bug, reported as a diagnostic rather than a panic.
    pub fn internal(message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Internal, ..Diagnostic::error(message) }
    }

    pub fn at(mut self, loc: Option<Loc>) -> Self {
        self.loc = loc;
        self
    }

    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn in_file(mut self, file: &str) -> Self {
        if self.file.is_empty() {
            self.file = file.to_string();
        }
        self
    }

    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error | Severity::Internal)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Internal => "internal error",
        };
        write!(f, "{}", self.file)?;
        if let Some(loc) = self.loc {
            write!(f, ":{}:{}", loc.line, loc.col)?;
        }
        write!(f, ": {kind}")?;
        if let Some(node) = &self.node {
            write!(f, " in node `{node}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics, errors and warnings mixed, in the order found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// Whether any is a compiler bug rather than a fault of the input.
    pub fn has_internal(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Internal)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Fills in the file name of every diagnostic that has none.
    pub fn in_file(self, file: &str) -> Self {
        Diagnostics(self.0.into_iter().map(|d| d.in_file(file)).collect())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let errors = self.errors().count();
        if errors > 1 {
            write!(f, "\n{errors} errors")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
