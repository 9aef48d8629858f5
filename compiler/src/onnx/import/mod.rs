//! Import: an ONNX model as a graph file (RON text) and its initializers as weights under the
//! graph's parameter names. Nodes are read in order ([`ops`] is the table), each value tracked
//! with its type by the catalog's shape rules; identities vanish, constants are folded, a bias
//! added after a matrix product joins the layer. An export's metadata brings back what ONNX
//! cannot say ([`crate::onnx::metadata`]); [`ron`] writes the file.

mod attrs;
mod model;
mod ops;
mod ron;

pub use model::{import, Imported};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use attrs::Attrs;

use super::error::OnnxError;
use super::tensor::Constant;
use crate::catalog::Op;
use crate::ir::{DType, TensorType};

/// One layer of the imported graph.
#[derive(Debug, Clone)]
pub struct LayerDecl {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
    pub weight: Option<Constant>,
    pub bias: Option<Vec<f64>>,
}

/// A value: the layer (or the input) that outputs it, and its type.
#[derive(Debug, Clone)]
pub struct Val {
    pub layer: String,
    pub ty: TensorType,
}

enum Known {
    Value(Val),
    Constant(Constant),
}

/// The state of an import.
pub struct Importer {
    pub model: PathBuf,
    known: HashMap<String, Known>,
    layers: Vec<LayerDecl>,
    taken: HashSet<String>,
    uses: HashMap<String, usize>,
}

/// `name` as a graph file allows it: letters, digits, `_` and `-`.
fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    s.trim_matches('_').to_string()
}

impl Importer {
    pub fn value(&self, a: &Attrs<'_>, i: usize) -> Result<Val, OnnxError> {
        let name = a.node.input.get(i).map(String::as_str).unwrap_or("");
        match self.known.get(name) {
            Some(Known::Value(v)) => Ok(v.clone()),
            Some(Known::Constant(_)) => Err(a.error(
                Some(&format!("input {i}")),
                format!("`{name}` is a constant"),
                "the graph language computes this input from the network's input",
            )),
            None => Err(a.error(
                Some(&format!("input {i}")),
                format!("`{name}` is not produced by an earlier node"),
                "the model's nodes must be sorted topologically, as ONNX requires",
            )),
        }
    }

    pub fn constant(&self, a: &Attrs<'_>, i: usize) -> Result<Constant, OnnxError> {
        let name = a.node.input.get(i).map(String::as_str).unwrap_or("");
        match self.known.get(name) {
            Some(Known::Constant(c)) => Ok(c.clone()),
            _ => Err(a.error(
                Some(&format!("input {i}")),
                format!("`{name}` is computed, not a constant"),
                "alexc takes weights, biases and shapes only as initializers or Constant nodes",
            )),
        }
    }

    pub fn is_constant(&self, a: &Attrs<'_>, i: usize) -> bool {
        a.node.input.get(i).is_some_and(|n| matches!(self.known.get(n), Some(Known::Constant(_))))
    }

    pub fn is_used(&self, value: &str) -> bool {
        self.uses.get(value).is_some_and(|&n| n > 0)
    }

    pub fn set_constant(&mut self, a: &Attrs<'_>, c: Constant) {
        if let Some(out) = a.node.output.first() {
            self.known.insert(out.clone(), Known::Constant(c));
        }
    }

    /// The node's output 0 is its input `i` under another name.
    pub fn alias(&mut self, a: &Attrs<'_>, i: usize) -> Result<(), OnnxError> {
        let v = self.value(a, i)?;
        if let Some(out) = a.node.output.first() {
            self.known.insert(out.clone(), Known::Value(v));
        }
        Ok(())
    }

    /// A name for the layer of node `a`: its weight's (`features.0.weight` gives `features_0`),
    /// else its node name's last part (`/features/features.1/Relu` gives `features_1`), else its op.
    fn layer_name(&mut self, a: &Attrs<'_>, weight: Option<&str>) -> String {
        let from_node = || {
            let parts: Vec<&str> = a.name.split('/').filter(|p| !p.is_empty()).collect();
            let parts = match parts.split_last() {
                Some((last, rest)) if last.starts_with(&a.op) && !rest.is_empty() => rest.to_vec(),
                _ => parts,
            };
            parts.last().map(|p| sanitize(p)).unwrap_or_default()
        };
        let mut base = weight.and_then(|w| w.strip_suffix(".weight")).map(sanitize).unwrap_or_else(from_node);
        if base.is_empty() || base.starts_with('#') {
            base = a.op.to_ascii_lowercase();
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) || ["loss", "labels"].contains(&name.as_str()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// A layer of `op` reading the node's inputs `inputs`, with its weight and bias.
    pub fn layer(
        &mut self,
        a: &Attrs<'_>,
        op: Op,
        inputs: &[usize],
        weight: Option<Constant>,
        bias: Option<Vec<f64>>,
    ) -> Result<(), OnnxError> {
        let vals: Vec<Val> = inputs.iter().map(|&i| self.value(a, i)).collect::<Result<_, _>>()?;
        let mut types: Vec<&TensorType> = vals.iter().map(|v| &v.ty).collect();
        let wt = weight.as_ref().map(|w| TensorType::fixed(DType::F32, w.dims.clone()));
        if let Some(w) = &wt {
            types.push(w);
        }
        let out = op.def().infer(&types).map_err(|e| a.error(None, e.message, e.help))?;
        if let (Some(b), Some(w)) = (&bias, &weight) {
            if b.len() != w.dims[0] {
                return Err(a.error(
                    Some("bias"),
                    format!("{} values for {} outputs", b.len(), w.dims[0]),
                    "give one bias per output channel",
                ));
            }
        }
        let weight_name = a.node.input.get(1).map(String::as_str).filter(|_| weight.is_some());
        let name = self.layer_name(a, weight_name);
        let ty =
            out.outputs.into_iter().next().ok_or_else(|| a.error(None, "gives no output", "").internal())?;
        if let Some(o) = a.node.output.first() {
            self.known.insert(o.clone(), Known::Value(Val { layer: name.clone(), ty }));
        }
        let inputs = vals.into_iter().map(|v| v.layer).collect();
        self.layers.push(LayerDecl { name, op, inputs, weight, bias });
        Ok(())
    }

    pub fn flatten(&mut self, a: &Attrs<'_>) -> Result<(), OnnxError> {
        if self.value(a, 0)?.ty.dims.len() == 1 {
            return self.alias(a, 0);
        }
        self.layer(a, ops::flatten_op(), &[0], None, None)
    }

    /// `Add` of the constant input `c` to the output of a matrix product or convolution without a
    /// bias, read by nothing else: that layer's bias.
    pub fn add_bias(&mut self, a: &Attrs<'_>, c: usize) -> Result<(), OnnxError> {
        let x = self.value(a, 1 - c)?;
        let b = self.constant(a, c)?;
        let uses = self.uses_of(&a.node.input[1 - c]);
        let layer = self.layers.iter_mut().rev().find(|l| l.name == x.layer);
        match layer {
            Some(l)
                if l.bias.is_none()
                    && l.weight.is_some()
                    && uses == 1
                    && b.values.len() == l.weight.as_ref().map_or(0, |w| w.dims[0]) =>
            {
                l.bias = Some(b.values);
                self.alias(a, 1 - c)
            }
            _ => Err(a.error(
                Some(&format!("input {c}")),
                "adds a constant to a value that is not a bias-free layer's output",
                "a graph file adds constants only as a convolution's or linear layer's bias",
            )),
        }
    }

    fn uses_of(&self, value: &str) -> usize {
        self.uses.get(value).copied().unwrap_or(0)
    }
}
