//! A node's attributes, read with the node's location in every error.

use crate::onnx::error::OnnxError;
use crate::onnx::proto::{AttributeProto, NodeProto};

/// The attributes of one node of the model in `file`.
pub struct Attrs<'a> {
    pub node: &'a NodeProto,
    pub file: &'a str,
    pub name: String,
    pub op: String,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto, file: &'a str, index: usize) -> Self {
        let op = node.op_type.clone().unwrap_or_default();
        let name = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("#{index}"),
        };
        Attrs { node, file, name, op }
    }

    /// An error at this node (and `attribute`, when given).
    pub fn error(
        &self,
        attribute: Option<&str>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> OnnxError {
        let e = OnnxError::new(self.file, message, help).node(&self.name, &self.op);
        match attribute {
            Some(a) => e.attribute(a),
            None => e,
        }
    }

    fn find(&self, key: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name.as_deref() == Some(key))
    }

    pub fn has(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    pub fn int(&self, key: &str, default: i64) -> i64 {
        self.find(key).and_then(|a| a.i).unwrap_or(default)
    }

    pub fn float(&self, key: &str, default: f32) -> f32 {
        self.find(key).and_then(|a| a.f).unwrap_or(default)
    }

    pub fn ints(&self, key: &str) -> Option<Vec<i64>> {
        self.find(key).map(|a| a.ints.clone())
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.find(key).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// A square 2-D window attribute (`kernel_shape`, `strides`): one value for both sides.
    pub fn square(&self, key: &str, default: Option<usize>, what: &str) -> Result<usize, OnnxError> {
        match self.ints(key) {
            None => default.ok_or_else(|| self.error(Some(key), "is missing", format!("give the {what}"))),
            Some(v) if v.len() == 2 && v[0] == v[1] && v[0] > 0 => Ok(v[0] as usize),
            Some(v) => Err(self.error(
                Some(key),
                format!("{v:?} is not one positive size for both sides"),
                format!(
                    "a graph file's {what} is square; re-export the model with equal height and width {what}"
                ),
            )),
        }
    }

    /// `pads`, which must be the same on every side (a graph file pads all four alike), and no
    /// `auto_pad` but NOTSET or VALID.
    pub fn symmetric_pads(&self) -> Result<usize, OnnxError> {
        match self.string("auto_pad").as_deref() {
            None | Some("NOTSET") | Some("VALID") => {}
            Some(other) => {
                return Err(self.error(
                    Some("auto_pad"),
                    format!("`{other}` pads by the output size, not by a fixed amount"),
                    "re-export with explicit pads (auto_pad NOTSET): torch.onnx.export writes them",
                ))
            }
        }
        match self.ints("pads") {
            None => Ok(0),
            Some(p) if p.len() == 4 && p.iter().all(|&x| x == p[0] && x >= 0) => Ok(p[0] as usize),
            Some(p) => Err(self.error(
                Some("pads"),
                format!("{p:?} is asymmetric"),
                "a graph file pads every side by one amount; re-export with symmetric padding, or pad the input to make it so",
            )),
        }
    }

    /// `dilations`, which must all be 1.
    pub fn no_dilation(&self) -> Result<(), OnnxError> {
        match self.ints("dilations") {
            Some(d) if d.iter().any(|&x| x != 1) => Err(self.error(
                Some("dilations"),
                format!("{d:?}: dilated windows are not in the graph language"),
                "use dilation 1",
            )),
            _ => Ok(()),
        }
    }
}

/// A float attribute as the shortest decimal that reads back to the same f32 (`0.0001`, not
/// `0.00009999999747378752`): ONNX stores attributes in single precision.
pub fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}
