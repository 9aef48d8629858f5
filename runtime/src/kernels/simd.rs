//! Which vector instructions the host kernels' loops are compiled for, chosen at run time so that
//! one binary stays correct on every CPU. The default target (x86-64 with SSE2) leaves loops that
//! select per element (max pooling with its argmax) scalar; with AVX-512's masked stores, or
//! AVX2's, the compiler vectorises them. A kernel provides one copy per [`Isa`], each a
//! `#[target_feature]` function around the same `#[inline(always)]` body.

/// The instruction sets a kernel is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512 (F, BW, VL, DQ), AVX2 and FMA.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// What the binary targets (SSE2 on x86-64; everything on other architectures).
    Baseline,
}

impl Isa {
    /// The widest this CPU runs (the detection is cached by the standard library).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq");
            if avx2 && avx512 {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

/// A piece of kernel work whose [`Kernel::run`] is `#[inline(always)]`, so that [`dispatch`]
/// compiles it once per instruction set. (A closure cannot promise that: it would stay compiled
/// for the baseline.)
pub trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for `isa` (from [`Isa::detect`]).
#[inline(always)]
pub fn dispatch<K: Kernel>(isa: Isa, kernel: K) -> K::Output {
    match isa {
        // SAFETY: `Isa::detect` found the instruction sets these copies are compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { run_avx512(kernel) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { run_avx2(kernel) },
        _ => kernel.run(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
fn run_avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}
