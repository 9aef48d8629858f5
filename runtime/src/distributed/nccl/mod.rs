//! NCCL on device memory: the gradient all-reduce of a CUDA run, as PyTorch's DDP does it. Each
//! rank joins one NCCL communicator on its device (rank 0 makes NCCL's id and broadcasts it over
//! the run's [`Collective`], MPI), and a bucket's tensors are averaged (`ncclAvg`) in one NCCL
//! group on a stream of ours, into fresh device buffers: no copy to the host.
//!
//! cubecl does not expose its CUDA stream, so the client is synchronised before NCCL reads the
//! gradients. NCCL's work is then left running on its stream, an event recorded after it
//! ([`NcclInFlight`]): the executor goes on with the backward pass on cubecl's stream, queries
//! the event between nodes and waits for it where the means are first read. The gradients and
//! both sides' device buffers (`get_resource`) are held until the event completes, so that cubecl
//! reuses none of them meanwhile. libnccl is loaded at run time by cudarc, which looks for
//! `libnccl.so` (the pip wheel ships `libnccl.so.2`: link it).

use std::any::Any;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cudarc::driver::result as cu;
use cudarc::driver::sys::{self as cu_sys, CUcontext, CUstream};
use cudarc::nccl::result as nccl;
use cudarc::nccl::sys as nccl_sys;

use super::on_device::{
    broadcast_unique_id, check_library_everywhere, DeviceCollectiveError, DeviceMeanInFlight, NcclSetting,
    NCCL_ID_BYTES,
};
use super::Collective;
use crate::error::RunError;
use crate::value::Value;

mod in_flight;
use in_flight::NcclInFlight;

/// A float tensor of any CubeBackend on CUDA, whatever its element types.
pub(super) type CudaTensor = CubeTensor<CudaRuntime>;

/// Starts the mean over every rank of each tensor of `bucket`, by NCCL, when the bucket is on
/// CUDA and `ALEXRT_NCCL` is not `off`; `Ok(None)` otherwise (the host path then runs).
pub fn start_all_reduce_mean<B: Backend>(
    bucket: &[Value<B>],
    world: &dyn Collective,
) -> Result<Option<Box<dyn DeviceMeanInFlight<B>>>, RunError> {
    let tensors: Option<Vec<&CudaTensor>> = bucket
        .iter()
        .map(|v| match v {
            Value::Float(t) => (t as &dyn Any).downcast_ref::<CudaTensor>(),
            _ => None,
        })
        .collect();
    let Some(tensors) = tensors.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if NcclSetting::from_env()? == NcclSetting::Off {
        return Ok(None);
    }
    let in_flight = start_average(&tensors, world)?;
    Ok(Some(Box::new(NcclMean::<B> { in_flight, backend: PhantomData })))
}

/// A bucket's NCCL mean in flight, handed back as tensors of backend `B`.
struct NcclMean<B> {
    in_flight: NcclInFlight,
    backend: PhantomData<B>,
}

impl<B: Backend> DeviceMeanInFlight<B> for NcclMean<B> {
    fn test(&mut self) -> bool {
        self.in_flight.test()
    }

    fn finish(self: Box<Self>) -> Result<Vec<Value<B>>, RunError> {
        self.in_flight
            .finish()?
            .into_iter()
            .map(|t| {
                let boxed: Box<dyn Any> = Box::new(t);
                boxed
                    .downcast::<FloatTensor<B>>()
                    .map(|t| Value::Float(*t))
                    .map_err(|_| RunError::Internal("a CUDA float tensor of another backend type".into()))
            })
            .collect()
    }
}

/// This process's NCCL communicators, one per CUDA device it reduces on (one, in a run of one
/// rank per GPU). Made at the first all-reduce, which every rank reaches together.
static COMMUNICATORS: Mutex<Vec<Communicator>> = Mutex::new(Vec::new());

/// One rank's NCCL communicator on one device, with the stream its collectives run on.
struct Communicator {
    comm: nccl_sys::ncclComm_t,
    stream: CUstream,
    context: CUcontext,
    ordinal: usize,
    rank: usize,
    size: usize,
    /// Set once the communicator is aborted (after an NCCL error or a timeout): nothing may call
    /// NCCL on it afterwards. Shared with its buckets in flight.
    aborted: Arc<AtomicBool>,
}

// SAFETY: the communicator and stream are launched on under COMMUNICATORS' lock, and queried by
// its buckets in flight on the executor's thread, one thread at a time, which NCCL and CUDA
// allow (neither is tied to the thread that made it). Communicators are never destroyed, only
// aborted (see `aborted`).
unsafe impl Send for Communicator {}

/// Starts the means of `tensors` (all on one CUDA device) over every rank of `world`.
fn start_average(
    tensors: &[&CudaTensor],
    world: &dyn Collective,
) -> Result<NcclInFlight, DeviceCollectiveError> {
    let ordinal = tensors[0].device.index;
    let mut communicators = COMMUNICATORS.lock().unwrap_or_else(|e| e.into_inner());
    let at = match communicators
        .iter()
        .position(|c| (c.ordinal, c.rank, c.size) == (ordinal, world.rank(), world.size()))
    {
        Some(at) => at,
        None => {
            communicators.push(Communicator::join(ordinal, world)?);
            communicators.len() - 1
        }
    };
    communicators[at].start(tensors)
}

