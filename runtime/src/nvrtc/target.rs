//! A compile-only CubeCL runtime for an NVIDIA architecture: [`CudaTarget`] stands for a GPU of
//! one compute capability, with the properties cubecl-cuda reads from such a GPU's driver, and its
//! server compiles each kernel launched on it with cubecl's CUDA compiler and the options
//! cubecl-cuda's `compile_kernel` uses, keeping the CUDA C++ instead of running it. It needs no
//! GPU and holds no memory: CubeCL allocates lazily, so a buffer is only a name here, and reading
//! one is an error. [`super::launches`] runs the runtime's own launch code on it.

use std::sync::{Arc, Mutex};

use burn::tensor::backend::DeviceOps;
use cubecl::cuda::CudaCompiler;
use cubecl::device::{Device, DeviceId, DeviceService, ServerUtilitiesHandle};
use cubecl::ir::{DeviceProperties, HardwareProperties, MemoryDeviceProperties, VectorSize};
use cubecl::prelude::{CubeCount, ExecutionMode};
use cubecl::server::{
    Binding, ComputeServer, CopyDescriptor, KernelArguments, ProfileError, ProfilingToken,
    ServerCommunication, ServerError, ServerUtilities,
};
use cubecl::stream_id::StreamId;
use cubecl::{client::ComputeClient, CubeTask, Runtime};
use cubecl_cpp::shared::{CompilationOptions, CppSupportedFeatures};
use cubecl_runtime::allocator::PitchedMemoryLayoutPolicy;
use cubecl_runtime::logging::ServerLogger;
use cubecl_runtime::memory_management::{ManagedMemoryHandle, MemoryAllocationMode, MemoryUsage};
use cubecl_runtime::storage::{BytesStorage, ComputeStorage, ManagedResource};
use cubecl_runtime::validation::{validate_cube_dim, validate_units};

use super::ptxas::Arch;

/// One launch as CUDA would compile it: the kernel's CUDA C++ and how it was launched.
#[derive(Debug, Clone)]
pub struct CompiledLaunch {
    /// The kernel's entry point, with its element types (`lrn_forward_kernel_f32`).
    pub entrypoint: String,
    /// CubeCL's id of the kernel: its comptime arguments and its arguments' types and vector sizes.
    pub id: String,
    /// The CUDA C++ that NVRTC compiles.
    pub source: String,
    /// The shared memory cubecl-cuda asks for at launch (CubeCL puts all of it there).
    pub dynamic_shared_bytes: usize,
    pub cube_dim: (u32, u32, u32),
    pub cube_count: (u32, u32, u32),
    /// Bounds-checked (`launch`) or not (`launch_unchecked`): the generated code differs.
    pub mode: ExecutionMode,
}

/// Every launch on a target, in order, or why CubeCL could not compile it.
pub type LaunchLog = Arc<Mutex<Vec<Result<CompiledLaunch, String>>>>;

/// The CubeCL runtime of [`CudaTarget`]s.
#[derive(Debug, Clone)]
pub struct TargetRuntime;

/// A GPU of compute capability `arch` (major * 10 + minor), as a CubeCL device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CudaTarget {
    pub arch: u32,
}

impl Device for CudaTarget {
    fn from_id(id: DeviceId) -> Self {
        CudaTarget { arch: id.index_id as u32 }
    }

    fn to_id(&self) -> DeviceId {
        DeviceId { type_id: 0, index_id: self.arch as u16 }
    }
}

impl DeviceOps for CudaTarget {}

/// The server of a [`CudaTarget`]: compiles what is launched, runs nothing.
#[derive(Debug)]
pub struct TargetServer {
    arch: u32,
    options: CompilationOptions,
    utilities: Arc<ServerUtilities<Self>>,
}

impl Runtime for TargetRuntime {
    type Compiler = CudaCompiler;
    type Server = TargetServer;
    type Device = CudaTarget;

    fn client(device: &CudaTarget) -> ComputeClient<Self> {
        ComputeClient::load(device)
    }

