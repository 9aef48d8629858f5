//! The executor's part in a data-parallel run besides the gradient all-reduce ([`super::bucket`]):
//! joining the run's processes, rank 0's weights broadcast to every rank, and the check that all
//! ranks hold the same weights, bit for bit.

use std::sync::Arc;

use super::Executor;
use crate::distributed::Collective;
use crate::error::RunError;
use crate::kernels::KernelBackend;

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
}

/// Whether backend `B` computes in double precision (the all-reduce then sums doubles).
pub(super) fn is_f64<B: KernelBackend>() -> bool {
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
