//! `alexrt check-nvrtc`: NVIDIA's compiler on every CubeCL kernel the runtime launches on CUDA,
//! without a GPU. [`ptxas`] reads and judges ptxas's verbose report against each architecture's
//! limits: any spill, or shared memory or registers past the limits, fail. [`table`] prints the
//! result. See docs/gpu-kernels-nvrtc.md.

pub mod ptxas;
pub mod table;
