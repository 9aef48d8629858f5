//! The plan interpreter: runs a plan's schedule op by op (fused nodes as one), holding each value
//! until its planned last use and the parameters and optimizer state across steps.
//!
//! - [`ops`]: each catalog op on the backend, written once for every rank;
//! - [`fused`]: fused nodes, on the backend's fused kernels ([`crate::select`]) or step by step;
//! - [`bucket`]: the gradient all-reduce of a data-parallel plan, on the run's [`Collective`],
//!   overlapped with the nodes after it; [`all_reduce`]: the rest of a data-parallel run.

mod all_reduce;
mod batch;
mod bucket;
mod fused;
mod loss_scale;
mod ops;
mod options;
mod precision;

pub use batch::{Batch, StepOutput};
pub use bucket::{AllReduceTimes, Timeline};
pub(crate) use options::StepCtx;
pub use options::{ExecOptions, Pass};

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use alexir::catalog::Op;
use alexir::ir::{Graph, Mode, Phase, ValueRef, HOST};
use alexir::plan::Plan;
use burn::tensor::{Int, Tensor, TensorData};
use petgraph::stable_graph::NodeIndex;

use crate::distributed::{Collective, Single};
use crate::error::RunError;
use crate::init::init_values;
use crate::kernels::KernelBackend;
use crate::select::{select, Fusion};
use crate::value::Value;

/// Runs one plan on backend `B`.
pub struct Executor<B: KernelBackend> {
    pub graph: Graph,
    pub mode: Mode,
    pub device: B::Device,
    /// The device of each of the plan's devices (`device` alone unless the plan is placed on
    /// several, [`crate::placement`]).
    devices: Vec<B::Device>,
    pub options: ExecOptions,
    /// Parameters and optimizer state, by node.
    persistent: HashMap<NodeIndex, Value<B>>,
    /// The schedule position after which each transient value is dropped, for each pass.
    last_use: HashMap<ValueRef, usize>,
    forward_last_use: HashMap<ValueRef, usize>,
    input: NodeIndex,
    labels: Option<NodeIndex>,
    /// Steps run so far (dropout masks depend on it).
    pub steps_done: u64,
    /// Seconds spent in each scheduled node, when profiling; and each node's start and end, and
    /// each gradient bucket's start and completion, in the order they ran (for a step's trace).
    pub profile: HashMap<NodeIndex, f64>,
    pub timeline: Timeline,
    /// The fused kernels of each fused node that has them.
    fusions: HashMap<NodeIndex, Fusion>,
    seed: u64,
    /// The run's float type: what the plan's f32 values are here (f32, or f64 in a
    /// double-precision run).
    float_dtype: burn::tensor::DType,
    /// The processes this plan's replicas run in ([`Single`] unless [`Executor::join`]ed).
    world: Arc<dyn Collective>,
    /// The processes the plan is compiled for.
    replicas: usize,
    /// Time in the gradient all-reduce so far.
    pub all_reduce: AllReduceTimes,
    /// Each bucket's host buffers, kept from step to step ([`bucket`]).
    bucket_buffers: HashMap<usize, Box<dyn Any + Send>>,
    /// The running step's first bucket start and last bucket completion.
    bucket_span: Option<(Instant, Instant)>,
}

impl<B: KernelBackend> Executor<B> {
    /// Sets up a plan with freshly initialised parameters.
    pub fn new(plan: &Plan, device: B::Device) -> Result<Self, RunError> {
        Self::new_on(plan, vec![device])
    }

