//! `alexrt check-nvrtc`: NVIDIA's compiler on every CubeCL kernel the runtime launches on CUDA,
//! without a GPU. The runtime's own launch code runs on a compile-only CubeCL target per
//! architecture ([`target`], driven by [`launches`]), which keeps the CUDA C++ that cubecl-cuda
//! would hand to NVRTC; NVRTC ([`compile`]) compiles each distinct source to a cubin for
//! sm_80 and sm_90a (A100, H100/H200) with ptxas's verbose report, which [`ptxas`] reads and
//! judges: a compile error, any spill, or shared memory or registers past the architecture's
//! limits fail. [`table`] prints the result. See docs/gpu-kernels-nvrtc.md.

#[cfg(feature = "cuda")]
mod check;
#[cfg(feature = "cuda")]
pub mod compile;
#[cfg(feature = "cuda")]
pub mod launches;
pub mod ptxas;
pub mod table;
#[cfg(feature = "cuda")]
pub mod target;

#[cfg(feature = "cuda")]
pub use check::{check_nvrtc, native_arch, NvrtcOptions};
