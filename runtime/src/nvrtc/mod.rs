//! `alexrt check-nvrtc`: NVIDIA's compiler on every CubeCL kernel the runtime launches on CUDA,
//! without a GPU. The runtime's own launch code runs on a compile-only CubeCL target per
//! architecture ([`target`]), which keeps the CUDA C++ that cubecl-cuda would hand to NVRTC.
//! [`ptxas`] reads and judges ptxas's verbose report against each architecture's limits: any
//! spill, or shared memory or registers past the limits, fail. [`table`] prints the result.
//! See docs/gpu-kernels-nvrtc.md.

pub mod ptxas;
pub mod table;
#[cfg(feature = "cuda")]
pub mod target;