    fn name(_client: &ComputeClient<Self>) -> &'static str {
        "cuda-target"
    }

    fn require_array_lengths() -> bool {
        cubecl::cuda::CudaRuntime::require_array_lengths()
    }

    fn max_cube_count() -> (u32, u32, u32) {
        cubecl::cuda::CudaRuntime::max_cube_count()
    }

    fn can_read_tensor(shape: &cubecl::zspace::Shape, strides: &cubecl::zspace::Strides) -> bool {
        cubecl::cuda::CudaRuntime::can_read_tensor(shape, strides)
    }

    fn target_properties() -> cubecl::ir::TargetProperties {
        cubecl::cuda::CudaRuntime::target_properties()
    }

    fn enumerate_devices(_type_id: u16, _info: &LaunchLog) -> Vec<DeviceId> {
        Vec::new()
    }
}

/// The device properties cubecl-cuda builds from the driver's attributes (`runtime.rs`,
/// `DeviceService::init`), for the ones that shape code generation and launch settings: a warp
/// of 32, at most 1024 units a cube, the opt-in shared memory per block, the supported types.
/// Matrix-multiply features are left out: our kernels use none.
fn properties(arch: &Arch) -> DeviceProperties {
    let hardware = HardwareProperties {
        load_width: 128,
        plane_size_min: 32,
        plane_size_max: 32,
        max_bindings: cubecl::cuda::CUDA_MAX_BINDINGS,
        max_shared_memory_size: arch.max_shared_optin,
        max_cube_count: (i32::MAX as u32, u16::MAX as u32, u16::MAX as u32),
        max_units_per_cube: 1024,
        max_cube_dim: (1024, 1024, 64),
        num_streaming_multiprocessors: Some(arch.sms),
        num_tensor_cores: Some(4),
        min_tensor_cores_dim: Some(8),
        num_cpu_cores: None,
        max_vector_size: VectorSize::MAX,
    };
    let memory = MemoryDeviceProperties { max_page_size: 1 << 34, alignment: 512 };
    let mut props =
        DeviceProperties::new(Default::default(), memory, hardware, cubecl::profile::TimingMethod::System);
    cubecl_cpp::register_supported_types(&mut props);
    props
}

/// The compiler options cubecl-cuda sets for `arch`: fast math; grid constants from sm_70;
/// clusters and `elect.sync` from sm_90; the fast tanh from sm_75 with CUDA 12.8 headers.
fn options(arch: u32) -> CompilationOptions {
    let fast_tanh = arch >= 75 && cudarc::driver::sys::CUDA_VERSION >= 12080;
    CompilationOptions {
        warp_size: 32,
        supports_features: CppSupportedFeatures {
            fast_math: true,
            grid_constants: arch >= 70,
            clusters: arch >= 90,
            elect_sync: arch >= 90,
            fast_tanh,
        },
    }
}

impl DeviceService for TargetServer {
    fn init(device_id: DeviceId) -> Self {
        let target = CudaTarget::from_id(device_id);
        // An architecture the check does not know still compiles, with sm_80's limits; the
        // check itself only makes targets of known architectures.
        let arch = Arch::from_version(target.arch).unwrap_or(Arch::SM80);
        let log: LaunchLog = Arc::default();
        let utilities = ServerUtilities::new(
            properties(&arch),
            Arc::new(ServerLogger::default()),
            log,
            PitchedMemoryLayoutPolicy::new(512),
        );
        TargetServer { arch: target.arch, options: options(target.arch), utilities: Arc::new(utilities) }
    }

    fn utilities(&self) -> ServerUtilitiesHandle {
        self.utilities.clone() as ServerUtilitiesHandle
    }
}

impl ServerCommunication for TargetServer {
    const SERVER_COMM_ENABLED: bool = false;
}

fn no_data() -> ServerError {
    ServerError::Generic {
        reason: "a compile-only CUDA target holds no data".into(),
        backtrace: cubecl::backtrace::BackTrace::capture(),
    }
}

