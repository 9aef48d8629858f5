//! Fused ops: a short chain of catalog ops executed as one node.

use serde::{Deserialize, Serialize};

use super::{Cost, FusionClass, Inferred, Op, OpDef, ShapeError};
use crate::value::TensorType;

/// Where a step of a fused op reads an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FusedInput {
    /// Input `i` of the fused node.
    External(usize),
    /// Output `port` of an earlier step.
    Step(usize, u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedStep {
    pub op: Op,
    pub inputs: Vec<FusedInput>,
}

/// Steps run in order; `outputs` are the step outputs visible outside the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedOp {
    pub steps: Vec<FusedStep>,
    pub outputs: Vec<(usize, u8)>,
}

impl FusedOp {
    /// `conv2d+bias_add+relu` and the like.
    pub fn pattern(&self) -> String {
        self.steps.iter().map(|s| s.op.def().name()).collect::<Vec<_>>().join("+")
    }

    fn arity_count(&self) -> usize {
        self.steps
            .iter()
            .flat_map(|s| s.inputs.iter())
            .filter_map(|i| match i {
                FusedInput::External(e) => Some(e + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Every step's output types, given the fused node's input types.
    pub fn step_types(&self, inputs: &[&TensorType]) -> Result<Vec<Inferred>, ShapeError> {
        let mut done: Vec<Inferred> = Vec::new();
        for s in &self.steps {
            let arity_ok = match s.op.def().arity() {
                Some(a) => a == s.inputs.len(),
                None => !s.inputs.is_empty(),
            };
            if !arity_ok {
                return Err(missing("a step has a number of inputs its op does not take"));
            }
            let ins: Vec<&TensorType> = s
                .inputs
                .iter()
                .map(|i| match *i {
                    FusedInput::External(e) => inputs.get(e).copied(),
                    FusedInput::Step(st, p) => done.get(st).and_then(|d| d.outputs.get(p as usize)),
                })
                .collect::<Option<_>>()
                .ok_or_else(|| missing("a step reads an input or a step output that is not there"))?;
            let inferred = s.op.def().infer(&ins)?;
            done.push(inferred);
        }
        Ok(done)
    }
}

impl OpDef for FusedOp {
    fn name(&self) -> &'static str {
        "fused"
    }
    fn arity(&self) -> Option<usize> {
        Some(self.arity_count())
    }
    fn attrs(&self) -> String {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let a = s.op.def().attrs();
                if a.is_empty() {
                    s.op.def().name().to_string()
                } else {
                    format!("{}({a})", s.op.def().name())
                }
            })
            .collect();
        format!("[{}]", parts.join(" + "))
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let steps = self.step_types(inputs)?;
        let outputs = self
            .outputs
            .iter()
            .map(|&(s, p)| steps.get(s).and_then(|st| st.outputs.get(p as usize)).cloned())
            .collect::<Option<_>>()
            .ok_or_else(|| missing("an output names a step output that is not there"))?;
        Ok(Inferred { outputs, warnings: Vec::new() })
    }
    fn fusion_class(&self) -> FusionClass {
        self.steps[0].op.def().fusion_class()
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        let Ok(steps) = self.step_types(inputs) else {
            return Cost::default();
        };
        let mut macs = 0;
        for (s, out) in self.steps.iter().zip(&steps) {
            let ins: Vec<&TensorType> = s
                .inputs
                .iter()
                .map(|i| match *i {
                    FusedInput::External(e) => inputs[e],
                    FusedInput::Step(st, p) => &steps[st].outputs[p as usize],
                })
                .collect();
            macs += s.op.def().cost(&ins, &out.outputs).macs;
        }
        Cost { macs }
    }
}

/// A fused node whose steps do not fit together (only a damaged plan has one).
fn missing(what: &str) -> ShapeError {
    ShapeError::new(format!("fused node: {what}"), "recompile the graph with alexc")
}
