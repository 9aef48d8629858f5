//! The gradient all-reduce of one bucket, overlapped with the rest of the step: the schedule's
//! `all_reduce_mean` node starts the sum of its gradients across the run's processes
//! ([`Executor::start_all_reduce_mean`]), the executor goes on with the next nodes and lets the
//! engine advance between them ([`Executor::test_bucket`]), and the first node that reads one of
//! the bucket's averages waits for them ([`Executor::finish_all_reduce_mean`]). The compiler
//! schedules those readers (the updates) last, so the backward pass hides the communication.
//!
//! The sum goes through the host: each gradient is handed over as a host buffer (without a copy
//! on the CPU backend, whose tensors are host memory), a bucket of several is copied into one
//! send buffer (a bucket of one is sent from its own), the engine sums into a receive buffer kept
//! from step to step, and the averages are written back into the gradients' buffers, which become
//! the node's outputs. On CUDA, NCCL averages the bucket on device memory instead
//! (`distributed::on_device`), on a stream of its own, in flight the same way (its start waits
//! for cubecl's queued work, since cubecl does not expose its stream). The compiler runs each
//! bucket's gradients as soon as they are ready, so that fc6's, the largest, has the
//! convolutions' backward pass to hide behind.

use std::any::Any;
use std::time::Instant;

use alexir::catalog::AllReduceMean;
use petgraph::stable_graph::NodeIndex;

use super::Executor;
use crate::distributed::in_flight::{Buffers, HostFloat, SumInFlight};
use crate::distributed::on_device::{start_all_reduce_mean_on_device, DeviceMeanInFlight};
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::value::Value;

/// Time in the gradient all-reduce, summed over the steps run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AllReduceTimes {
    /// Seconds the step stood still to start the sums: the gradients handed over as host
    /// buffers, a bucket's copied into one send buffer, the engine's call. On CUDA (NCCL) it
    /// includes waiting for cubecl's queued work, most of it computation, not communication.
    pub starting: f64,
    /// Seconds in the engine's calls between nodes that let it advance (MPI moves and sums the
    /// data of a non-blocking collective inside them).
    pub testing: f64,
    /// Seconds waiting where a bucket's averages are first read: the engine finishing the sum,
    /// and the other ranks reaching it.
    pub waiting: f64,
    /// Seconds scaling the sums into averages and handing them back as tensors.
    pub averaging: f64,
    /// Seconds from each step's first bucket start to its last bucket seen complete (a bucket is
    /// seen complete between nodes or where it is waited for): the communication, hidden or not.
    pub span: f64,
    /// Steps that reduced any bucket.
    pub steps: u64,
}

impl AllReduceTimes {
    /// Seconds the step stood still for the all-reduce, all parts together.
    pub fn exposed(&self) -> f64 {
        self.starting + self.testing + self.waiting + self.averaging
    }

    /// The times of the steps run between `earlier` and `self`.
    pub fn since(&self, earlier: &AllReduceTimes) -> AllReduceTimes {
        AllReduceTimes {
            starting: self.starting - earlier.starting,
            testing: self.testing - earlier.testing,
            waiting: self.waiting - earlier.waiting,
            averaging: self.averaging - earlier.averaging,
            span: self.span - earlier.span,
            steps: self.steps - earlier.steps,
        }
    }
}

/// When a profiled step's nodes ran, and its buckets were in flight (from their start to when
/// they were seen complete), for `alexrt bench --trace`.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub nodes: Vec<(NodeIndex, Instant, Instant)>,
    /// The bucket node, its bucket number, its start and its completion.
    pub buckets: Vec<(NodeIndex, usize, Instant, Instant)>,
}

/// A bucket whose sum is in flight.
pub(super) struct PendingBucket<B: KernelBackend> {
    node: NodeIndex,
    bucket: usize,
    mean: Box<dyn InFlightMean<B>>,
    /// When a test between nodes first saw the sum complete.
    seen_complete: Option<Instant>,
    started: Instant,
}

/// A bucket's host buffers, kept for its next step (a [`Buffers`] of the run's precision).
type KeptBuffers = Box<dyn Any + Send>;

/// A bucket's averages, its buffers to keep, and the seconds its finish waited for the sums.
type Finished<B> = (Vec<Value<B>>, KeptBuffers, f64);

/// A bucket's mean in flight, whatever the engine and precision.
trait InFlightMean<B: KernelBackend> {
    fn test(&mut self) -> bool;
    /// Waits for the sums; returns the averages as tensors on `device`, in the bucket's order,
    /// the buffers to keep for the bucket's next step, and the seconds it waited (the rest of
    /// its time went into the averages).
    fn finish(self: Box<Self>, device: &B::Device) -> Result<Finished<B>, RunError>;
}

/// A mean summed on the host by the run's [`crate::distributed::Collective`].
struct HostMean<E: HostFloat> {
    sum: Box<dyn SumInFlight<E>>,
    /// The gradients' host buffers, which take the averages; empty for a bucket of one
    /// gradient, whose buffer is the send buffer.
    parts: Vec<Vec<E>>,
    shapes: Vec<Vec<usize>>,
    /// One over the replicas.
    scale: E,
}

impl<B: KernelBackend, E: HostFloat + Send> InFlightMean<B> for HostMean<E> {
    fn test(&mut self) -> bool {
        self.sum.test()
    }