impl Communicator {
    /// This rank's communicator on CUDA device `ordinal`: NCCL's library checked on every rank,
    /// rank 0's id broadcast, then `ncclCommInitRank` (which waits for every rank).
    fn join(ordinal: usize, world: &dyn Collective) -> Result<Self, DeviceCollectiveError> {
        // SAFETY: cudarc opens libnccl by its usual names and reports whether one loads.
        let loaded = unsafe { nccl_sys::is_culib_present() };
        check_library_everywhere(world, loaded)?;
        let context = Self::current_context(ordinal)?;
        let id = broadcast_unique_id(world, || {
            let id = nccl::get_uniqueid().map_err(|e| nccl_error("ncclGetUniqueId", e, None))?;
            Ok(id.internal.map(|c| c as u8))
        })?;
        let id = nccl_sys::ncclUniqueId { internal: id.map(|b| b as std::ffi::c_char) };
        debug_assert_eq!(id.internal.len(), NCCL_ID_BYTES);
        let mut comm = MaybeUninit::uninit();
        // SAFETY: `comm` is written by NCCL on success; the id is rank 0's on every rank; rank
        // and size are MPI's, so every rank of the run calls this once with its own rank.
        let comm = unsafe {
            nccl::comm_init_rank(comm.as_mut_ptr(), world.size() as i32, id, world.rank() as i32)
                .map_err(|e| nccl_error("ncclCommInitRank", e, None))?;
            comm.assume_init()
        };
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .map_err(|e| driver_error("cuStreamCreate", e))?;
        Ok(Communicator {
            comm,
            stream,
            context,
            ordinal,
            rank: world.rank(),
            size: world.size(),
            aborted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Device `ordinal`'s primary context (cubecl's, so its pointers are valid here), made current
    /// on this thread.
    fn current_context(ordinal: usize) -> Result<CUcontext, DeviceCollectiveError> {
        cu::init().map_err(|e| driver_error("cuInit", e))?;
        let device = cu::device::get(ordinal as i32).map_err(|e| driver_error("cuDeviceGet", e))?;
        // SAFETY: `device` is a valid device handle; the primary context is retained for the
        // process's lifetime (communicators live until it ends).
        unsafe {
            let context =
                cu::primary_ctx::retain(device).map_err(|e| driver_error("cuDevicePrimaryCtxRetain", e))?;
            cu::ctx::set_current(context).map_err(|e| driver_error("cuCtxSetCurrent", e))?;
            Ok(context)
        }
    }

    /// Starts the means of `tensors` across the communicator's ranks, into new contiguous
    /// tensors: cubecl's work is waited for, NCCL's is launched on our stream and an event
    /// recorded after it.
    fn start(&self, tensors: &[&CudaTensor]) -> Result<NcclInFlight, DeviceCollectiveError> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(DeviceCollectiveError::Aborted);
        }
        let types = tensors.iter().map(|t| nccl_dtype(t.dtype)).collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<CudaTensor> = tensors.iter().map(|t| into_contiguous((*t).clone())).collect();
        let outputs: Vec<CudaTensor> = inputs
            .iter()
            .map(|t| {
                empty_device_contiguous_dtype(
                    t.client.clone(),
                    t.device.clone(),
                    t.meta.shape().clone(),
                    t.dtype,
                )
            })
            .collect();
        let resource = |t: &CudaTensor| {
            t.client.get_resource(t.handle.clone()).map_err(|e| DeviceCollectiveError::Driver {
                call: "cubecl's get_resource",
                code: format!("{e:?}"),
            })
        };
        // Held until NCCL is done, so that cubecl reuses none of these buffers meanwhile.
        let sends = inputs.iter().map(resource).collect::<Result<Vec<_>, _>>()?;
        let receives = outputs.iter().map(resource).collect::<Result<Vec<_>, _>>()?;
        // Each tensor's element count, type and both device addresses, checked to fit, before
        // anything is queued.
        let mut launches = Vec::with_capacity(inputs.len());
        for (((t, send), receive), dtype) in inputs.iter().zip(&sends).zip(&receives).zip(types) {
            let count = t.meta.shape().num_elements();
            let (send, receive) = (send.resource(), receive.resource());
            let bytes = (count * t.dtype.size()) as u64;
            if send.size < bytes || receive.size < bytes {
                return Err(DeviceCollectiveError::Driver {
                    call: "cubecl's get_resource",
                    code: format!("a {}-byte buffer for a {bytes}-byte tensor", send.size.min(receive.size)),
                });
            }
            launches.push((send.ptr, receive.ptr, count, dtype));
        }
        cubecl::future::block_on(tensors[0].client.sync()).map_err(|e| DeviceCollectiveError::Driver {
            call: "cubecl's sync before NCCL",
            code: format!("{e:?}"),
        })?;
        // SAFETY: the context is the primary context the pointers belong to.
        unsafe { cu::ctx::set_current(self.context) }.map_err(|e| driver_error("cuCtxSetCurrent", e))?;
        // Made before anything is queued, so that no error after the launch leaves NCCL's work
        // running on buffers about to be dropped.
        let event = cu::event::create(cu_sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map_err(|e| driver_error("cuEventCreate", e))?;
        let discard = |event| {
            // SAFETY: the event was never recorded; nothing waits on it.
            let _ = unsafe { cu::event::destroy(event) };
        };
        if let Err(e) = nccl::group_start() {
            discard(event);
            return Err(self.error("ncclGroupStart", e));
        }
        let launched = launches
            .into_iter()
            .try_for_each(|(send, receive, count, dtype)| {
                // SAFETY: both pointers address the tensor's bytes of live device memory of this
                // context (held by `sends` and `receives`, checked above); cubecl's work on them
                // is finished (synced above).
                unsafe {
                    nccl::all_reduce(
                        send as *const _,
                        receive as *mut _,
                        count,
                        dtype,
                        nccl_sys::ncclRedOp_t::ncclAvg,
                        self.comm,
                        self.stream as nccl_sys::cudaStream_t,
                    )
                }
                .map(drop)
                .map_err(|e| self.error("ncclAllReduce", e))
            })
            .and_then(|()| nccl::group_end().map(drop).map_err(|e| self.error("ncclGroupEnd", e)))
            .and_then(|()| {
                // SAFETY: our stream and a fresh event of the current context.
                unsafe { cu::event::record(event, self.stream) }.map_err(|e| driver_error("cuEventRecord", e))
            });
        if let Err(e) = launched {
            // One mend for every failure inside the group: end it, drain or abort what was
            // queued (its buffers are about to be dropped), and let the event go.
            self.end_group_after_error();
            discard(event);
            return Err(e);
        }
        Ok(NcclInFlight {
            event,
            comm: self.comm,
            aborted: Arc::clone(&self.aborted),
            context: self.context,
            outputs,
            held: Some(Box::new((inputs, sends, receives))),
            done: false,
        })
    }

    /// After an error at a launch: what was queued is waited for (its buffers are about to be
    /// dropped), or, if it cannot finish, the communicator is aborted (which stops its kernels).
    fn end_group_after_error(&self) {
        let _ = nccl::group_end();
        // SAFETY: our stream; the communicator is live unless `aborted` says otherwise.
        unsafe {
            if cu_sys::cuStreamSynchronize(self.stream) != cu_sys::CUresult::CUDA_SUCCESS
                && !self.aborted.swap(true, Ordering::AcqRel)
            {
                let _ = nccl::comm_abort(self.comm);
            }
        }
    }

    /// An NCCL error of a call on this communicator, with NCCL's last message.
    fn error(&self, call: &'static str, e: nccl::NcclError) -> DeviceCollectiveError {
        nccl_error(call, e, Some(self.comm))
    }
}

/// NCCL's type for `dtype`.
fn nccl_dtype(dtype: DType) -> Result<nccl_sys::ncclDataType_t, DeviceCollectiveError> {
    use nccl_sys::ncclDataType_t as T;
    match dtype {
        DType::F32 => Ok(T::ncclFloat32),
        DType::F64 => Ok(T::ncclFloat64),
        DType::F16 => Ok(T::ncclFloat16),
        DType::BF16 => Ok(T::ncclBfloat16),
        other => Err(DeviceCollectiveError::DType(format!("{other:?}"))),
    }
}

/// An NCCL error as the runtime reports it: the call, the code's name, NCCL's own words.
pub(super) fn nccl_error(
    call: &'static str,
    e: nccl::NcclError,
    comm: Option<nccl_sys::ncclComm_t>,
) -> DeviceCollectiveError {
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: NCCL returns NUL-terminated static strings (or null).
        (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    // SAFETY: the library is loaded (the call that failed came from it); `comm` is live or null.
    let detail = unsafe {
        let last = comm.and_then(|c| text(nccl_sys::ncclGetLastError(c)));
        last.filter(|s| !s.is_empty()).or_else(|| text(nccl_sys::ncclGetErrorString(e.0)))
    };
    DeviceCollectiveError::Nccl { call, code: format!("{:?}", e.0), detail }
}

fn driver_error(call: &'static str, e: cudarc::driver::DriverError) -> DeviceCollectiveError {
    DeviceCollectiveError::Driver { call, code: format!("{:?}", e.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::Single;

    #[test]
    fn a_missing_nccl_library_is_reported_with_its_fix_before_any_cuda_call() {
        // SAFETY: only tries to open libnccl by its usual names.
        if unsafe { nccl_sys::is_culib_present() } {
            println!("SKIPPED: libnccl loads on this machine, so the missing-library path cannot be shown");
            return;
        }
        match Communicator::join(0, &Single) {
            Ok(_) => panic!("joined NCCL without its library"),
            Err(e) => {
                assert!(matches!(
                    e,
                    DeviceCollectiveError::LibraryMissing { missing: 1, size: 1, here: true }
                ));
                let text = e.to_string();
                assert!(text.contains("nvidia-nccl-cu12") && text.contains("LD_LIBRARY_PATH"), "{text}");
            }
        }
    }
}
