//! The check itself: launch every kernel on a compile-only target per architecture, compile each
//! distinct source with NVRTC, read ptxas's report, and judge it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::DType;

use super::compile::Nvrtc;
use super::launches::run_all;
use super::ptxas::{self, Arch};
use super::table::{ArchResult, KernelRow, Report};
use super::target::{CompiledLaunch, CudaTarget};

/// What to compile, for what, and with which NVRTC.
#[derive(Debug, Clone)]
pub struct NvrtcOptions {
    pub archs: Vec<Arch>,
    /// The element types the kernels are launched with (the runtime's CUDA backend: f32).
    pub dtypes: Vec<DType>,
    /// The batch of the shapes (alexnet.ron's: 128); it changes the cube counts only.
    pub batch: usize,
    /// libnvrtc's file; without it, cudarc looks for it by name.
    pub library: Option<PathBuf>,
    /// Folders with the CUDA headers (`cuda_fp16.h`, ...).
    pub include: Vec<PathBuf>,
}

/// The architecture of the first CUDA GPU here, asked of the driver.
pub fn native_arch() -> Result<Arch, String> {
    crate::device::cuda_devices()?;
    use cudarc::driver::{result, sys::CUdevice_attribute as A};
    let cc = |a| {
        // SAFETY: the driver is initialised (cuda_devices above) and device 0 exists.
        unsafe { result::device::get(0).and_then(|d| result::device::get_attribute(d, a)) }
    };
    let (major, minor) = match (
        cc(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
        cc(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
    ) {
        (Ok(major), Ok(minor)) => (major, minor),
        (Err(e), _) | (_, Err(e)) => {
            return Err(format!("the CUDA driver did not give the architecture: {e:?}"))
        }
    };
    Arch::from_version((major * 10 + minor) as u32).ok_or_else(|| {
        format!("the GPU is sm_{major}{minor}, whose limits the check does not know (it knows sm_80-sm_100)")
    })
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// NVRTC's result for one source on one architecture.
fn judge(nvrtc: &Nvrtc, l: &CompiledLaunch, arch: &Arch) -> ArchResult {
    match nvrtc.compile(&l.source, arch).and_then(|c| ptxas::parse(&c.log, &l.entrypoint).map(|p| (c, p))) {
        Ok((cubin, info)) => {
            let threads = l.cube_dim.0 as u64 * l.cube_dim.1 as u64 * l.cube_dim.2 as u64;
            ArchResult {
                arch: arch.nvrtc_name(),
                problems: ptxas::problems(&info, arch, threads, l.dynamic_shared_bytes as u64),
                ptxas: Some(info),
                error: None,
                cubin_bytes: cubin.cubin_bytes,
            }
        }
        Err(e) => ArchResult::failed(arch.nvrtc_name(), e),
    }
}

/// Compiles every kernel the runtime launches on CUDA, for each architecture and element type.
/// `Err` when NVRTC cannot be loaded (the check could not run); the report's
/// [`Report::failures`] says what failed when it ran.
pub fn check_nvrtc(o: &NvrtcOptions) -> Result<Report, String> {
    let start = Instant::now();
    let nvrtc = Nvrtc::load(o.library.as_deref(), o.include.clone())?;
    let mut rows: Vec<KernelRow> = Vec::new();
    let mut cubecl_errors = Vec::new();
    let mut sources = Vec::new();
    // Each distinct source compiles once per architecture; launches that share it share the result.
    let mut compiled: HashMap<(String, u32), ArchResult> = HashMap::new();
    for &dtype in &o.dtypes {
        // One target per architecture: the launch settings come from its properties.
        let per_arch: Vec<_> =
            o.archs.iter().map(|a| (a, run_all(CudaTarget { arch: a.version }, dtype, o.batch))).collect();
        let Some((_, first)) = per_arch.first() else { break };
        for (i, call) in first.iter().enumerate() {
            if call.launches.is_empty() {
                let why = "launched no CubeCL kernel (did the runtime stop launching one here?)";
                cubecl_errors.push(format!("{} ({}): {why}", call.call, dtype_name(dtype)));
            }
            for (j, launch) in call.launches.iter().enumerate() {
                let launch = match launch {
                    Ok(l) => l,
                    Err(e) => {
                        cubecl_errors.push(format!("{} ({}): {e}", call.call, dtype_name(dtype)));
                        continue;
                    }
                };
                let mut archs = Vec::new();
                for (arch, calls) in &per_arch {
                    let here = calls.get(i).and_then(|c| c.launches.get(j)).and_then(|l| l.as_ref().ok());
                    let Some(l) = here else {
                        let why = format!("CubeCL did not compile this launch for {}", arch.nvrtc_name());
                        archs.push(ArchResult::failed(arch.nvrtc_name(), why));
                        continue;
                    };
                    let key = (l.source.clone(), arch.version);
                    let result = compiled
                        .entry(key)
                        .or_insert_with(|| {
                            let name = format!("{}-{}-{}.cu", l.entrypoint, arch.nvrtc_name(), sources.len());
                            sources.push((name, l.source.clone()));
                            judge(&nvrtc, l, arch)
                        })
                        .clone();
                    archs.push(result);
                }
                rows.push(KernelRow {
                    call: call.call.clone(),
                    at: call.at.clone(),
                    dtype: dtype_name(dtype),
                    entrypoint: launch.entrypoint.clone(),
                    id: launch.id.clone(),
                    cube_dim: launch.cube_dim,
                    cube_count: launch.cube_count,
                    bounds_checked: matches!(launch.mode, cubecl::prelude::ExecutionMode::Checked),
                    dynamic_shared: launch.dynamic_shared_bytes as u64,
                    archs,
                });
            }
        }
    }
    // The sources differ between architectures (cubecl-cuda's options do): count one's.
    let distinct_sources =
        compiled.keys().filter(|(_, v)| Some(v) == o.archs.first().map(|a| &a.version)).count();
    Ok(Report {
        nvrtc: format!("{}.{}", nvrtc.version.0, nvrtc.version.1),
        archs: o.archs.iter().map(Arch::nvrtc_name).collect(),
        batch: o.batch,
        rows,
        cubecl_errors,
        distinct_sources,
        seconds: start.elapsed().as_secs_f64(),
        sources,
    })
}
