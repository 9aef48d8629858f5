//! Collective communication between the replicas of a data-parallel run: the gradient all-reduce
//! that `passes::all_reduce` inserts between the gradient producers and the optimizer update.
//! It appears only after autodiff, so it has no gradient rule.

use serde::{Deserialize, Serialize};

use super::{FusionClass, Inferred, OpDef, ShapeError};
use crate::value::TensorType;

/// One bucket of gradients averaged over `replicas` processes: output `i` is the mean over every
/// replica of input `i` (each replica's gradient is already the mean over its own batch, so the
/// result is the gradient of the mean loss over the replicas' combined batch). The runtime sums
/// the bucket in one collective call (MPI on the host, NCCL on CUDA devices) and divides by
/// `replicas`. Buckets are numbered in the order their gradients become ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllReduceMean {
    pub bucket: usize,
    pub replicas: usize,
}

impl OpDef for AllReduceMean {
    fn name(&self) -> &'static str {
        "all_reduce_mean"
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn attrs(&self) -> String {
        format!("bucket={} replicas={}", self.bucket, self.replicas)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        if self.replicas < 2 {
            return Err(ShapeError::new(
                format!("an all-reduce over {} replica(s)", self.replicas),
                "internal: the all-reduce pass inserts nodes only for 2 or more replicas",
            ));
        }
        if let Some(t) = inputs.iter().find(|t| t.batched) {
            return Err(ShapeError::new(
                format!("an all-reduce of a per-sample value {t}"),
                "internal: only gradients of parameters are averaged across replicas",
            ));
        }
        Ok(inputs.iter().map(|t| (*t).clone()).collect::<Vec<_>>().into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    /// The averages are written over the gradients they average, as the host path (MPI) does.
    /// On CUDA, NCCL writes fresh buffers while it holds the gradients, so there a bucket in
    /// flight needs its size twice, which this plan does not count; the host path's receive
    /// buffers, kept from step to step, are outside the arena too.
    fn in_place_ports(&self, inputs: usize) -> Vec<(u8, usize)> {
        (0..inputs).filter_map(|i| Some((u8::try_from(i).ok()?, i))).collect()
    }
}
