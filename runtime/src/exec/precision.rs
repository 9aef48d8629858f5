//! Element types at run time. A plan's `f32` is the run's float type (f32, or f64 for the
//! double-precision checks); `bf16` and `f16` are themselves. Each op computes in the type of its
//! first float output as the plan declares it: its float inputs are brought to that type first (a
//! weight's or a bias's f32 master read by a bf16 product, bf16 logits read by the loss), and its
//! outputs are checked into the declared types. Weight gradients (and, in an f32 run, bias
//! gradients) are the exception: they read their bf16 inputs as they are, their kernels summing in
//! f32. The plan's own casts (`cast` nodes) are where types change on purpose; these are what a
//! kernel does inside.

use alexir::catalog::Op;
use alexir::ir::DType as PlanDType;
use burn::tensor::{DType, TensorMetadata};
use petgraph::stable_graph::NodeIndex;

use super::Executor;
use crate::kernels::KernelBackend;
use crate::value::Value;

impl<B: KernelBackend> Executor<B> {
    /// The run's element type for a plan's float type.
    pub(super) fn run_dtype(&self, dtype: PlanDType) -> DType {
        match dtype {
            PlanDType::BF16 => DType::BF16,
            PlanDType::F16 => DType::F16,
            _ => self.float_dtype,
        }
    }

    /// The type node `n` computes in: its first float output's, when it declares one.
    fn compute_dtype(&self, n: NodeIndex) -> Option<DType> {
        let first = self.graph.g[n].outputs.iter().find(|t| t.dtype.is_float())?;
        Some(self.run_dtype(first.dtype))
    }

    /// `inputs` brought to the type node `n` computes in (a cast, a weight gradient and, in an f32
    /// run, a bias gradient keep theirs).
    /// Where the backend has no arithmetic in that type ([`KernelBackend::computes_in`]: f16 on the
    /// CPU), the inputs are brought to it and then widened to the type it computes in.
    pub(super) fn conform_inputs(&self, n: NodeIndex, inputs: Vec<Value<B>>) -> Vec<Value<B>> {
        // A bias gradient sums a lower-precision `dy` in f32 itself; in an f64 run it is widened
        // to f64 first, as before.
        let bias_grad = matches!(self.graph.g[n].op, Op::BiasGrad(_)) && self.float_dtype == DType::F32;
        if bias_grad
            || matches!(self.graph.g[n].op, Op::Conv2dBackwardWeight(_) | Op::LinearBackwardWeight(_))
        {
            // Read as they are (a bf16 kernel, or the bias gradient's sum, sums them in f32), or
            // widened where they are in a type the backend does not compute in.
            return inputs.into_iter().map(|v| self.computable(v)).collect();
        }
        if matches!(self.graph.g[n].op, Op::Cast(_)) {
            return inputs;
        }
        let Some(dtype) = self.compute_dtype(n) else { return inputs };
        if B::computes_in(dtype) != dtype {
            let run = self.run_dtype(alexir::ir::DType::F32);
            return inputs.into_iter().map(|v| cast::<B>(cast::<B>(v, dtype), run)).collect();
        }
        // Where the bf16 kernels read f32 masters themselves, a weight is not copied into bf16 each
        // step (in every other type the inputs are brought to the op's).
        let masters = if B::reads_f32_masters() && dtype == DType::BF16 {
            master_ports(&self.graph.g[n].op)
        } else {
            Vec::new()
        };
        inputs
            .into_iter()
            .enumerate()
            .map(|(port, v)| if masters.contains(&port) { v } else { cast::<B>(v, dtype) })
            .collect()
    }

    /// `v` widened to the run's f32 where the backend does not compute in its type.
    fn computable(&self, v: Value<B>) -> Value<B> {
        match v.float_dtype() {
            Some(d) if B::computes_in(d) != d => cast::<B>(v, self.run_dtype(alexir::ir::DType::F32)),
            _ => v,
        }
    }

    /// `outputs` in the types node `n` declares.
    pub(super) fn conform_outputs(&self, n: NodeIndex, outputs: Vec<Value<B>>) -> Vec<Value<B>> {
        let declared = &self.graph.g[n].outputs;
        outputs
            .into_iter()
            .enumerate()
            .map(|(port, v)| match declared.get(port) {
                Some(t) if t.dtype.is_float() => cast::<B>(v, self.run_dtype(t.dtype)),
                _ => v,
            })
            .collect()
    }
}

/// The inputs of `op` that are read as f32 masters ([`alexir::catalog::OpDef::reads_f32_master`]):
/// of a fused node, the inputs that feed such a port of one of its steps.
fn master_ports(op: &Op) -> Vec<usize> {
    match op {
        Op::Fused(f) => f
            .steps
            .iter()
            .flat_map(|s| {
                s.inputs.iter().enumerate().filter_map(|(port, input)| match input {
                    alexir::catalog::FusedInput::External(e) if s.op.def().reads_f32_master(port) => Some(*e),
                    _ => None,
                })
            })
            .collect(),
        op => (0..op.def().arity().unwrap_or(0)).filter(|&p| op.def().reads_f32_master(p)).collect(),
    }
}

/// A float value in element type `dtype` (by the backend's own conversion where it has one);
/// other values as they are.
pub(super) fn cast<B: KernelBackend>(v: Value<B>, dtype: DType) -> Value<B> {
    match v {
        Value::Float(t) if t.dtype() != dtype => Value::Float(B::cast_float(t, dtype)),
        other => other,
    }
}
