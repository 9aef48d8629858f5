//! The plan interpreter: runs a plan's schedule op by op (fused nodes as one), holding each value
//! until its planned last use and the parameters and optimizer state across steps.

use std::borrow::Cow;
use std::collections::HashMap;

use alexc::ast::OptimizerDecl;
use alexc::catalog::{FusedInput, FusedOp, Op};
use alexc::ir::{Graph, Mode, Phase, ValueRef};
use alexc::plan::Plan;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use petgraph::stable_graph::NodeIndex;

use crate::error::RunError;
use crate::init::{init_values, Rng};
use crate::kernels::{KernelBackend, LrnParams, PoolParams, SgdParams};
use crate::select::{select, Fusion};
use crate::value::Value;

/// A batch on the host: images `N x C x H x W` (normalised), labels in `0..classes`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
}

impl<'a> From<&'a Batch> for Cow<'a, Batch> {
    fn from(b: &'a Batch) -> Self {
        Cow::Borrowed(b)
    }
}

impl From<Batch> for Cow<'_, Batch> {
    fn from(b: Batch) -> Self {
        Cow::Owned(b)
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The mean loss (training plans only), in the device's precision.
    pub loss: Option<f64>,
    /// `N x classes` logits, row-major.
    pub logits: Vec<f64>,
    /// The most bytes of step values held at once.
    pub peak_bytes: usize,
    /// Each parameter's gradient, by name, when [`ExecOptions::capture_gradients`] is set (in
    /// double precision, exact for an f32 run).
    pub gradients: HashMap<String, Vec<f64>>,
}

/// Settings of the interpreter that are not in the plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Apply dropout in training steps (off for parity tests against a reference).
    pub dropout: bool,
    /// Copy each parameter's gradient to the host as the update reads it (for tests and tools).
    pub capture_gradients: bool,
    /// Time each node (the totals are in [`Executor::profile`]).
    pub profile: bool,
    /// Run fused nodes on the backend's fused kernels ([`crate::select`]); off, step by step.
    pub fused_kernels: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { dropout: true, capture_gradients: false, profile: false, fused_kernels: true }
    }
}

/// Runs one plan on backend `B`.
pub struct Executor<B: KernelBackend> {
    pub graph: Graph,
    pub mode: Mode,
    pub device: B::Device,
    pub options: ExecOptions,
    /// Parameters and optimizer state, by node.
    persistent: HashMap<NodeIndex, Value<B>>,
    /// The step after which each transient value is dropped.
    last_use: HashMap<ValueRef, usize>,
    /// The same, when only the forward nodes run.
    forward_last_use: HashMap<ValueRef, usize>,
    /// Running forward only: dropout is the identity.
    eval: bool,
    input: NodeIndex,
    labels: Option<NodeIndex>,
    /// Steps run so far (dropout masks depend on it).
    pub steps_done: u64,
    /// Seconds spent in each scheduled node, when profiling.
    pub profile: HashMap<NodeIndex, f64>,
    /// The fused kernels of each fused node that has them.
    fusions: HashMap<NodeIndex, Fusion>,
    seed: u64,
}

impl<B: KernelBackend> Executor<B> {
    /// Sets up a plan with freshly initialised parameters.
    pub fn new(plan: &Plan, device: B::Device) -> Result<Self, RunError> {
        let graph = plan.graph.clone();
        let seed = graph.spec.training.seed;
        let mut persistent = HashMap::new();
        let (mut input, mut labels) = (None, None);
        for n in graph.node_indices() {
            let node = &graph.g[n];
            match &node.op {
                Op::Param(p) => {
                    let values = init_values(p, &node.name, seed);
                    persistent.insert(n, tensor_of::<B, f32>(values, &p.shape, &device)?);
                }
                Op::State(s) => {
                    let zeros = vec![0.0f32; s.shape.iter().product()];
                    persistent.insert(n, tensor_of::<B, f32>(zeros, &s.shape, &device)?);
                }
                Op::Input(_) => input = Some(n),
                Op::Labels(_) => labels = Some(n),
                _ => {}
            }
        }
        let input = input.ok_or_else(|| RunError::Internal("the plan has no input".into()))?;
        let last_use = plan.memory.values.iter().map(|p| (p.value, p.last)).collect();
        let mut forward_last_use = HashMap::new();
        for (i, &n) in graph.schedule.iter().enumerate() {
            if graph.g[n].phase == Phase::Forward {
                for v in graph.inputs(n) {
                    forward_last_use.insert(v, i);
                }
            }
        }
        for v in [graph.logits, graph.loss].into_iter().flatten() {
            forward_last_use.insert(v, usize::MAX);
        }
        let fusions = graph
            .node_indices()
            .into_iter()
            .filter_map(|n| match &graph.g[n].op {
                Op::Fused(f) => select(f).map(|k| (n, k)),
                _ => None,
            })
            .collect();
        Ok(Executor {
            graph,
            mode: plan.mode,
            device,
            options: ExecOptions::default(),
            persistent,
            last_use,
            forward_last_use,
            eval: false,
            input,
            labels,
            steps_done: 0,
            profile: HashMap::new(),
            fusions,
            seed,
        })
    }

