//! The gradient all-reduce of a data-parallel plan: one bucket of gradients copied to the host,
//! summed across the run's processes in one collective call, divided by their number and copied
//! back (on CUDA, NCCL on device memory would skip the copies; see the README).

use std::time::Instant;

use super::Executor;
use crate::distributed::sync::is_f64;
use crate::error::RunError;
use crate::kernels::KernelBackend;
use crate::value::Value;

impl<B: KernelBackend> Executor<B> {
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
        let shapes: Vec<Vec<usize>> = inputs.iter().map(Value::dims).collect();
        let out = if is_f64::<B>() {
            let mut flat = Vec::new();
            for v in inputs {
                flat.extend(v.to_f64_vec()?);
            }
            self.world().all_reduce_sum_f64(&mut flat);
            let scale = 1.0 / replicas as f64;
            flat.iter_mut().for_each(|x| *x *= scale);
            split(flat, &shapes, &self.device)?
        } else {
            let mut flat = Vec::new();
            for v in inputs {
                flat.extend(v.to_f32_vec()?);
            }
            self.world().all_reduce_sum_f32(&mut flat);
            let scale = 1.0 / replicas as f32;
            flat.iter_mut().for_each(|x| *x *= scale);
            split(flat, &shapes, &self.device)?
        };
        self.all_reduce_seconds += started.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// `flat` cut into tensors of `shapes`, in order.
fn split<B: KernelBackend, E: burn::tensor::Element>(
    flat: Vec<E>,
    shapes: &[Vec<usize>],
    device: &B::Device,
) -> Result<Vec<Value<B>>, RunError> {
    let mut out = Vec::with_capacity(shapes.len());
    let mut at = 0;
    for shape in shapes {
        let n: usize = shape.iter().product();
        let part = flat.get(at..at + n).ok_or_else(|| RunError::Internal("a short all-reduce".into()))?;
        out.push(Value::from_host(part.to_vec(), shape, device)?);
        at += n;
    }
    Ok(out)
}
