//! Each catalog op on the backend, written once: elementwise ops take a value of any rank
//! ([`with_float!`]); convolution, LRN and pooling take `N x C x H x W`; the products, the loss
//! and its gradient take `N x features`.

use alexir::catalog::Op;
use alexir::ir::Optimizer;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Bool, Tensor, TensorData};
use petgraph::stable_graph::NodeIndex;

use super::{Executor, StepCtx};
use crate::error::RunError;
use crate::init::Rng;
use crate::kernels::{KernelBackend, LrnParams, PoolParams, SgdParams};
use crate::value::Value;
use crate::with_float;

impl<B: KernelBackend> Executor<B> {
    /// Runs one scheduled op (a fused node as a group) on its inputs; returns its outputs by port.
    pub(super) fn run_op(
        &mut self,
        op: &Op,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        ctx: &StepCtx,
    ) -> Result<Vec<Value<B>>, RunError> {
        let one = |v: Value<B>| Ok(vec![v]);
        match op {
            Op::Fused(f) => {
                let fusion = if self.options.fused_kernels { self.fusions.get(&node).cloned() } else { None };
                match fusion {
                    Some(fusion) => self.run_fusion(&fusion, f, node, inputs, ctx),
                    None => self.run_steps(f, node, inputs, ctx),
                }
            }
            Op::Conv2d(c) => one(B::conv2d_plain(inputs[0].float()?, inputs[1].float()?, &c.0).into()),
            Op::Conv2dBackwardData(c) => {
                one(B::conv2d_data_grad(inputs[0].float()?, inputs[1].float()?, &c.attrs, c.input_hw).into())
            }
            Op::Conv2dBackwardWeight(c) => {
                one(B::conv2d_weight_grad(inputs[0].float()?, inputs[1].float()?, &c.0).into())
            }
            Op::Linear(_) => one(B::linear_forward(inputs[0].float()?, inputs[1].float()?).into()),
            Op::LinearBackwardData(_) => {
                one(B::linear_data_grad(inputs[0].float()?, inputs[1].float()?).into())
            }
            Op::LinearBackwardWeight(_) => {
                one(B::linear_weight_grad(inputs[0].float()?, inputs[1].float()?).into())
            }
            Op::BiasAdd(_) => {
                let b = inputs[1].float::<1>()?;
                one(with_float!(inputs[0], |y| B::bias_act(y, b, false)))
            }
            Op::BiasGrad(_) => one(with_float!(inputs[0], |dy| B::bias_grad(dy))),
            Op::Relu(_) => one(with_float!(inputs[0], |x| relu(x))),
            Op::ReluGrad(_) => {
                one(with_float!(inputs[0], |dy| B::masked_grad(dy, Some(inputs[1].float()?), None)))
            }
            Op::Add(_) | Op::AddN(_) => one(with_float!(inputs[0], |first| {
                let mut sum = first;
                for v in &inputs[1..] {
                    sum = sum + v.float()?;
                }
                sum
            })),
            Op::Lrn(l) => one(B::lrn_forward(inputs[0].float()?, &LrnParams::from_op(l)).into()),
            Op::LrnGrad(l) => one(B::lrn_backward(
                inputs[0].float()?,
                inputs[1].float()?,
                inputs[2].float()?,
                &LrnParams::from_op(&l.0),
            )
            .into()),
            Op::MaxPool(p) => {
                let (x, params) = (inputs[0].float()?, PoolParams::from_attrs(&p.attrs));
                if !p.argmax {
                    return one(B::max_pool_values(x, &params).into());
                }
                let (y, arg) = B::max_pool_forward(x, &params);
                Ok(vec![y.into(), arg.into()])
            }
            Op::MaxPoolGrad(p) => one(B::max_pool_backward(
                inputs[0].float()?,
                inputs[1].int()?,
                p.input_hw,
                &PoolParams::from_attrs(&p.attrs),
            )
            .into()),
            Op::Dropout(d) => {
                if !d.training {
                    return one(inputs[0].clone());
                }
                // Dropout is its own gradient's mask applied forward: zero where dropped, scaled
                // by 1 / keep where kept.
                let mask = self.dropout_mask(node, &inputs[0].dims(), d.rate, ctx)?;
                let scale = self.dropout_scale(ctx, d.rate).unwrap_or(1.0);
                let y = with_float!(inputs[0], |x| B::masked_grad(x, None, Some((mask.mask()?, scale))));
                Ok(vec![y, mask])
            }
            Op::DropoutGrad(d) => {
                let scale = self.dropout_scale(ctx, d.rate).unwrap_or(1.0);
                one(with_float!(inputs[0], |dy| B::masked_grad(dy, None, Some((inputs[1].mask()?, scale)))))
            }
            Op::Flatten(_) => {
                let dims = inputs[0].dims();
                one(inputs[0].reshape(&[dims[0], dims[1..].iter().product()])?)
            }
            Op::Reshape(r) => {
                let batch = inputs[0].dims()[0];
                one(inputs[0].reshape(&[&[batch], r.dims.as_slice()].concat())?)
            }
            Op::SoftmaxCrossEntropy(_) => {
                let logp = log_softmax(inputs[0].float::<2>()?, 1);
                let picked = logp.clone().gather(1, inputs[1].int::<1>()?.reshape([ctx.batch, 1]));
                Ok(vec![picked.mean().neg().into(), logp.exp().into()])
            }
            Op::SoftmaxCrossEntropyGrad(_) => {
                let probs = inputs[0].float::<2>()?;
                let onehot: Tensor<B, 2> = inputs[1].int::<1>()?.one_hot::<2>(probs.dims()[1]).float();
                one(((probs - onehot) / ctx.batch as f64).into())
            }
            Op::SgdUpdate(u) => {
                let ins = self.graph.inputs(node);
                let Optimizer::Sgd { momentum, weight_decay, .. } = self.graph.spec.optimizer;
                let p = SgdParams { momentum, rate: ctx.lr * u.lr_mult, decay: u.decay_mult * weight_decay };
                // One pass over the flattened tensors, whatever the parameter's rank; the tensors
                // are moved, so a backend can update them in place.
                let shape = inputs[0].dims();
                if u.guarded && Self::skips_update(&inputs[3])? {
                    // A step whose gradients overflowed (f16's loss scaling): w and v as they were.
                    let [w, _, v, _]: [Value<B>; 4] =
                        inputs.try_into().map_err(|_| RunError::Internal("sgd_update's inputs".into()))?;
                    self.persistent.insert(ins[0].node, w);
                    self.persistent.insert(ins[2].node, v);
                    return Ok(vec![]);
                }
                let flat = [shape.iter().product()];
                let mut it = inputs.into_iter().take(3).map(|v| v.into_shape(&flat)?.float::<1>());
                let mut next =
                    || it.next().unwrap_or_else(|| Err(RunError::Internal("sgd_update's inputs".into())));
                let (w, g, v) = (next()?, next()?, next()?);
                let (w, v) = B::sgd_update(w, g, v, &p);
                self.persistent.insert(ins[0].node, Value::from(w).into_shape(&shape)?);
                self.persistent.insert(ins[2].node, Value::from(v).into_shape(&shape)?);
                Ok(vec![])
            }
            Op::AllReduceMean(a) => {
                // Outside the schedule loop, which overlaps it with the next nodes: at once.
                let bucket = self.start_all_reduce_mean(node, inputs, a)?;
                let out = self.finish_all_reduce_mean(bucket);
                self.end_step_of_buckets();
                out
            }
            Op::ScaleLossGrad(_) => self.scale_loss_grad(&inputs),
            Op::UnscaleGrads(u) => self.unscale_grads(node, u, inputs),
            Op::Cast(c) => one(super::precision::cast(inputs[0].clone(), self.run_dtype(c.to))),
            Op::Slice(sl) => one(with_float!(inputs[0], |x| x.narrow(sl.dim, sl.start, sl.len))),
            Op::Concat(c) => one(with_float!(inputs[0], |first| {
                let mut parts = vec![first];
                for v in &inputs[1..] {
                    parts.push(v.float()?);
                }
                Tensor::cat(parts, c.dim)
            })),
            Op::Pad(p) => one(crate::placement::pad(&inputs[0], p.dim, p.before, p.after)?),
            Op::Transfer(t) => one(crate::placement::transfer(&inputs[0], &self.devices[usize::from(t.to)])?),
            Op::Input(_) | Op::Labels(_) | Op::Param(_) | Op::State(_) => {
                Err(RunError::Internal(format!("`{}` is not a scheduled op", op.def().name())))
            }
        }
    }

    /// The keep mask of dropout node `node` for this step: drawn from the graph's seed, the node
    /// and the step count in a training step with dropout on, all true otherwise.
    fn dropout_mask(
        &self,
        node: NodeIndex,
        dims: &[usize],
        rate: f64,
        ctx: &StepCtx,
    ) -> Result<Value<B>, RunError> {
        let count: usize = dims.iter().product();
        let mask: Vec<bool> = match self.dropout_scale(ctx, rate) {
            Some(_) => {
                let name = self.graph.g[node].name.as_bytes();
                let mut rng = Rng::for_stream(self.seed, &[b"dropout", name, &self.steps_done.to_le_bytes()]);
                // A replica's batch is its slice of the combined batch: its mask is the same
                // slice of the combined batch's mask.
                for _ in 0..self.world().rank() * count {
                    rng.uniform();
                }
                (0..count).map(|_| rng.uniform() < 1.0 - rate).collect()
            }
            None => vec![true; count],
        };
        let flat = Tensor::<B, 1, Bool>::from_data(TensorData::new(mask, [count]), self.device_of(node));
        Value::from(flat).reshape(dims)
    }
}