    fn finish(self: Box<Self>, device: &B::Device) -> Result<Finished<B>, RunError> {
        let HostMean { sum, parts, shapes, scale } = *self;
        let waiting = Instant::now();
        let Buffers { send, recv } = sum.wait();
        let waited = waiting.elapsed().as_secs_f64();
        let (targets, send) = if parts.is_empty() { (vec![send], Vec::new()) } else { (parts, send) };
        let mut out = Vec::with_capacity(targets.len());
        let mut at = 0;
        for (mut target, shape) in targets.into_iter().zip(&shapes) {
            let sums = recv.get(at..at + target.len()).ok_or_else(|| {
                RunError::Internal("an all-reduce returned fewer values than it sent".into())
            })?;
            target.iter_mut().zip(sums).for_each(|(x, &s)| *x = s * scale);
            at += target.len();
            out.push(Value::from_host(target, shape, device)?);
        }
        Ok((out, Box::new(Buffers { send, recv }), waited))
    }
}

/// A mean on device memory (NCCL on CUDA), running on the collective's own stream.
struct OnDevice<B: KernelBackend>(Box<dyn DeviceMeanInFlight<B>>);

impl<B: KernelBackend> InFlightMean<B> for OnDevice<B> {
    fn test(&mut self) -> bool {
        self.0.test()
    }

    fn finish(self: Box<Self>, _device: &B::Device) -> Result<Finished<B>, RunError> {
        let waiting = Instant::now();
        let means = self.0.finish()?;
        Ok((means, Box::new(()), waiting.elapsed().as_secs_f64()))
    }
}

impl<B: KernelBackend> Executor<B> {
    /// Starts the mean over every replica of `inputs`, the gradients of bucket node `node`.
    pub(super) fn start_all_reduce_mean(
        &mut self,
        node: NodeIndex,
        inputs: Vec<Value<B>>,
        op: &AllReduceMean,
    ) -> Result<PendingBucket<B>, RunError> {
        let size = self.world().size();
        if size != op.replicas {
            return Err(RunError::Input(format!(
                "the plan averages gradients over {} replicas, but the run has {size} process(es); start it with `mpirun -np {}`",
                op.replicas, op.replicas
            )));
        }
        let started = Instant::now();
        let world = self.shared_world();
        let mean: Box<dyn InFlightMean<B>> =
            if let Some(on_device) = start_all_reduce_mean_on_device(&inputs, &*world)? {
                Box::new(OnDevice(on_device)) // NCCL on CUDA
            } else if super::all_reduce::is_f64::<B>() {
                self.start_host_mean::<f64>(inputs, op)?
            } else {
                self.start_host_mean::<f32>(inputs, op)?
            };
        let span = self.bucket_span.get_or_insert((started, started));
        span.1 = span.1.max(started);
        self.all_reduce.starting += started.elapsed().as_secs_f64();
        Ok(PendingBucket { node, bucket: op.bucket, mean, seen_complete: None, started })
    }

    fn start_host_mean<E: HostFloat + Send>(
        &mut self,
        inputs: Vec<Value<B>>,
        op: &AllReduceMean,
    ) -> Result<Box<dyn InFlightMean<B>>, RunError> {
        let shapes = inputs.iter().map(Value::dims).collect();
        let mut parts = inputs.into_iter().map(Value::into_host_vec::<E>).collect::<Result<Vec<_>, _>>()?;
        let mut buffers = self
            .bucket_buffers
            .remove(&op.bucket)
            .and_then(|b| b.downcast::<Buffers<E>>().ok())
            .map(|b| *b)
            .unwrap_or_default();
        if parts.len() == 1 {
            buffers.send = parts.pop().unwrap_or_default();
        } else {
            buffers.send.clear();
            parts.iter().for_each(|p| buffers.send.extend_from_slice(p));
        }
        let sum = E::start_sum(self.world(), buffers)?;
        Ok(Box::new(HostMean { sum, parts, shapes, scale: E::reciprocal(op.replicas) }))
    }

    /// Lets the engine advance a bucket's sum (between two nodes of the schedule).
    pub(super) fn test_bucket(&mut self, bucket: &mut PendingBucket<B>) {
        let started = Instant::now();
        if bucket.mean.test() && bucket.seen_complete.is_none() {
            bucket.seen_complete = Some(Instant::now());
        }
        self.all_reduce.testing += started.elapsed().as_secs_f64();
    }

    /// Waits for a bucket's sum: the averages, the node's outputs in port order.
    pub(super) fn finish_all_reduce_mean(
        &mut self,
        bucket: PendingBucket<B>,
    ) -> Result<Vec<Value<B>>, RunError> {
        let started = Instant::now();
        let PendingBucket { node, bucket, mean, seen_complete, started: began } = bucket;
        let device = self.device_of(node).clone();
        let (out, buffers, waited) = mean.finish(&device)?;
        self.bucket_buffers.insert(bucket, buffers);
        let complete = seen_complete.unwrap_or_else(Instant::now);
        if self.options.profile {
            self.timeline.buckets.push((node, bucket, began, complete));
        }
        if let Some(span) = &mut self.bucket_span {
            span.1 = span.1.max(complete);
        }
        self.all_reduce.waiting += waited;
        self.all_reduce.averaging += started.elapsed().as_secs_f64() - waited;
        Ok(out)
    }

    /// Closes a step's account of the all-reduce (after its last bucket was waited for).
    pub(super) fn end_step_of_buckets(&mut self) {
        if let Some((first, last)) = self.bucket_span.take() {
            self.all_reduce.span += last.duration_since(first).as_secs_f64();
            self.all_reduce.steps += 1;
        }
    }
}