    /// Sets up a plan placed on `devices.len()` devices (`alexc compile --devices N`): node
    /// placed on device `d` runs on `devices[d]`.
    pub fn new_on(plan: &Plan, devices: Vec<B::Device>) -> Result<Self, RunError> {
        crate::placement::check_device_count(plan.graph.devices, devices.len())?;
        if let Some(why) = B::refuses_precision(plan.graph.spec.precision, &devices[0]) {
            return Err(RunError::Input(why));
        }
        let device = devices[0].clone();
        let graph = plan.graph.clone();
        let seed = graph.spec.training.seed;
        let mut persistent = HashMap::new();
        let (mut input, mut labels) = (None, None);
        for n in graph.node_indices() {
            let node = &graph.g[n];
            match &node.op {
                Op::Param(p) => {
                    let values = init_values(p, &node.name, seed);
                    let on = &devices[usize::from(node.device)];
                    persistent.insert(n, Value::from_host(values, &p.shape, on)?);
                }
                Op::State(s) => {
                    let values = loss_scale::initial_state(s.kind, s.shape.iter().product());
                    let on = &devices[usize::from(node.device)];
                    persistent.insert(n, Value::from_host(values, &s.shape, on)?);
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
        let fusions = graph
            .node_indices()
            .into_iter()
            .filter_map(|n| match &graph.g[n].op {
                Op::Fused(f) => select(f).map(|k| (n, k)),
                _ => None,
            })
            .collect();
        // The device's default float type (a test may make it f64), as a new tensor has it.
        let float_dtype = burn::tensor::Tensor::<B, 1>::zeros([1], &device).dtype();
        Ok(Executor {
            graph,
            mode: plan.mode,
            device,
            devices,
            options: ExecOptions::default(),
            persistent,
            last_use,
            forward_last_use,
            input,
            labels,
            steps_done: 0,
            profile: HashMap::new(),
            timeline: Timeline::default(),
            fusions,
            seed,
            float_dtype,
            world: Arc::new(Single),
            replicas: plan.replicas,
            all_reduce: AllReduceTimes::default(),
            bucket_buffers: HashMap::new(),
            bucket_span: None,
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
        let v = Value::from_host(values, &shape, self.device_of(n))?;
        self.persistent.insert(n, v);
        Ok(())
    }

    /// Runs one step on `batch` at learning rate `lr` (ignored by inference plans). A batch
    /// passed by value goes to the device without a copy of its images on the host.
    pub fn step<'a>(&mut self, batch: impl Into<Cow<'a, Batch>>, lr: f64) -> Result<StepOutput, RunError> {
        let out = self.run(batch.into(), Pass::Step, lr)?;
        self.steps_done += 1;
        Ok(out)
    }

    /// Runs the forward nodes only, dropout off and nothing updated: logits (and the loss, for a
    /// training plan) of `batch`, for evaluation.
    pub fn forward<'a>(&mut self, batch: impl Into<Cow<'a, Batch>>) -> Result<StepOutput, RunError> {
        self.run(batch.into(), Pass::Forward, 0.0)
    }

    fn run(&mut self, batch: Cow<'_, Batch>, pass: Pass, lr: f64) -> Result<StepOutput, RunError> {
        let n = batch.len();
        let [c, h, w] = self.input_shape();
        if batch.images.len() != n * c * h * w {
            return Err(RunError::Internal(format!(
                "a batch of {n} images holds {} values, expected {}",
                batch.images.len(),
                n * c * h * w
            )));
        }
        let ctx = StepCtx { pass, lr, batch: n };
        let Batch { images, labels } = batch.into_owned();
        let mut values: HashMap<ValueRef, Value<B>> = HashMap::new();
        let images = TensorData::new(images, [n, c, h, w]);
        let input = ValueRef { node: self.input, port: 0 };
        // A placed plan keeps the input on the host and uploads it at each transfer from there.
        let host_images = if self.graph.g[self.input].device == HOST {
            Some(images)
        } else {
            values.insert(input, Tensor::<B, 4>::from_data(images, self.device_of(self.input)).into());
            None
        };
        if let Some(l) = self.labels {
            let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), self.device_of(l));
            values.insert(ValueRef { node: l, port: 0 }, labels.into());
        }
        let mut peak = values.values().map(Value::bytes).sum::<usize>();
        let mut gradients = HashMap::new();
        // Gradient buckets whose all-reduce is in flight, by node, until a node reads them.
        let mut pending = HashMap::new();
        let outputs = [self.graph.logits, self.graph.loss];
        let schedule = self.graph.schedule.clone();
        for (step, &node) in schedule.iter().enumerate() {
            if pass == Pass::Forward && self.graph.g[node].phase != Phase::Forward {
                continue;
            }
            let op = self.graph.g[node].op.clone();
            let ins = self.graph.inputs(node);
            // A gradient bucket is waited for where its averages are first read.
            for v in &ins {
                if let Some(bucket) = pending.remove(&v.node) {
                    let averages = self.finish_all_reduce_mean(bucket)?;
                    insert_outputs(&mut values, v.node, averages);
                }
            }
            let last_use = match pass {
                Pass::Step => &self.last_use,
                Pass::Forward => &self.forward_last_use,
            };
            // Inputs read for the last time are moved, not copied, and inputs the op overwrites
            // are taken from the persistent store: a backend can then work in place.
            let writes = op.def().writes_inputs();
            let upload = match (&host_images, &op) {
                (Some(images), Op::Transfer(t)) if ins == [input] => Some((images, usize::from(t.to))),
                _ => None,
            };
            let mut inputs = Vec::with_capacity(ins.len());
            for (i, v) in ins.iter().enumerate().filter(|_| upload.is_none()) {
                let last_here = last_use.get(v) == Some(&step)
                    && !ins[i + 1..].contains(v)
                    && !outputs.contains(&Some(*v));
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
                let param = ins[0].node;
                gradients.insert(self.graph.g[param].name.clone(), inputs[1].to_f64_vec()?);
            }
            let started = self.options.profile.then(std::time::Instant::now);
            let outs = match (upload, &op) {
                (Some((images, to)), _) => vec![crate::placement::upload::<B>(images, &self.devices[to])],
                (None, Op::AllReduceMean(a)) if self.options.all_reduce => {
                    pending.insert(node, self.start_all_reduce_mean(node, inputs, a)?);
                    vec![]
                }
                (None, Op::AllReduceMean(_)) => inputs,
                (None, _) => {
                    let inputs = self.conform_inputs(node, inputs);
                    let outs = self.run_op(&op, node, inputs, &ctx)?;
                    self.conform_outputs(node, outs)
                }
            };
            if let Some(t) = started {
                // Wait for the results so that the time is the op's, on asynchronous backends too.
                for v in &outs {
                    v.sync();
                }
                *self.profile.entry(node).or_default() += t.elapsed().as_secs_f64();
                self.timeline.nodes.push((node, t, Instant::now()));
            }
            insert_outputs(&mut values, node, outs);
            for bucket in pending.values_mut() {
                self.test_bucket(bucket);
            }
            peak = peak.max(values.values().map(Value::bytes).sum());
            // Values no later node of this pass reads go now (in a forward pass: argmax indices,
            // masks and the saved activations only the backward pass would read).
            let last_use = match pass {
                Pass::Step => &self.last_use,
                Pass::Forward => &self.forward_last_use,
            };
            values.retain(|v, _| {
                outputs.contains(&Some(*v))
                    || match last_use.get(v) {
                        Some(last) => *last > step,
                        None => pass == Pass::Step,
                    }
            });
        }
        // A bucket nothing read (none in a compiled plan) is still waited for: MPI owns its buffers.
        for (_, bucket) in pending.drain() {
            self.finish_all_reduce_mean(bucket)?;
        }
        self.end_step_of_buckets();
        let logits_ref =
            self.graph.logits.ok_or_else(|| RunError::Internal("the plan has no logits".into()))?;
        let logits = self.fetch(&values, logits_ref)?.to_f64_vec()?;
        let loss = match self.graph.loss {
            Some(l) => Some(self.fetch(&values, l)?.to_f64_vec()?[0]),
            None => None,
        };
        Ok(StepOutput { loss, logits, peak_bytes: peak, gradients })
    }

    /// The device node `n` runs on.
    fn device_of(&self, n: NodeIndex) -> &B::Device {
        &self.devices[usize::from(self.graph.g[n].device)]
    }

    fn fetch(&self, values: &HashMap<ValueRef, Value<B>>, v: ValueRef) -> Result<Value<B>, RunError> {
        if let Some(x) = values.get(&v) {
            return Ok(x.clone());
        }
        self.persistent.get(&v.node).cloned().ok_or_else(|| {
            RunError::Internal(format!("value `{}` is read after it was released", self.graph.value_name(v)))
        })
    }

    /// What a dropout mask or its gradient multiplies the kept entries by: `1 / (1 - rate)` in a
    /// training step with dropout on; 1 in evaluation and in parity runs (dropout off).
    fn dropout_scale(&self, ctx: &StepCtx, rate: f64) -> Option<f64> {
        (self.options.dropout && ctx.pass == Pass::Step).then(|| 1.0 / (1.0 - rate))
    }
}

/// `outs` as the values of `node`'s ports, in order.
fn insert_outputs<B: KernelBackend>(
    values: &mut HashMap<ValueRef, Value<B>>,
    node: NodeIndex,
    outs: Vec<Value<B>>,
) {
    for (port, v) in outs.into_iter().enumerate() {
        values.insert(ValueRef { node, port: port as u8 }, v);
    }
}
