//! A bucket's NCCL average in flight: launched on the communicator's stream with an event
//! recorded after it, queried between the executor's nodes and waited for where the means are
//! first read, under the collective timeout.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::result as cu;
use cudarc::driver::sys::{self as cu_sys, CUcontext, CUevent};
use cudarc::nccl::result as nccl;
use cudarc::nccl::sys as nccl_sys;

use super::{nccl_error, CudaTensor};
use crate::distributed::on_device::DeviceCollectiveError;

/// A bucket's average launched on NCCL's stream, complete when `event` is. Holds the gradients
/// and both sides' device buffers until then, so that cubecl reuses none of them meanwhile.
pub(super) struct NcclInFlight {
    pub(super) event: CUevent,
    pub(super) comm: nccl_sys::ncclComm_t,
    /// The communicator's: once set, no NCCL call may be made on `comm`, and its kernels are
    /// stopped (so the buffers may go).
    pub(super) aborted: Arc<AtomicBool>,
    pub(super) context: CUcontext,
    pub(super) outputs: Vec<CudaTensor>,
    /// The contiguous gradients and the device resources NCCL reads and writes.
    pub(super) held: Option<Box<dyn Any>>,
    pub(super) done: bool,
}

impl NcclInFlight {
    /// True once NCCL's work on the bucket is done (never blocks).
    pub(super) fn test(&mut self) -> bool {
        if !self.done {
            // SAFETY: `event` was made and recorded by `Communicator::start` and lives until drop.
            self.done = matches!(unsafe { cu_sys::cuEventQuery(self.event) }, cu_sys::CUresult::CUDA_SUCCESS);
        }
        self.done
    }

    /// Waits for NCCL's work on the bucket, at most `ALEXRT_COLLECTIVE_TIMEOUT` seconds (as the MPI
    /// collectives): a peer that failed (NCCL's asynchronous error) or hangs ends the wait with an
    /// error, after aborting the communicator, instead of blocking for ever. The means.
    pub(super) fn finish(mut self) -> Result<Vec<CudaTensor>, DeviceCollectiveError> {
        self.wait()?;
        self.held = None;
        Ok(std::mem::take(&mut self.outputs))
    }

    fn wait(&mut self) -> Result<(), DeviceCollectiveError> {
        let limit = crate::distributed::watchdog::timeout();
        let started = Instant::now();
        while !self.done {
            if self.aborted.load(Ordering::Acquire) {
                // Another bucket's error aborted the communicator: its kernels are stopped.
                self.done = true;
                return Err(DeviceCollectiveError::Aborted);
            }
            // SAFETY: as in `test`; the communicator is live (not aborted, checked above; they
            // are never destroyed).
            unsafe {
                match cu_sys::cuEventQuery(self.event) {
                    cu_sys::CUresult::CUDA_SUCCESS => {
                        self.done = true;
                        break;
                    }
                    cu_sys::CUresult::CUDA_ERROR_NOT_READY => {}
                    other => {
                        self.abort();
                        return Err(DeviceCollectiveError::Driver {
                            call: "cuEventQuery",
                            code: format!("{other:?}"),
                        });
                    }
                }
                let mut failed = nccl_sys::ncclResult_t::ncclSuccess;
                nccl_sys::ncclCommGetAsyncError(self.comm, &mut failed);
                if !matches!(
                    failed,
                    nccl_sys::ncclResult_t::ncclSuccess | nccl_sys::ncclResult_t::ncclInProgress
                ) {
                    let e = nccl_error(
                        "ncclAllReduce (asynchronously)",
                        nccl::NcclError(failed),
                        Some(self.comm),
                    );
                    self.abort();
                    return Err(e);
                }
            }
            if started.elapsed() > limit {
                self.abort();
                return Err(DeviceCollectiveError::Timeout(limit.as_secs()));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        Ok(())
    }

    /// Aborts the communicator, once for all its buckets: NCCL stops its kernels, so this bucket
    /// (and every other in flight) is done with its buffers.
    fn abort(&mut self) {
        if !self.aborted.swap(true, Ordering::AcqRel) {
            // SAFETY: the communicator is live: this is the first abort.
            let _ = unsafe { nccl::comm_abort(self.comm) };
        }
        self.done = true;
    }
}

impl Drop for NcclInFlight {
    /// A bucket abandoned in flight (a step that failed) is waited for before its buffers go:
    /// NCCL must not write memory cubecl has reused.
    fn drop(&mut self) {
        if !self.done {
            let _ = self.wait();
        }
        // SAFETY: the event is ours and no longer waited on; its context is current or not,
        // cuEventDestroy takes any.
        unsafe {
            let _ = cu::ctx::set_current(self.context);
            let _ = cu::event::destroy(self.event);
        }
    }
}
