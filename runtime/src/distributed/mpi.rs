//! The Open MPI engine (rsmpi): the world communicator of `mpirun`, MPI initialised for calls from
//! the main thread only. MPI's default error handler ends the job on any engine error. The
//! gradient buckets are summed by non-blocking all-reduces ([`MpiSum`]).

use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;

use super::in_flight::{Buffers, SumInFlight};
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

    /// Starts `MPI_Iallreduce` (sum) of `buffers.send` into `buffers.recv`. rsmpi 0.8 ties an
    /// immediate collective's buffers to a lexical scope, which a bucket started at one node of
    /// the schedule and waited for at a later one does not have; so the call goes through
    /// `mpi::ffi`, and [`MpiSum`] owns the buffers until the request completes.
    fn start_sum<E: Equivalence + Copy + Default + 'static>(
        &self,
        mut buffers: Buffers<E>,
    ) -> Result<Box<dyn SumInFlight<E>>, RunError> {
        let count = i32::try_from(buffers.send.len()).map_err(|_| {
            RunError::Input(format!(
                "a gradient bucket of {} values is more than one MPI call takes (2^31 - 1); compile with a smaller --bucket-mib",
                buffers.send.len()
            ))
        })?;
        buffers.recv.resize(buffers.send.len(), E::default());
        // SAFETY: `RSMPI_REQUEST_NULL` is a constant defined by mpi-sys's C shim.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: both pointers are valid for `count` elements of `E`'s MPI type and the buffers do
        // not overlap. MPI reads `send` and writes `recv` until the request completes; `MpiSum`
        // owns both `Vec`s (moving a `Vec` does not move its elements), hands them back only once
        // `MPI_Test` or `MPI_Wait` has seen the request complete, and waits before dropping them.
        unsafe {
            ffi::MPI_Iallreduce(
                buffers.send.as_ptr().cast(),
                buffers.recv.as_mut_ptr().cast(),
                count,
                E::equivalent_datatype().as_raw(),
                SystemOperation::sum().as_raw(),
                self.world().as_raw(),
                &mut request,
            );
        }
        Ok(Box::new(MpiSum {
            request,
            complete: false,
            buffers: Some(buffers),
            watchdog: self.watchdog.clone(),
        }))
    }
}

/// A non-blocking all-reduce in flight and the buffers MPI works on.
struct MpiSum<E> {
    request: ffi::MPI_Request,
    complete: bool,
    /// `Some` until handed back by `wait`.
    buffers: Option<Buffers<E>>,
    watchdog: Watchdog,
}

impl<E> MpiSum<E> {
    fn block(&mut self) {
        if !self.complete {
            let _waiting = self.watchdog.wait("an all-reduce of the gradients");
            // SAFETY: `request` is the live request of this sum (MPI sets it to null once complete).
            unsafe { ffi::MPI_Wait(&mut self.request, ffi::RSMPI_STATUS_IGNORE) };
            self.complete = true;
        }
    }
}

impl<E> SumInFlight<E> for MpiSum<E> {
    fn test(&mut self) -> bool {
        if !self.complete {
            let mut flag = 0;
            // SAFETY: as in `block`.
            unsafe { ffi::MPI_Test(&mut self.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
            self.complete = flag != 0;
        }
        self.complete
    }
    fn wait(mut self: Box<Self>) -> Buffers<E> {
        self.block();
        self.buffers.take().unwrap_or_default()
    }
}

impl<E> Drop for MpiSum<E> {
    /// A sum abandoned in flight (a step that failed) is waited for: MPI must not write freed memory.
    fn drop(&mut self) {
        self.block();
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
    fn start_sum_f32(&self, buffers: Buffers<f32>) -> Result<Box<dyn SumInFlight<f32>>, RunError> {
        self.start_sum(buffers)
    }
    fn start_sum_f64(&self, buffers: Buffers<f64>) -> Result<Box<dyn SumInFlight<f64>>, RunError> {
        self.start_sum(buffers)
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
