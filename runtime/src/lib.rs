//! alexrt: executes plans written by alexc on a burn backend.
//!
//! - [`exec`]: the interpreter over a plan's schedule, on [`value`]s of any rank;
//! - [`kernels`]: LRN, max pooling, fused epilogues and the SGD update as a backend trait, with
//!   reference CPU kernels and CubeCL kernels; [`select`]: which fused kernels run each fused node;
//! - [`device`]: which backend a run uses;
//! - [`data`]: datasets, preprocessing and the loader;
//! - [`session`], [`train`], [`progress`], [`metrics`], [`run_dir`]: a training run, its loop, its
//!   state and outputs; [`eval`]: evaluation and inference;
//! - [`checkpoint`], [`weights`], [`tensor_file`]: safetensors files with checksums;
//! - [`tensorboard`]: a training run's curves as TensorBoard event files; [`trace`]: a step as a
//!   Chrome trace (`alexrt bench --trace`);
//! - [`check`]: `alexrt check-kernels`, the device kernels against the CPU; [`nvrtc`]: `alexrt
//!   check-nvrtc`, NVIDIA's compiler on every CubeCL kernel for sm_80 and sm_90a, without a GPU;
//! - [`distributed`]: data-parallel runs over MPI (`mpirun -np N alexrt train`);
//! - [`cli`]: the `alexrt` command line.
//!
//! It reads the IR, the catalog and the plan file through `alexir`, never the compiler.

pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod exec;
pub mod init;
pub mod kernel_cache;
pub mod kernels;
pub mod metrics;
pub mod nvrtc;
pub mod placement;
pub mod plot;
pub mod progress;
pub mod run_dir;
pub mod select;
pub mod session;
pub mod tensor_file;
pub mod tensorboard;
pub mod trace;
pub mod train;
pub mod value;
pub mod weights;

use std::path::Path;

use alexir::memory::memory_table;
use alexir::plan::{Plan, PlanError};
use alexir::units::human_bytes;

pub use alexir::say;
pub use error::RunError;

/// The CPU backend.
pub type Cpu = burn::backend::Flex;

/// A GPU through wgpu (Vulkan, Metal, DX12; or Mesa's lavapipe on the CPU), with our CubeCL
/// kernels. Burn's `CubeBackend` directly, not its fusion wrapper.
pub type Wgpu = burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u32>;

/// An NVIDIA GPU through CUDA, with our CubeCL kernels (cargo feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// The text `alexrt inspect` prints: a header, the step's IR, its memory plan, and the kernels
/// that run each fused node.
pub fn inspect(path: &Path) -> Result<String, PlanError> {
    let plan = Plan::read(path)?;
    let m = &plan.memory;
    let params: usize = plan
        .graph
        .node_indices()
        .into_iter()
        .filter(|&n| matches!(plan.graph.g[n].op, alexir::catalog::Op::Param(_)))
        .map(|n| plan.graph.g[n].outputs[0].elements_per_sample())
        .sum();
    let mut out = format!(
        "{}: {:?} step of `{}` from {} (alexc {})\n  batch {}{}, {} parameters, {} scheduled nodes\n  arena {} (lower bound {}), persistent {}\n",
        path.display(),
        plan.mode,
        plan.graph.name,
        plan.source,
        plan.compiler,
        m.batch_size,
        if plan.replicas > 1 {
            format!(" per replica x {} replicas (mpirun -np {})", plan.replicas, plan.replicas)
        } else {
            String::new()
        },
        alexir::units::group(params as u64),
        plan.graph.schedule.len(),
        human_bytes(m.arena_bytes),
        human_bytes(m.lower_bound_bytes),
        human_bytes(m.persistent_bytes),
    );
    out.push_str(&alexir::ir::print_graph(&plan.graph, "memory"));
    out.push_str(&memory_table(m));
    out.push_str("kernels of the fused nodes (as CubeCL runs them; the CPU runs the same groups with burn ops and host kernels)\n");
    for (name, pattern, how) in select::kernel_table(&plan.graph) {
        out.push_str(&format!("  {name:<16} {pattern:<44} {how}\n"));
    }
    Ok(out)
}

/// Tunes the C allocator for training: a step frees and reallocates the same large tensors (151 MB
/// for fc6's weight gradient, 148 MB for conv1's output at batch 128), and with glibc's defaults
/// each allocation is page-faulted in afresh: blocks above 32 MiB are always their own `mmap`,
/// returned to the kernel when freed, and the top of the heap is trimmed. So large blocks come
/// from the heap too (`M_MMAP_MAX` 0), the heap is never trimmed, and it grows by 1 GiB of slack
/// at a time: freed memory stays with the process for the next step. At batch 16 that made the
/// alexnet.ron step about 17% faster on two cores (the slack alone); at batch 128 on one thread
/// the rest took the page faults from 1.68 to 0.60 million a run (5 steps) and the step from
/// 8.25s and 7.94s to 6.92s and 7.15s (two runs each, alternated). Does nothing on other C
/// libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 1 << 30);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // -1: never trim (glibc's documented value).
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
