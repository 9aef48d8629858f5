//! What a gradient rule works with: the forward node, its inputs and their types, the gradients of
//! its outputs, and a [`BackwardGraph`] to add backward nodes to. The catalog defines the seam and
//! the autodiff pass implements it over the IR, so the catalog never reaches into the graph or a
//! pass.

use petgraph::stable_graph::NodeIndex;

use super::Op;
use crate::value::{TensorType, ValueRef};

/// Why a backward graph cannot be derived.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GradientError {
    #[error("the graph has no loss")]
    NoLoss,
    #[error("op `{op}` has no gradient rule")]
    NoRule { op: &'static str },
    #[error("no gradient reaches output {port} of `{node}`")]
    NoOutputGradient { node: String, port: usize },
    #[error("`{node}` reads an untyped value")]
    UntypedInput { node: String },
    #[error("`{node}`: {message}")]
    Shape { node: String, message: String },
}

/// The graph as gradient rules see it: a place to add backward nodes, and to change the op of the
/// forward node being differentiated.
pub trait BackwardGraph {
    /// Adds a backward node `name` reading `inputs`, typed by its shape rule; returns its output 0.
    fn add_backward(&mut self, name: String, op: Op, inputs: &[ValueRef]) -> Result<ValueRef, GradientError>;
    /// Makes forward node `node` run `op`, whose output types are `outputs`.
    fn replace_forward(&mut self, node: NodeIndex, op: Op, outputs: Vec<TensorType>);
}

/// One forward node, as its gradient rule sees it.
pub struct GradCtx<'a> {
    pub graph: &'a mut dyn BackwardGraph,
    pub node: NodeIndex,
    /// The forward node's name; backward nodes are named after it.
    pub name: String,
    pub inputs: Vec<ValueRef>,
    /// The types of `inputs`, in order.
    pub input_types: Vec<TensorType>,
    pub out_grads: Vec<Option<ValueRef>>,
    /// Which inputs need a gradient (they depend on a parameter).
    pub wanted: Vec<bool>,
}

impl GradCtx<'_> {
    pub fn input(&self, i: usize) -> ValueRef {
        self.inputs[i]
    }

    pub fn input_type(&self, i: usize) -> &TensorType {
        &self.input_types[i]
    }

    /// Whether input `i` needs a gradient; rules skip the work for inputs that do not.
    pub fn wants(&self, i: usize) -> bool {
        self.wanted.get(i).copied().unwrap_or(false)
    }

    pub fn output(&self, port: u8) -> ValueRef {
        ValueRef { node: self.node, port }
    }

    /// The gradient flowing into output `port`.
    pub fn dy(&self, port: usize) -> Result<ValueRef, GradientError> {
        self.out_grads
            .get(port)
            .copied()
            .flatten()
            .ok_or_else(|| GradientError::NoOutputGradient { node: self.name.clone(), port })
    }

    /// Replaces the forward op (a rule that needs more saved outputs, such as argmax indices).
    pub fn set_forward_op(&mut self, op: Op) -> Result<(), GradientError> {
        let refs: Vec<&TensorType> = self.input_types.iter().collect();
        let inferred = op
            .def()
            .infer(&refs)
            .map_err(|e| GradientError::Shape { node: self.name.clone(), message: e.message })?;
        self.graph.replace_forward(self.node, op, inferred.outputs);
        Ok(())
    }

    /// Adds a backward node `<forward name>/<suffix>` reading `inputs`; returns its output 0.
    pub fn emit(&mut self, suffix: &str, op: Op, inputs: &[ValueRef]) -> Result<ValueRef, GradientError> {
        self.graph.add_backward(format!("{}/{suffix}", self.name), op, inputs)
    }
}
