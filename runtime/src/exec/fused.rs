//! Fused nodes: on the backend's fused kernels, as [`crate::select`] chose them, or step by step
//! (each step as its own op), which is always correct.

use alexir::catalog::{FusedInput, FusedOp, Op};
use petgraph::stable_graph::NodeIndex;

use super::{Executor, StepCtx};
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::select::Fusion;
use crate::value::Value;
use crate::with_float;

impl<B: KernelBackend> Executor<B> {
    /// A fused node step by step, each step as its own op.
    pub(super) fn run_steps(
        &mut self,
        f: &FusedOp,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        ctx: &StepCtx,
    ) -> Result<Vec<Value<B>>, RunError> {
        let mut done: Vec<Vec<Value<B>>> = Vec::with_capacity(f.steps.len());
        for step in &f.steps {
            let args = step.inputs.iter().map(|i| resolve(i, &inputs, &done)).collect::<Result<_, _>>()?;
            let outs = self.run_op(&step.op, node, args, ctx)?;
            done.push(outs);
        }
        f.outputs.iter().map(|&(s, p)| resolve(&FusedInput::Step(s, p), &inputs, &done)).collect()
    }

    /// A fused node on the backend's fused kernels.
    pub(super) fn run_fusion(
        &mut self,
        fusion: &Fusion,
        f: &FusedOp,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        ctx: &StepCtx,
    ) -> Result<Vec<Value<B>>, RunError> {
        // The group's first op (the product or gradient producer), on its own inputs.
        let head = |this: &mut Self| -> Result<Value<B>, RunError> {
            let args =
                f.steps[0].inputs.iter().map(|i| resolve(i, &inputs, &[])).collect::<Result<_, _>>()?;
            let mut out = this.run_op(&f.steps[0].op, node, args, ctx)?;
            Ok(out.swap_remove(0))
        };
        match *fusion {
            Fusion::BiasAct { bias, relu } => {
                let b = inputs[bias].float::<1>()?;
                if let (Op::Conv2d(c), [FusedInput::External(x), FusedInput::External(w)]) =
                    (&f.steps[0].op, f.steps[0].inputs.as_slice())
                {
                    let (x, w) = (inputs[*x].float()?, inputs[*w].float()?);
                    return Ok(vec![B::conv2d_bias_act(x, w, b, &c.0, relu).into()]);
                }
                let z = head(self)?;
                Ok(vec![with_float!(z, |z| B::bias_act(z, b, relu))])
            }
            Fusion::BiasReluLrn { bias, lrn, keep_relu } => {
                let b = inputs[bias].float::<1>()?;
                let (y, r) = match (&f.steps[0].op, f.steps[0].inputs.as_slice()) {
                    (Op::Conv2d(c), [FusedInput::External(x), FusedInput::External(w)]) => {
                        let (x, w) = (inputs[*x].float()?, inputs[*w].float()?);
                        B::conv2d_bias_relu_lrn(x, w, b, &c.0, &lrn, keep_relu)
                    }
                    _ => B::bias_relu_lrn(head(self)?.float()?, b, &lrn, keep_relu),
                };
                let mut outs = vec![y.into()];
                outs.extend(r.map(Value::from));
                Ok(outs)
            }
            Fusion::MaskedGrad { dropout, relu_y } => {
                let g = head(self)?;
                Ok(vec![with_float!(g, |g| {
                    let y = relu_y.map(|y| inputs[y].float()).transpose()?;
                    let mask = match dropout {
                        Some((m, rate)) => {
                            Some((inputs[m].mask()?, self.dropout_scale(ctx, rate).unwrap_or(1.0)))
                        }
                        None => None,
                    };
                    B::masked_grad(g, y, mask)
                })])
            }
            Fusion::LrnReluGrad { x, y, dy, lrn } => Ok(vec![B::lrn_relu_backward(
                inputs[x].float()?,
                inputs[y].float()?,
                inputs[dy].float()?,
                &lrn,
            )
            .into()]),
            Fusion::PoolReluGrad { dy, argmax, relu_y, pool } => Ok(vec![B::max_pool_relu_backward(
                inputs[dy].float()?,
                inputs[argmax].int()?,
                inputs[relu_y].float()?,
                &pool,
            )
            .into()]),
        }
    }
}

/// The value a fused step reads: an input of the fused node, or an earlier step's output.
fn resolve<B: KernelBackend>(
    input: &FusedInput,
    inputs: &[Value<B>],
    done: &[Vec<Value<B>>],
) -> Result<Value<B>, RunError> {
    let found = match *input {
        FusedInput::External(e) => inputs.get(e),
        FusedInput::Step(s, p) => done.get(s).and_then(|d| d.get(p as usize)),
    };
    found
        .cloned()
        .ok_or_else(|| RunError::Internal(format!("a fused step reads {input:?}, which is not there")))
}