impl TargetServer {
    /// What cubecl-cuda's `compile_kernel` does before NVRTC: validate the launch, then
    /// compile the kernel to CUDA C++.
    fn compile(
        &self,
        kernel: &dyn CubeTask<CudaCompiler>,
        count: CubeCount,
        mode: ExecutionMode,
    ) -> Result<CompiledLaunch, String> {
        let mut id = kernel.id();
        id.mode(mode);
        let props = &self.utilities.properties;
        validate_cube_dim(props, &id).map_err(|e| first_line(&e.to_string()))?;
        validate_units(props, &id).map_err(|e| first_line(&e.to_string()))?;
        let compiled = kernel
            .compile(&mut Default::default(), &self.options, mode, kernel.address_type())
            .map_err(|e| format!("CubeCL could not compile {} for sm_{}: {e}", kernel.name(), self.arch))?;
        let cube_count = match count {
            CubeCount::Static(x, y, z) => (x, y, z),
            CubeCount::Dynamic(_) => return Err("a dynamic cube count (none of our kernels has one)".into()),
        };
        let c = compiled.cube_dim;
        Ok(CompiledLaunch {
            entrypoint: compiled.entrypoint_name,
            id: id.to_string(),
            dynamic_shared_bytes: compiled.repr.as_ref().map_or(0, |r| r.shared_memory_size()),
            source: compiled.source,
            cube_dim: (c.x, c.y, c.z),
            cube_count,
            mode,
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines().take(3).collect::<Vec<_>>().join(" ")
}

impl ComputeServer for TargetServer {
    type Kernel = Box<dyn CubeTask<CudaCompiler>>;
    type Info = LaunchLog;
    type MemoryLayoutPolicy = PitchedMemoryLayoutPolicy;
    type Storage = BytesStorage;

    /// Nothing to do: a buffer here is only a name.
    fn initialize_memory(&mut self, _memory: ManagedMemoryHandle, _size: u64, _stream_id: StreamId) {}

    fn logger(&self) -> Arc<ServerLogger> {
        self.utilities.logger.clone()
    }

    fn utilities(&self) -> Arc<ServerUtilities<Self>> {
        self.utilities.clone()
    }

    fn read(
        &mut self,
        _descriptors: Vec<CopyDescriptor>,
        _stream_id: StreamId,
    ) -> cubecl::future::DynFut<Result<Vec<cubecl::bytes::Bytes>, ServerError>> {
        Box::pin(async { Err(no_data()) })
    }

    /// Data written to a target is dropped: nothing can read it back, and no kernel runs on it.
    fn write(&mut self, _descriptors: Vec<(CopyDescriptor, cubecl::bytes::Bytes)>, _stream_id: StreamId) {}

    fn sync(&mut self, _stream_id: StreamId) -> cubecl::future::DynFut<Result<(), ServerError>> {
        Box::pin(async { Ok(()) })
    }

    fn get_resource(
        &mut self,
        _binding: Binding,
        _stream_id: StreamId,
    ) -> Result<ManagedResource<<BytesStorage as ComputeStorage>::Resource>, ServerError> {
        Err(no_data())
    }

    unsafe fn launch(
        &mut self,
        kernel: Self::Kernel,
        count: CubeCount,
        _bindings: KernelArguments,
        mode: ExecutionMode,
        _stream_id: StreamId,
    ) {
        let entry = self.compile(&*kernel, count, mode);
        if let Ok(mut log) = self.utilities.info.lock() {
            log.push(entry);
        }
    }

    fn flush(&mut self, _stream_id: StreamId) -> Result<(), ServerError> {
        Ok(())
    }

    fn memory_usage(&mut self, _stream_id: StreamId) -> Result<MemoryUsage, ServerError> {
        Err(no_data())
    }

    fn memory_cleanup(&mut self, _stream_id: StreamId) {}

    fn start_profile(&mut self, _stream_id: StreamId) -> Result<ProfilingToken, ServerError> {
        Err(no_data())
    }

    fn end_profile(
        &mut self,
        _stream_id: StreamId,
        _token: ProfilingToken,
    ) -> Result<cubecl::profile::ProfileDuration, ProfileError> {
        Err(ProfileError::NotRegistered { backtrace: cubecl::backtrace::BackTrace::capture() })
    }

    fn allocation_mode(&mut self, _mode: MemoryAllocationMode, _stream_id: StreamId) {}
}
