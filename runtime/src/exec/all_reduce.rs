//! The executor's part in a data-parallel run: the gradient all-reduce of a plan's buckets (one
//! bucket of gradients copied to the host, summed across the run's processes in one collective
//! call, divided by their number and copied back; on CUDA, NCCL averages it on device memory:
//! `distributed::on_device`), rank 0's weights broadcast to every rank, and the check that all
//! ranks hold the same weights, bit for bit.

use std::sync::Arc;
use std::time::Instant;

use super::Executor;
use crate::distributed::on_device::all_reduce_mean_on_device;
use crate::distributed::Collective;
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::value::Value;

impl<B: KernelBackend> Executor<B> {
    /// Makes this executor one replica of a data-parallel run over `world`, which must have as
    /// many processes as the plan is compiled for.
    pub fn join(&mut self, world: Arc<dyn Collective>) -> Result<(), RunError> {
        if world.size() != self.replicas {
            return Err(RunError::Input(if self.replicas == 1 {
                format!(
                    "this plan is compiled for one process, but the run has {} (mpirun -np {}); compile it with `alexc compile --replicas {}`",
                    world.size(),
                    world.size(),
                    world.size()
                )
            } else {
                format!(
                    "this plan is compiled for {} replicas, but the run has {} process(es); start it with `mpirun -np {}`, or compile it with `alexc compile --replicas {}`",
                    self.replicas,
                    world.size(),
                    self.replicas,
                    world.size()
                )
            }));
        }
        self.world = world;
        Ok(())
    }

    /// The run's processes: this one's rank and their number.
    pub fn world(&self) -> &dyn Collective {
        &*self.world
    }

    /// The same, shared (to hold while the executor is borrowed).
    pub fn shared_world(&self) -> Arc<dyn Collective> {
        Arc::clone(&self.world)
    }

    /// The mean over every replica of each input (a bucket of gradients).
    pub(super) fn all_reduce_mean(
        &mut self,
        inputs: Vec<Value<B>>,
        replicas: usize,
    ) -> Result<Vec<Value<B>>, RunError> {
        let size = self.world().size();
        if size != replicas {
            return Err(RunError::Input(format!(
                "the plan averages gradients over {replicas} replicas, but the run has {size} process(es); start it with `mpirun -np {replicas}`"
            )));
        }
        let started = Instant::now();
        let world = self.shared_world();
        let out = if let Some(out) = all_reduce_mean_on_device(&inputs, &*world)? {
            out // NCCL on CUDA
        } else if is_f64::<B>() {
            let scale = 1.0 / replicas as f64;
            mean_on_host(inputs, Value::to_f64_vec, |v| world.all_reduce_sum_f64(v), scale, &self.device)?
        } else {
            let scale = 1.0 / replicas as f32;
            mean_on_host(inputs, Value::to_f32_vec, |v| world.all_reduce_sum_f32(v), scale, &self.device)?
        };
        self.all_reduce_seconds += started.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// Whether backend `B` computes in double precision (the all-reduce then sums doubles).
fn is_f64<B: KernelBackend>() -> bool {
    std::mem::size_of::<B::FloatElem>() == 8
}

impl<B: KernelBackend> Executor<B> {
    /// Rank 0's parameters, optimizer state and step count on every rank (fresh, from
    /// `--weights` or from a checkpoint, which only rank 0 reads).
    pub fn broadcast_state(&mut self) -> Result<(), RunError> {
        let world = self.shared_world();
        if world.size() == 1 {
            return Ok(());
        }
        for (name, _) in self.persistent_names() {
            let missing = || RunError::Internal(format!("no persistent value `{name}`"));
            if is_f64::<B>() {
                let mut values = self.persistent_values_f64(&name).ok_or_else(missing)??;
                world.broadcast_f64(&mut values);
                self.set_persistent(&name, values)?;
            } else {
                let mut values = self.persistent_values(&name).ok_or_else(missing)??;
                world.broadcast_f32(&mut values);
                self.set_persistent(&name, values)?;
            }
        }
        let mut steps = self.steps_done.to_le_bytes().to_vec();
        world.broadcast_bytes(&mut steps);
        let steps: [u8; 8] =
            steps.try_into().map_err(|_| RunError::Internal("a broadcast step count".into()))?;
        self.steps_done = u64::from_le_bytes(steps);
        Ok(())
    }

    /// A CRC-32 of every parameter and state tensor, checked equal on every rank: `Ok(crc)` when
    /// all ranks hold the same weights, else an error saying how many ranks differ from rank 0.
    pub fn check_replicas_identical(&self) -> Result<u32, RunError> {
        let world = self.world();
        let mut crc = crc32fast::Hasher::new();
        for (name, _) in self.persistent_names() {
            let missing = || RunError::Internal(format!("no persistent value `{name}`"));
            for v in self.persistent_values_f64(&name).ok_or_else(missing)?? {
                crc.update(&v.to_le_bytes());
            }
        }
        let mine = crc.finalize();
        let mut rank0 = mine.to_le_bytes().to_vec();
        world.broadcast_bytes(&mut rank0);
        let mut differ = [f64::from(u8::from(rank0 != mine.to_le_bytes()))];
        world.all_reduce_sum_f64(&mut differ);
        if differ[0] > 0.0 {
            return Err(RunError::Internal(format!(
                "the replicas diverged: {} of {} ranks hold weights that differ from rank 0's",
                differ[0],
                world.size()
            )));
        }
        Ok(mine)
    }
}

/// `inputs` copied to the host into one buffer, summed across the run by `sum_across`, scaled by
/// `scale` (one over the replicas) and cut back into tensors of their shapes, in order.
fn mean_on_host<B: KernelBackend, E: burn::tensor::Element + std::ops::MulAssign>(
    inputs: Vec<Value<B>>,
    to_host: fn(&Value<B>) -> Result<Vec<E>, RunError>,
    sum_across: impl FnOnce(&mut [E]),
    scale: E,
    device: &B::Device,
) -> Result<Vec<Value<B>>, RunError> {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(Value::dims).collect();
    let mut flat = Vec::new();
    for v in &inputs {
        flat.extend(to_host(v)?);
    }
    sum_across(&mut flat);
    flat.iter_mut().for_each(|x| *x *= scale);
    let mut out = Vec::with_capacity(shapes.len());
    let mut at = 0;
    for shape in &shapes {
        let n: usize = shape.iter().product();
        let part = flat.get(at..at + n).ok_or_else(|| RunError::Internal("a short all-reduce".into()))?;
        out.push(Value::from_host(part.to_vec(), shape, device)?);
        at += n;
    }
    Ok(out)
}