    /// The input shape per image, `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        let d = &self.graph.g[self.input].outputs[0].dims;
        [d[0], d[1], d[2]]
    }

    pub fn classes(&self) -> usize {
        self.graph.spec.classes
    }

    /// Parameter names and node indices, in node order.
    pub fn param_names(&self) -> Vec<(String, NodeIndex)> {
        self.graph
            .node_indices()
            .into_iter()
            .filter(|&n| matches!(self.graph.g[n].op, Op::Param(_)))
            .map(|n| (self.graph.g[n].name.clone(), n))
            .collect()
    }

    /// Parameters and optimizer state (momentum buffers), names and nodes, in node order.
    pub fn persistent_names(&self) -> Vec<(String, NodeIndex)> {
        self.graph
            .node_indices()
            .into_iter()
            .filter(|&n| self.graph.g[n].op.def().is_persistent())
            .map(|n| (self.graph.g[n].name.clone(), n))
            .collect()
    }

    /// A parameter or state tensor's values on the host, by node name.
    pub fn persistent_values(&self, name: &str) -> Option<Result<Vec<f32>, RunError>> {
        let n = self.graph.find(name)?;
        self.persistent.get(&n).map(Value::to_f32_vec)
    }

    /// The same in double precision (exact for f32 tensors).
    pub fn persistent_values_f64(&self, name: &str) -> Option<Result<Vec<f64>, RunError>> {
        let n = self.graph.find(name)?;
        self.persistent.get(&n).map(Value::to_f64_vec)
    }

    /// Replaces a parameter's (or state's) values, converted to the device's precision.
    pub fn set_persistent<E: burn::tensor::Element>(
        &mut self,
        name: &str,
        values: Vec<E>,
    ) -> Result<(), RunError> {
        let n = self.graph.find(name).ok_or_else(|| RunError::Internal(format!("no value `{name}`")))?;
        let shape = self.graph.g[n].outputs[0].dims.clone();
        let v = tensor_of::<B, E>(values, &shape, &self.device)?;
        self.persistent.insert(n, v);
        Ok(())
    }

    /// Runs one step on `batch` at learning rate `lr` (ignored by inference plans). A batch
    /// passed by value goes to the device without a copy of its images on the host.
    pub fn step<'a>(&mut self, batch: impl Into<Cow<'a, Batch>>, lr: f64) -> Result<StepOutput, RunError> {
        let out = self.run(batch.into(), lr, false)?;
        self.steps_done += 1;
        Ok(out)
    }

    /// Runs the forward nodes only, dropout off and nothing updated: logits (and the loss, for a
    /// training plan) of `batch`, for evaluation.
    pub fn forward<'a>(&mut self, batch: impl Into<Cow<'a, Batch>>) -> Result<StepOutput, RunError> {
        self.eval = true;
        let out = self.run(batch.into(), 0.0, true);
        self.eval = false;
        out
    }

    fn run(&mut self, batch: Cow<'_, Batch>, lr: f64, forward_only: bool) -> Result<StepOutput, RunError> {
        let n = batch.len();
        let [c, h, w] = self.input_shape();
        if batch.images.len() != n * c * h * w {
            return Err(RunError::Internal(format!(
                "a batch of {n} images holds {} values, expected {}",
                batch.images.len(),
                n * c * h * w
            )));
        }
        let Batch { images, labels } = batch.into_owned();
        let mut values: HashMap<ValueRef, Value<B>> = HashMap::new();
        let images = Tensor::<B, 4>::from_data(TensorData::new(images, [n, c, h, w]), &self.device);
        values.insert(ValueRef { node: self.input, port: 0 }, Value::F4(images));
        if let Some(l) = self.labels {
            let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &self.device);
            values.insert(ValueRef { node: l, port: 0 }, Value::I1(labels));
        }
        let mut peak = values.values().map(Value::bytes).sum::<usize>();
        let mut gradients = HashMap::new();
        let schedule = self.graph.schedule.clone();
        for (step, &node) in schedule.iter().enumerate() {
            if forward_only && self.graph.g[node].phase != Phase::Forward {
                continue;
            }
            let op = self.graph.g[node].op.clone();
            // Inputs read for the last time are moved, not copied, and inputs the op overwrites
            // are taken from the persistent store: a backend can then work in place.
            let ins = self.graph.inputs(node);
            let writes = op.def().writes_inputs();
            let last_use = if forward_only { &self.forward_last_use } else { &self.last_use };
            let keep = [self.graph.logits, self.graph.loss];
            let mut inputs = Vec::with_capacity(ins.len());
            for (i, v) in ins.iter().enumerate() {
                let last_here =
                    last_use.get(v) == Some(&step) && !ins[i + 1..].contains(v) && !keep.contains(&Some(*v));
                let owned = if writes.contains(&i) {
                    self.persistent.remove(&v.node)
                } else if last_here {
                    values.remove(v)
                } else {
                    None
                };
                inputs.push(match owned {
                    Some(x) => x,
                    None => self.fetch(&values, *v)?,
                });
            }
            if self.options.capture_gradients && matches!(op, Op::SgdUpdate(_)) {
                let param = self.graph.inputs(node)[0].node;
                gradients.insert(self.graph.g[param].name.clone(), inputs[1].to_f64_vec()?);
            }
            let started = self.options.profile.then(std::time::Instant::now);
            let outs = self.run_op(&op, node, inputs, lr, n)?;
            if let Some(t) = started {
                // Wait for the results so that the time is the op's, on asynchronous backends too.
                for v in &outs {
                    v.sync();
                }
                *self.profile.entry(node).or_default() += t.elapsed().as_secs_f64();
            }
            for (port, v) in outs.into_iter().enumerate() {
                values.insert(ValueRef { node, port: port as u8 }, v);
            }
            let live: usize = values.values().map(Value::bytes).sum();
            peak = peak.max(live);
            let outputs = [self.graph.logits, self.graph.loss];
            if forward_only {
                // Values no forward node reads (argmax indices, masks) go at once.
                values.retain(|v, _| {
                    outputs.contains(&Some(*v))
                        || self.forward_last_use.get(v).is_some_and(|last| *last > step)
                });
            } else {
                values.retain(|v, _| {
                    outputs.contains(&Some(*v)) || self.last_use.get(v).is_none_or(|last| *last > step)
                });
            }
        }
        let logits_ref =
            self.graph.logits.ok_or_else(|| RunError::Internal("the plan has no logits".into()))?;
        let logits = self.fetch(&values, logits_ref)?.to_f64_vec()?;
        let loss = match self.graph.loss {
            Some(l) => Some(self.fetch(&values, l)?.to_f64_vec()?[0]),
            None => None,
        };
        Ok(StepOutput { loss, logits, peak_bytes: peak, gradients })
    }

    fn fetch(&self, values: &HashMap<ValueRef, Value<B>>, v: ValueRef) -> Result<Value<B>, RunError> {
        if let Some(x) = values.get(&v) {
            return Ok(x.clone());
        }
        self.persistent.get(&v.node).cloned().ok_or_else(|| {
            RunError::Internal(format!("value `{}` is read after it was released", self.graph.value_name(v)))
        })
    }

    /// What a dropout gradient multiplies the kept entries by, given the rate: `1 / (1 - rate)`,
    /// or 1 when dropout is off (parity runs).
    fn dropout_grad_scale(&self) -> impl Fn(f64) -> f64 {
        let active = self.options.dropout;
        move |rate| if active { 1.0 / (1.0 - rate) } else { 1.0 }
    }

    /// A fused node step by step, each step as its own op.
    fn run_steps(
        &mut self,
        f: &FusedOp,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        lr: f64,
        n: usize,
    ) -> Result<Vec<Value<B>>, RunError> {
        let mut done: Vec<Vec<Value<B>>> = Vec::with_capacity(f.steps.len());
        for step in &f.steps {
            let args = step.inputs.iter().map(|i| resolve(i, &inputs, &done)).collect::<Result<_, _>>()?;
            let outs = self.run_op(&step.op, node, args, lr, n)?;
            done.push(outs);
        }
        Ok(f.outputs.iter().map(|&(s, p)| done[s][p as usize].clone()).collect())
    }

    /// A fused node on the backend's fused kernels, as [`select`] chose them.
    fn run_fusion(
        &mut self,
        fusion: &Fusion,
        f: &FusedOp,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        lr: f64,
        n: usize,
    ) -> Result<Vec<Value<B>>, RunError> {
        // The group's first op (the product or gradient producer), on its own inputs.
        let head = |this: &mut Self| -> Result<Value<B>, RunError> {
            let args =
                f.steps[0].inputs.iter().map(|i| resolve(i, &inputs, &[])).collect::<Result<_, _>>()?;
            let mut out = this.run_op(&f.steps[0].op, node, args, lr, n)?;
            Ok(out.swap_remove(0))
        };
        match *fusion {
            Fusion::BiasAct { bias, relu } => {
                let b = inputs[bias].f1()?;
                if let (Op::Conv2d(c), [FusedInput::External(x), FusedInput::External(w)]) =
                    (&f.steps[0].op, f.steps[0].inputs.as_slice())
                {
                    let (x, w) = (inputs[*x].f4()?, inputs[*w].f4()?);
                    return Ok(vec![Value::F4(B::conv2d_bias_act(x, w, b, &c.0, relu))]);
                }
                Ok(vec![match head(self)? {
                    Value::F4(z) => Value::F4(B::bias_act(z, b, relu)),
                    Value::F2(z) => Value::F2(B::bias_act(z, b, relu)),
                    v => return Err(RunError::Internal(format!("bias epilogue on {}", v.kind()))),
                }])
            }
            Fusion::BiasReluLrn { bias, lrn, keep_relu } => {
                let b = inputs[bias].f1()?;
                let (y, r) = B::bias_relu_lrn(head(self)?.f4()?, b, &lrn, keep_relu);
                let mut outs = vec![Value::F4(y)];
                outs.extend(r.map(Value::F4));
                Ok(outs)
            }
            Fusion::MaskedGrad { dropout, relu_y } => {
                let scale = self.dropout_grad_scale();
                Ok(vec![match head(self)? {
                    Value::F4(g) => {
                        let y = relu_y.map(|y| inputs[y].f4()).transpose()?;
                        let mask = dropout.map(|(m, r)| inputs[m].m4().map(|m| (m, scale(r)))).transpose()?;
                        Value::F4(B::masked_grad(g, y, mask))
                    }
                    Value::F2(g) => {
                        let y = relu_y.map(|y| inputs[y].f2()).transpose()?;
                        let mask = dropout.map(|(m, r)| inputs[m].m2().map(|m| (m, scale(r)))).transpose()?;
                        Value::F2(B::masked_grad(g, y, mask))
                    }
                    g => return Err(RunError::Internal(format!("a gradient epilogue on {}", g.kind()))),
                }])
            }
            Fusion::LrnReluGrad { x, y, dy, lrn } => Ok(vec![Value::F4(B::lrn_relu_backward(
                inputs[x].f4()?,
                inputs[y].f4()?,
                inputs[dy].f4()?,
                &lrn,
            ))]),
            Fusion::PoolReluGrad { dy, argmax, relu_y, pool } => {
                Ok(vec![Value::F4(B::max_pool_relu_backward(
                    inputs[dy].f4()?,
                    inputs[argmax].i4()?,
                    inputs[relu_y].f4()?,
                    &pool,
                ))])
            }
        }
    }

    fn run_op(
        &mut self,
        op: &Op,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        lr: f64,
        n: usize,
    ) -> Result<Vec<Value<B>>, RunError> {
        if let Op::Fused(f) = op {
            let fusion = if self.options.fused_kernels { self.fusions.get(&node).cloned() } else { None };
            return match fusion {
                Some(fusion) => self.run_fusion(&fusion, f, node, inputs, lr, n),
                None => self.run_steps(f, node, inputs, lr, n),
            };
        }
        let one = |v: Value<B>| Ok(vec![v]);
        match op {
            Op::Conv2d(c) => one(Value::F4(B::conv2d_plain(inputs[0].f4()?, inputs[1].f4()?, &c.0))),
            Op::Conv2dBackwardData(c) => {
                one(Value::F4(B::conv2d_data_grad(inputs[0].f4()?, inputs[1].f4()?, &c.attrs, c.input_hw)))
            }
            Op::Conv2dBackwardWeight(c) => {
                one(Value::F4(B::conv2d_weight_grad(inputs[0].f4()?, inputs[1].f4()?, &c.0)))
            }
            Op::Linear(_) => one(Value::F2(inputs[0].f2()?.matmul(inputs[1].f2()?.transpose()))),
            Op::LinearBackwardData(_) => one(Value::F2(inputs[0].f2()?.matmul(inputs[1].f2()?))),
            Op::LinearBackwardWeight(_) => {
                // dy^T is small (batch x out): a contiguous copy lets the product run at full speed.
                let dyt = inputs[1].f2()?.transpose();
                let dyt = Tensor::<B, 2>::from_data(dyt.into_data(), &self.device);
                one(Value::F2(dyt.matmul(inputs[0].f2()?)))
            }
            Op::BiasAdd(_) => {
                let b = inputs[1].f1()?;
                let c = b.dims()[0];
                match &inputs[0] {
                    Value::F4(y) => one(Value::F4(y.clone() + b.reshape([1, c, 1, 1]))),
                    Value::F2(y) => one(Value::F2(y.clone() + b.reshape([1, c]))),
                    v => Err(RunError::Internal(format!("bias_add on {}", v.kind()))),
                }
            }
            Op::BiasGrad(_) => match &inputs[0] {
                Value::F4(dy) => {
                    let c = dy.dims()[1];
                    one(Value::F1(dy.clone().sum_dim(0).sum_dim(2).sum_dim(3).reshape([c])))
                }
                Value::F2(dy) => {
                    let c = dy.dims()[1];
                    one(Value::F1(dy.clone().sum_dim(0).reshape([c])))
                }
                v => Err(RunError::Internal(format!("bias_grad on {}", v.kind()))),
            },
            Op::Relu(_) => match &inputs[0] {
                Value::F4(x) => one(Value::F4(relu(x.clone()))),
                Value::F2(x) => one(Value::F2(relu(x.clone()))),
                v => Err(RunError::Internal(format!("relu on {}", v.kind()))),
            },
            Op::ReluGrad(_) => match (&inputs[0], &inputs[1]) {
                (Value::F4(dy), Value::F4(y)) => {
                    one(Value::F4(dy.clone().mask_fill(y.clone().lower_equal_elem(0.0), 0.0)))
                }
                (Value::F2(dy), Value::F2(y)) => {
                    one(Value::F2(dy.clone().mask_fill(y.clone().lower_equal_elem(0.0), 0.0)))
                }
                (a, b) => Err(RunError::Internal(format!("relu_grad on {} and {}", a.kind(), b.kind()))),
            },
            Op::Add(_) | Op::AddN(_) => {
                let mut acc = inputs[0].clone();
                for v in &inputs[1..] {
                    acc = match (acc, v) {
                        (Value::F4(a), Value::F4(b)) => Value::F4(a + b.clone()),
                        (Value::F2(a), Value::F2(b)) => Value::F2(a + b.clone()),
                        (Value::F1(a), Value::F1(b)) => Value::F1(a + b.clone()),
                        (a, b) => {
                            return Err(RunError::Internal(format!("add of {} and {}", a.kind(), b.kind())))
                        }
                    };
                }
                one(acc)
            }
            Op::Lrn(l) => one(Value::F4(B::lrn_forward(inputs[0].f4()?, &LrnParams::from_op(l)))),
            Op::LrnGrad(l) => one(Value::F4(B::lrn_backward(
                inputs[0].f4()?,
                inputs[1].f4()?,
                inputs[2].f4()?,
                &LrnParams::from_op(&l.0),
            ))),
            Op::MaxPool(p) => {
                let (y, arg) = B::max_pool_forward(inputs[0].f4()?, &PoolParams::from_attrs(&p.attrs));
                if p.argmax {
                    Ok(vec![Value::F4(y), Value::I4(arg)])
                } else {
                    one(Value::F4(y))
                }
            }
            Op::MaxPoolGrad(p) => one(Value::F4(B::max_pool_backward(
                inputs[0].f4()?,
                inputs[1].i4()?,
                p.input_hw,
                &PoolParams::from_attrs(&p.attrs),
            ))),
            Op::Dropout(d) => {
                if !d.training {
                    return one(inputs[0].clone());
                }
                let keep = 1.0 - d.rate;
                let dims = inputs[0].dims();
                let count: usize = dims.iter().product();
                let active = self.options.dropout && !self.eval;
                let mask: Vec<bool> = if active {
                    let name = self.graph.g[node].name.clone();
                    let mut rng = Rng::for_stream(
                        self.seed,
                        &[b"dropout", name.as_bytes(), &self.steps_done.to_le_bytes()],
                    );
                    (0..count).map(|_| rng.uniform() < keep).collect()
                } else {
                    vec![true; count]
                };
                let scale = if active { 1.0 / keep } else { 1.0 };
                match &inputs[0] {
                    Value::F2(x) => {
                        let m = Tensor::<B, 2, burn::tensor::Bool>::from_data(
                            TensorData::new(mask, [dims[0], dims[1]]),
                            &self.device,
                        );
                        let y = x.clone().mask_fill(m.clone().bool_not(), 0.0) * scale;
                        Ok(vec![Value::F2(y), Value::M2(m)])
                    }
                    Value::F4(x) => {
                        let m = Tensor::<B, 4, burn::tensor::Bool>::from_data(
                            TensorData::new(mask, [dims[0], dims[1], dims[2], dims[3]]),
                            &self.device,
                        );
                        let y = x.clone().mask_fill(m.clone().bool_not(), 0.0) * scale;
                        Ok(vec![Value::F4(y), Value::M4(m)])
                    }
                    v => Err(RunError::Internal(format!("dropout on {}", v.kind()))),
                }
            }
            Op::DropoutGrad(d) => {
                let scale = self.dropout_grad_scale()(d.rate);
                match (&inputs[0], &inputs[1]) {
                    (Value::F2(dy), Value::M2(m)) => {
                        one(Value::F2(dy.clone().mask_fill(m.clone().bool_not(), 0.0) * scale))
                    }
                    (Value::F4(dy), Value::M4(m)) => {
                        one(Value::F4(dy.clone().mask_fill(m.clone().bool_not(), 0.0) * scale))
                    }
                    (a, b) => {
                        Err(RunError::Internal(format!("dropout_grad on {} and {}", a.kind(), b.kind())))
                    }
                }
            }
            Op::Flatten(_) => {
                let x = inputs[0].f4()?;
                let [b, c, h, w] = x.dims();
                one(Value::F2(x.reshape([b, c * h * w])))
            }
            Op::Reshape(r) => {
                let x = inputs[0].f2()?;
                let b = x.dims()[0];
                match r.dims.as_slice() {
                    [c, h, w] => one(Value::F4(x.reshape([b, *c, *h, *w]))),
                    d => Err(RunError::Internal(format!("reshape to {d:?}"))),
                }
            }
            Op::SoftmaxCrossEntropy(_) => {
                let logits = inputs[0].f2()?;
                let labels = inputs[1].i1()?;
                let logp = log_softmax(logits, 1);
                let picked = logp.clone().gather(1, labels.reshape([n, 1]));
                let loss = picked.mean().neg();
                Ok(vec![Value::F1(loss), Value::F2(logp.exp())])
            }
            Op::SoftmaxCrossEntropyGrad(_) => {
                let probs = inputs[0].f2()?;
                let k = probs.dims()[1];
                let onehot: Tensor<B, 2> = inputs[1].i1()?.one_hot::<2>(k).float();
                one(Value::F2((probs - onehot) / n as f64))
            }
            Op::SgdUpdate(u) => {
                let ins = self.graph.inputs(node);
                let (w_node, v_node) = (ins[0].node, ins[2].node);
                let OptimizerDecl::Sgd { momentum, weight_decay, .. } = self.graph.spec.optimizer;
                let p = SgdParams { momentum, rate: lr * u.lr_mult, decay: u.decay_mult * weight_decay };
                let mut it = inputs.into_iter();
                let (w, g, v) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                let (w, v) = match (w, g, v) {
                    (Value::F4(w), Value::F4(g), Value::F4(v)) => {
                        let (w, v) = B::sgd_update(w, g, v, &p);
                        (Value::F4(w), Value::F4(v))
                    }
                    (Value::F2(w), Value::F2(g), Value::F2(v)) => {
                        let (w, v) = B::sgd_update(w, g, v, &p);
                        (Value::F2(w), Value::F2(v))
                    }
                    (Value::F1(w), Value::F1(g), Value::F1(v)) => {
                        let (w, v) = B::sgd_update(w, g, v, &p);
                        (Value::F1(w), Value::F1(v))
                    }
                    (a, b, c) => {
                        return Err(RunError::Internal(format!(
                            "sgd_update on {} {} {}",
                            a.kind(),
                            b.kind(),
                            c.kind()
                        )))
                    }
                };
                self.persistent.insert(w_node, w);
                self.persistent.insert(v_node, v);
                Ok(vec![])
            }
            Op::Slice(sl) => {
                let dim = sl.dim;
                match &inputs[0] {
                    Value::F4(x) => one(Value::F4(x.clone().narrow(dim, sl.start, sl.len))),
                    Value::F2(x) => one(Value::F2(x.clone().narrow(dim, sl.start, sl.len))),
                    Value::F1(x) => one(Value::F1(x.clone().narrow(dim, sl.start, sl.len))),
                    v => Err(RunError::Internal(format!("slice of {}", v.kind()))),
                }
            }
            Op::Concat(c) => {
                let dim = c.dim;
                match &inputs[0] {
                    Value::F4(_) => {
                        let parts = inputs.iter().map(Value::f4).collect::<Result<Vec<_>, _>>()?;
                        one(Value::F4(Tensor::cat(parts, dim)))
                    }
                    Value::F2(_) => {
                        let parts = inputs.iter().map(Value::f2).collect::<Result<Vec<_>, _>>()?;
                        one(Value::F2(Tensor::cat(parts, dim)))
                    }
                    v => Err(RunError::Internal(format!("concat of {}", v.kind()))),
                }
            }
            Op::Input(_) | Op::Labels(_) | Op::Param(_) | Op::State(_) | Op::Fused(_) => {
                Err(RunError::Internal(format!("`{}` is not a scheduled op", op.def().name())))
            }
        }
    }
}

/// The value a fused step reads: an input of the fused node, or an earlier step's output.
fn resolve<B: Backend>(
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

/// A float tensor of `shape` (rank 1, 2 or 4) from host values.
pub fn tensor_of<B: Backend, E: burn::tensor::Element>(
    values: Vec<E>,
    shape: &[usize],
    device: &B::Device,
) -> Result<Value<B>, RunError> {
    Ok(match *shape {
        [a] => Value::F1(Tensor::from_data(TensorData::new(values, [a]), device)),
        [a, b] => Value::F2(Tensor::from_data(TensorData::new(values, [a, b]), device)),
        [a, b, c, d] => Value::F4(Tensor::from_data(TensorData::new(values, [a, b, c, d]), device)),
        _ => return Err(RunError::Internal(format!("a parameter of shape {shape:?}"))),
    })
}
