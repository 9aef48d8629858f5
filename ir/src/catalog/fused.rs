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
    /// `[conv2d(out=96 ...) + bias_add + relu]`: the steps in order, each with the inputs it reads
    /// in braces where they are not the chain's (`relu_grad{s0, #0}`: step 0's output and the
    /// node's input 0), and ` => s2, s3` where the outputs are not the last step's output 0.
    fn attrs(&self) -> String {
        let defaults = self.chain_inputs();
        let parts: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let a = s.op.def().attrs();
                let mut text = s.op.def().name().to_string();
                if !a.is_empty() {
                    text = format!("{text}({a})");
                }
                if defaults.get(i).is_none_or(|d| d.as_ref() != Some(&s.inputs)) {
                    let ins: Vec<String> = s.inputs.iter().map(input_text).collect();
                    text = format!("{text}{{{}}}", ins.join(", "));
                }
                text
            })
            .collect();
        let mut out = format!("[{}", parts.join(" + "));
        if self.outputs != [(self.steps.len().saturating_sub(1), 0)] {
            let outs: Vec<String> =
                self.outputs.iter().map(|&(s, p)| input_text(&FusedInput::Step(s, p))).collect();
            out.push_str(&format!(" => {}", outs.join(", ")));
        }
        out.push(']');
        out
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

impl FusedOp {
    /// Each step's inputs when the steps form a chain: step 0 reads the node's first inputs, each
    /// later step the step before's output 0 and then the node's next inputs. `None` from a step
    /// whose op takes any number of inputs (its inputs are always written out).
    fn chain_inputs(&self) -> Vec<Option<Vec<FusedInput>>> {
        let mut next = 0;
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let Some(arity) = s.op.def().arity() else {
                out.push(None);
                continue;
            };
            let mut ins = Vec::new();
            if i > 0 && arity > 0 {
                ins.push(FusedInput::Step(i - 1, 0));
            }
            while ins.len() < arity {
                ins.push(FusedInput::External(next));
                next += 1;
            }
            out.push(Some(ins));
        }
        out
    }

    /// The op [`OpDef::attrs`] writes as `text`.
    pub fn from_text(text: &str) -> Result<FusedOp, String> {
        let body = text
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or(format!("a fused op is written `[step + step ...]`, not `{text}`"))?;
        let (steps_text, outputs_text) = match body.split_once(" => ") {
            Some((s, o)) => (s, Some(o)),
            None => (body, None),
        };
        let mut steps = Vec::new();
        let mut wired = Vec::new();
        for part in steps_text.split(" + ") {
            let part = part.trim();
            let (head, inputs) = match part.strip_suffix('}').and_then(|p| p.rsplit_once('{')) {
                Some((head, ins)) => (head, Some(ins)),
                None => (part, None),
            };
            let (name, attrs) = match head.strip_suffix(')').and_then(|h| h.split_once('(')) {
                Some((name, attrs)) => (name, attrs),
                None => (head, ""),
            };
            let op = super::Op::from_text(name, attrs, &[]).map_err(|e| format!("step `{part}`: {e}"))?;
            let inputs =
                inputs.map(|ins| ins.split(',').map(|i| read_input(i.trim())).collect::<Result<Vec<_>, _>>());
            wired.push(inputs.transpose()?);
            steps.push(FusedStep { op, inputs: Vec::new() });
        }
        let mut fused = FusedOp { outputs: vec![(steps.len() - 1, 0)], steps };
        let chain = fused.chain_inputs();
        for (i, (step, wiring)) in fused.steps.iter_mut().zip(wired).enumerate() {
            step.inputs = match (wiring, &chain[i]) {
                (Some(ins), _) => ins,
                (None, Some(ins)) => ins.clone(),
                (None, None) => {
                    return Err(format!("step {i} takes any number of inputs: write them (`{{#0, s1}}`)"))
                }
            };
        }
        if let Some(outs) = outputs_text {
            fused.outputs = outs
                .split(',')
                .map(|o| match read_input(o.trim())? {
                    FusedInput::Step(s, p) => Ok((s, p)),
                    FusedInput::External(_) => Err(format!("output `{o}` is not a step's (`s2`, `s2:1`)")),
                })
                .collect::<Result<_, String>>()?;
        }
        Ok(fused)
    }
}

/// `#3` (the node's input 3), `s1` (step 1's output 0), `s1:1`.
fn input_text(input: &FusedInput) -> String {
    match *input {
        FusedInput::External(e) => format!("#{e}"),
        FusedInput::Step(s, 0) => format!("s{s}"),
        FusedInput::Step(s, p) => format!("s{s}:{p}"),
    }
}

fn read_input(text: &str) -> Result<FusedInput, String> {
    let bad = || {
        format!("`{text}` is not a fused step's input: #0 (the node's input 0) or s1, s1:1 (a step's output)")
    };
    if let Some(e) = text.strip_prefix('#') {
        return e.parse().map(FusedInput::External).map_err(|_| bad());
    }
    let step = text.strip_prefix('s').ok_or_else(bad)?;
    let (s, p) = step.split_once(':').unwrap_or((step, "0"));
    Ok(FusedInput::Step(s.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?))
}

/// A fused node whose steps do not fit together (only a damaged plan has one).
fn missing(what: &str) -> ShapeError {
    ShapeError::new(format!("fused node: {what}"), "recompile the graph with alexc")
}
