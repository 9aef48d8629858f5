//! Data-parallel training across processes, as PyTorch's DDP runs it: `mpirun -np N alexrt train`
//! starts N replicas of one run, each on its own shard of every batch, and the plan's
//! `all_reduce_mean` nodes average the gradients across them, so that all replicas apply the
//! same update. The engine is Open MPI (the `mpi` cargo feature); without it, or outside
//! `mpirun`, a run is the single process of [`Single`].
//!
//! - [`Collective`]: what the runtime asks of the engine (sums, broadcasts, an abort);
//! - [`connect`]: the world this process belongs to, from the launcher's environment;
//! - [`in_flight`]: sums that go on while the caller computes (the gradient buckets');
//! - [`sync`]: rank 0's progress to every rank, and the metrics' sums across ranks (the
//!   executor broadcasts the weights and averages the gradients: `exec::all_reduce`);
//! - `mpi`: the Open MPI engine; [`watchdog`]: a rank that waits too long ends the job;
//! - [`on_device`]: the all-reduce on device memory where the backend has one (`nccl` on CUDA);
//!   [`check`]: that all-reduce checked and timed (`alexrt check-all-reduce`);
//! - [`in_flight`]: a host all-reduce started and waited for later (overlap with the backward);
//! - [`fault`]: a test hook that makes one rank fail.
//!
//! Semantics: the graph's batch size is per replica (DDP's convention): N replicas at batch B
//! train as one process at batch N x B, on the same images in the same order.

pub mod check;
pub mod fault;
pub mod in_flight;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "cuda")]
mod nccl;
pub mod on_device;
pub mod sync;
pub mod watchdog;

use std::sync::Arc;

use crate::error::RunError;
use in_flight::{sum_at_once, Buffers, SumInFlight};

/// The collective operations a data-parallel run needs. Every rank calls each in the same order
/// (MPI's rule); an engine error ends the whole job.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Processes in the run.
    fn size(&self) -> usize;
    /// Processes of the run on this machine (for the threads each may use).
    fn local_size(&self) -> usize {
        1
    }
    /// This process's index among those on its machine (its GPU, on a multi-GPU machine).
    fn local_rank(&self) -> usize {
        0
    }
    /// Sums `values` element by element across ranks, in place.
    fn all_reduce_sum_f32(&self, values: &mut [f32]);
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// Starts summing `buffers.send` element by element across ranks into `buffers.recv` (which
    /// it sizes) and returns while the engine works: the caller computes meanwhile and waits
    /// before it reads the sums. Every rank starts the same sums in the same order. The default
    /// sums at once.
    fn start_sum_f32(&self, buffers: Buffers<f32>) -> Result<Box<dyn SumInFlight<f32>>, RunError> {
        Ok(sum_at_once(buffers, |v| self.all_reduce_sum_f32(v)))
    }
    fn start_sum_f64(&self, buffers: Buffers<f64>) -> Result<Box<dyn SumInFlight<f64>>, RunError> {
        Ok(sum_at_once(buffers, |v| self.all_reduce_sum_f64(v)))
    }
    /// Rank 0's `bytes` on every rank (others' contents and lengths are replaced).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Rank 0's `values` on every rank (every rank passes a slice of the same length).
    fn broadcast_f32(&self, values: &mut [f32]);
    fn broadcast_f64(&self, values: &mut [f64]);
    /// Ends every process of the run with `code` (after this one printed why).
    fn abort(&self, code: i32) -> !;
    /// The engine, in words, for the run's first line.
    fn describe(&self) -> String;
}

/// A run of one process: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _: &mut [f64]) {}
    fn broadcast_bytes(&self, _: &mut Vec<u8>) {}
    fn broadcast_f32(&self, _: &mut [f32]) {}
    fn broadcast_f64(&self, _: &mut [f64]) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        "a single process".into()
    }
}

/// Whether this build runs data parallel over MPI (the `mpi` feature).
pub const WITH_MPI: bool = cfg!(feature = "mpi");

/// The world size a launcher announces in the environment: Open MPI's `mpirun`, MPICH's and
/// Slurm's PMI. `None` outside a launcher.
pub fn launcher_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The world of this process: MPI's when started by a launcher with more than one process,
/// else [`Single`]. A build without the `mpi` feature started as one of several processes says
/// how to rebuild, rather than train N unrelated copies.
pub fn connect() -> Result<Arc<dyn Collective>, RunError> {
    match launcher_size() {
        None | Some(0) | Some(1) => Ok(Arc::new(Single)),
        Some(n) => connect_mpi(n),
    }
}

#[cfg(feature = "mpi")]
fn connect_mpi(_announced: usize) -> Result<Arc<dyn Collective>, RunError> {
    Ok(Arc::new(mpi::MpiWorld::init()?))
}

#[cfg(not(feature = "mpi"))]
fn connect_mpi(announced: usize) -> Result<Arc<dyn Collective>, RunError> {
    Err(RunError::Input(format!(
        "started as one of {announced} processes, but this alexrt is built without MPI; build it with `cargo build --release -p alexrt --features mpi` (Debian: apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
    )))
}

/// Threads each process of `world` may use on this machine: its cores shared among the local
/// processes, so that N ranks on one machine do not oversubscribe it.
pub fn threads_per_rank(world: &dyn Collective) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (cores / world.local_size().max(1)).max(1)
}

/// Prints `message` on standard error as one line from rank `rank` ([`say_whole`]).
pub fn say_from_rank(rank: usize, message: &str) {
    say_whole(&format!("rank {rank}: {message}"));
}

/// Prints `line` and a newline on standard error in one write: the ranks of a job share one
/// stderr, and a line written in pieces (as `eprintln!` writes its arguments) can be cut by another
/// rank's output (a pipe keeps writes of up to 4 KiB whole).
pub fn say_whole(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
}
