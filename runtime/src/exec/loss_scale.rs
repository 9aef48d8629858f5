//! f16's dynamic loss scaling at run time (the ops and their rules: `alexir::catalog::loss_scale`):
//! the loss gradient scaled, the gradients unscaled and checked, the scale state updated, the
//! updates guarded by the step's verdict.

use alexir::catalog::Op;
use alexir::catalog::{StateKind, UnscaleGrads, INITIAL_LOSS_SCALE, LOSS_SCALE_STATE};
use burn::tensor::{ElementConversion, Tensor};
use petgraph::stable_graph::NodeIndex;

use super::Executor;
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::value::Value;

/// A state buffer's values at the start of training.
pub(super) fn initial_state(kind: StateKind, len: usize) -> Vec<f32> {
    match kind {
        StateKind::Momentum => vec![0.0; len],
        StateKind::LossScale => {
            let mut v = vec![0.0; len];
            v[0] = INITIAL_LOSS_SCALE;
            v
        }
    }
}

/// The loss-scale state as host numbers: `[S, good steps in a row, steps skipped]`.
fn read_state<B: KernelBackend>(v: &Value<B>) -> Result<[f32; LOSS_SCALE_STATE], RunError> {
    let data = v.float::<1>()?.into_data().convert::<f32>();
    let values = data.as_slice::<f32>().map_err(|e| RunError::Internal(format!("the loss scale: {e:?}")))?;
    values.try_into().map_err(|_| RunError::Internal(format!("a loss scale of {} values", values.len())))
}

/// Whether every element of `t` is finite (an order-free test: `0 * x` is NaN exactly where `x`
/// is infinite or NaN, and any NaN makes the sum NaN).
fn all_finite<B: KernelBackend>(t: &Tensor<B, 1>) -> bool {
    t.clone().mul_scalar(0.0).sum().into_scalar().elem::<f64>().is_finite()
}

impl<B: KernelBackend> Executor<B> {
    /// `dy * S`.
    pub(super) fn scale_loss_grad(&self, inputs: &[Value<B>]) -> Result<Vec<Value<B>>, RunError> {
        let [s, ..] = read_state(&inputs[1])?;
        let dy = inputs[0].float::<2>()?;
        Ok(vec![dy.mul_scalar(s).into()])
    }

    /// Every gradient divided by `S`, the verdict, and the state moved on (written back into the
    /// persistent store, from which the executor took it).
    pub(super) fn unscale_grads(
        &mut self,
        node: NodeIndex,
        u: &UnscaleGrads,
        inputs: Vec<Value<B>>,
    ) -> Result<Vec<Value<B>>, RunError> {
        let state_node = self.graph.inputs(node)[0].node;
        let mut it = inputs.into_iter();
        let state = it.next().ok_or_else(|| RunError::Internal("unscale_grads has no state".into()))?;
        let [s, good, skipped] = read_state(&state)?;
        let inverse = 1.0 / s;
        let mut outputs = Vec::with_capacity(it.len() + 1);
        let mut finite = true;
        for g in it {
            let shape = g.dims();
            let flat = g.into_shape(&[shape.iter().product()])?.float::<1>()?;
            finite &= all_finite(&flat);
            outputs.push(Value::from(flat.mul_scalar(inverse)).into_shape(&shape)?);
        }
        let next = if !finite {
            [s / 2.0, 0.0, skipped + 1.0]
        } else if good + 1.0 >= u.growth_interval as f32 {
            [s * 2.0, 0.0, skipped]
        } else {
            [s, good + 1.0, skipped]
        };
        let device = self.devices[usize::from(self.graph.g[state_node].device)].clone();
        self.persistent.insert(state_node, Value::from_host(next.to_vec(), &[LOSS_SCALE_STATE], &device)?);
        outputs.push(Value::from_host(vec![if finite { 1.0f32 } else { 0.0 }], &[1], &device)?);
        Ok(outputs)
    }

    /// `[S, good steps in a row, steps skipped so far]` of an f16 training plan, `None` for others.
    pub fn loss_scale(&self) -> Option<[f32; LOSS_SCALE_STATE]> {
        let n = self
            .graph
            .node_indices()
            .into_iter()
            .find(|&n| matches!(&self.graph.g[n].op, Op::State(s) if s.kind == StateKind::LossScale))?;
        read_state(self.persistent.get(&n)?).ok()
    }

    /// Whether a guarded update's verdict says to skip it.
    pub(super) fn skips_update(verdict: &Value<B>) -> Result<bool, RunError> {
        let v = verdict.float::<1>()?.into_scalar().elem::<f64>();
        Ok(v == 0.0)
    }
}
