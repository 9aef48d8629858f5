//! Single-threaded strided matrix products over slices (the `gemm` crate, AVX-512 where the CPU
//! has it), and the scratch buffers of the engine's column matrices: this thread's, from
//! [`crate::kernels::scratch`], so every convolution reuses the same pages.

use crate::kernels::reference::Real;
use crate::kernels::scratch::scratch;

/// The element types the engine runs in (`f32`, and `f64` for the parity and gradient checks).
pub trait ConvElement: Real + Default {
    /// Runs `f` on a scratch buffer of `len` elements from this thread's pool (another one if a
    /// buffer is already in use). Its contents are unspecified.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        f(&mut scratch::<Self>(len))
    }
}

impl ConvElement for f32 {}

impl ConvElement for f64 {}

/// A read-only strided matrix: element `(i, j)` at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<T> MatRef<'_, T> {
    /// Panics (a bug in the engine, never input-dependent once lengths are checked) unless every
    /// element lies inside the slice.
    fn assert_in_bounds(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "{what}: strided matrix past its slice");
        }
    }
}

/// `dst = lhs * rhs`, or `dst += lhs * rhs` when `accumulate`; `dst` is row-major with row stride
/// `dst_rs`, on this thread.
pub fn matmul<T: ConvElement>(
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
) {
    matmul_on(dst, dst_rs, accumulate, lhs, rhs, Threads::This)
}

/// Where a matrix product runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread (inside a rayon task of the caller's own).
    This,
    /// Split by gemm over rayon's whole pool (a caller that is not itself in a parallel loop).
    Pool,
}

/// [`matmul`] on the threads `threads` says.
pub fn matmul_on<T: ConvElement>(
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    threads: Threads,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    lhs.assert_in_bounds("lhs");
    rhs.assert_in_bounds("rhs");
    MatRef { data: &*dst, rows: m, cols: n, rs: dst_rs, cs: 1 }.assert_in_bounds("dst");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(T::zero());
            }
        }
        return;
    }
    // SAFETY: every index each matrix's strides reach lies in its slice (checked above), `dst`
    // is borrowed exclusively, and gemm only accepts f32 / f64 / f16 / complex, of which
    // `ConvElement` is implemented for f32 and f64 only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            match threads {
                Threads::This => gemm::Parallelism::None,
                Threads::Pool => gemm::Parallelism::Rayon(0),
            },
        );
    }
}
