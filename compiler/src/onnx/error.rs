//! What goes wrong reading or writing ONNX: located at the file, the node (its name and op) and
//! the attribute, with what would be needed.

use std::fmt;

/// An ONNX model, graph or weights file that cannot be exported or imported (boxed: errors are
/// rare, results are many).
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxError(Box<Detail>);

/// What [`OnnxError`] says.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The file at fault (the model, the graph, the weights).
    pub file: String,
    /// The node, as `name` (`OpType`), when one is at fault.
    pub node: Option<String>,
    /// The attribute or input of that node.
    pub attribute: Option<String>,
    pub message: String,
    /// What would be needed, or how to fix it.
    pub help: String,
    /// A bug in alexc rather than the input's fault (exit status 1, not 2).
    pub internal: bool,
}

impl std::ops::Deref for OnnxError {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        &self.0
    }
}

impl OnnxError {
    pub fn new(file: &str, message: impl Into<String>, help: impl Into<String>) -> Self {
        OnnxError(Box::new(Detail {
            file: file.to_string(),
            node: None,
            attribute: None,
            message: message.into(),
            help: help.into(),
            internal: false,
        }))
    }

    /// At node `name` whose op is `op`.
    pub fn node(mut self, name: &str, op: &str) -> Self {
        self.0.node = Some(format!("`{name}` ({op})"));
        self
    }

    pub fn attribute(mut self, attribute: &str) -> Self {
        self.0.attribute = Some(attribute.to_string());
        self
    }

    pub fn internal(mut self) -> Self {
        self.0.internal = true;
        self
    }
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if self.internal {
            f.write_str("internal error: ")?;
        }
        if let Some(node) = &self.node {
            write!(f, "node {node}: ")?;
        }
        if let Some(a) = &self.attribute {
            write!(f, "`{a}`: ")?;
        }
        write!(f, "{}\n  help: {}", self.message, self.help)
    }
}

impl std::error::Error for OnnxError {}
