//! The Open MPI engine (rsmpi): the world communicator of `mpirun`, MPI initialised for calls from
//! the main thread only. MPI's default error handler ends the job on any engine error.

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;

use super::watchdog::Watchdog;
use super::Collective;
use crate::error::RunError;

/// The world of an `mpirun` job. Keeps MPI initialised while it lives.
pub struct MpiWorld {
    _universe: mpi::environment::Universe,
    rank: usize,
    size: usize,
    local: (usize, usize),
    watchdog: Watchdog,
}

impl MpiWorld {
    pub fn init() -> Result<Self, RunError> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| RunError::Internal("MPI was initialised twice in one process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        let local_rank = env("OMPI_COMM_WORLD_LOCAL_RANK").or_else(|| env("MPI_LOCALRANKID")).unwrap_or(0);
        let local_size = env("OMPI_COMM_WORLD_LOCAL_SIZE").or_else(|| env("MPI_LOCALNRANKS")).unwrap_or(1);
        Ok(MpiWorld {
            _universe: universe,
            rank,
            size,
            local: (local_rank, local_size),
            watchdog: Watchdog::start(rank),
        })
    }

    fn world(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local.0
    }
    fn local_size(&self) -> usize {
        self.local.1
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        let _waiting = self.watchdog.wait("an all-reduce of the gradients");
        let send = values.to_vec();
        self.world().all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let _waiting = self.watchdog.wait("an all-reduce");
        let send = values.to_vec();
        self.world().all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let _waiting = self.watchdog.wait("a broadcast from rank 0");
        let world = self.world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }
    fn broadcast_f32(&self, values: &mut [f32]) {
        let _waiting = self.watchdog.wait("a broadcast of the weights from rank 0");
        self.world().process_at_rank(0).broadcast_into(values);
    }
    fn broadcast_f64(&self, values: &mut [f64]) {
        let _waiting = self.watchdog.wait("a broadcast of the weights from rank 0");
        self.world().process_at_rank(0).broadcast_into(values);
    }
    fn abort(&self, code: i32) -> ! {
        self.world().abort(code)
    }
    fn describe(&self) -> String {
        let (major, minor) = mpi::environment::version();
        format!(
            "rank {} of {} (MPI {major}.{minor}, {})",
            self.rank,
            self.size,
            mpi::environment::library_version().unwrap_or_default().split(',').next().unwrap_or("").trim()
        )
    }
}
