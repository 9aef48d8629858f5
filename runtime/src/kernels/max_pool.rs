//! Max pooling on the host, overlapping windows included (AlexNet's 3x3 windows 2 apart), on NCHW
//! slices: the forward with or without the argmax indices its gradient needs, and the gradient.
//! Channel planes run in parallel; each plane's loops are compiled for the widest vector units
//! the CPU has ([`Isa`]). Re-exported by [`super::reference`], whose kernels define what the GPU
//! kernels must compute.

use rayon::prelude::*;

use super::cpu_bf16::convert::widen_into;
use super::reference::Real;
use super::simd::{dispatch, Isa, Kernel};
use super::PoolParams;

/// Output size of a pooling window over `input`.
pub fn pooled(input: usize, p: &PoolParams) -> usize {
    (input + 2 * p.padding - p.kernel) / p.stride + 1
}

/// Whether `v` replaces `best` as a window's maximum: greater, or the first NaN. Written without
/// short circuits so that the loops that use it compile to selects, not unpredictable branches.
#[inline(always)]
fn beats<T: Real>(v: T, best: T) -> bool {
    // Not `v <= best` is greater or `v` NaN; a NaN best (`best != best`) is never replaced.
    #[allow(clippy::eq_op)]
    let best_is_number = best == best;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let above_or_nan = !(v <= best);
    above_or_nan & best_is_number
}

/// Max over each window; ties go to the first maximum in row-major order (as PyTorch). Returns
/// the maxima and, for each, the flat index `ih * w + iw` of its input in the channel's plane.
pub fn max_pool_forward<T: Real>(x: &[T], shape: [usize; 4], p: &PoolParams) -> (Vec<T>, Vec<i32>) {
    pool_planes::<T, true>(x, shape, p)
}

/// Max over each window, without the indices (inference, where no gradient needs them); NaN
/// propagates as in [`max_pool_forward`].
pub fn max_pool_values<T: Real>(x: &[T], shape: [usize; 4], p: &PoolParams) -> Vec<T> {
    pool_planes::<T, false>(x, shape, p).0
}

/// Separable max pooling, one channel plane per task: each input row's maxima over the output
/// columns' windows first (the first column wins ties), then down each window's rows (the first
/// row wins), which is row-major order. With `ARG`, the winners' flat indices too (else empty).
fn pool_planes<T: Real, const ARG: bool>(x: &[T], shape: [usize; 4], p: &PoolParams) -> (Vec<T>, Vec<i32>) {
    let [_, _, h, w] = shape;
    let windows = Windows::new(h, w, p);
    let (oh, ow) = (windows.rows.len(), windows.cols.len());
    let planes = x.len() / (h * w);
    let mut y = vec![T::zero(); planes * oh * ow];
    // Without `ARG`, one unused index per plane keeps the tasks' shape.
    let arg_len = if ARG { oh * ow } else { 1 };
    let mut arg = vec![0i32; planes * arg_len];
    let isa = Isa::detect();
    let tasks = y.par_chunks_mut(oh * ow).zip(arg.par_chunks_mut(arg_len));
    tasks.zip(x.par_chunks(h * w)).for_each_init(
        || Scratch::new(h, &windows, ARG),
        |scratch, ((y, arg), x)| dispatch(isa, Plane::<T, ARG> { x, y, arg, scratch, windows: &windows }),
    );
    (y, arg)
}

/// [`max_pool_forward`] (with `ARG`; else [`max_pool_values`]) of bf16 values given as their
/// bits, the maxima as bf16 bits: each plane widened to f32 in its task's own buffer (a plane of
/// AlexNet's is at most 12 KiB) and pooled as an f32 plane is. A maximum is one of its window's
/// values, so its bits come back as they were: the f32 pooling of the tensor widened, bit for bit.
pub fn max_pool_bf16<const ARG: bool>(x: &[u16], shape: [usize; 4], p: &PoolParams) -> (Vec<u16>, Vec<i32>) {
    let [_, _, h, w] = shape;
    let windows = Windows::new(h, w, p);
    let (oh, ow) = (windows.rows.len(), windows.cols.len());
    let planes = x.len() / (h * w);
    let mut y = vec![0u16; planes * oh * ow];
    let arg_len = if ARG { oh * ow } else { 1 };
    let mut arg = vec![0i32; planes * arg_len];
    let isa = Isa::detect();
    let space = || (Scratch::<f32>::new(h, &windows, ARG), vec![0.0f32; h * w], vec![0.0f32; oh * ow]);
    let tasks = y.par_chunks_mut(oh * ow).zip(arg.par_chunks_mut(arg_len));
    tasks.zip(x.par_chunks(h * w)).for_each_init(space, |(scratch, wide, maxima), ((y, arg), x)| {
        widen_into(wide, x);
        dispatch(isa, Plane::<f32, ARG> { x: wide, y: maxima, arg, scratch, windows: &windows });
        for (bits, m) in y.iter_mut().zip(maxima.iter()) {
            *bits = (m.to_bits() >> 16) as u16;
        }
    });
    (y, arg)
}

/// The clipped window of each output row and column (first and one-past-last input index).
struct Windows {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
    w: usize,
    p: PoolParams,
}

impl Windows {
    /// The windows of an `h x w` plane, computed once for all its planes.
    fn new(h: usize, w: usize, p: &PoolParams) -> Self {
        let span = |o: usize, len: usize| {
            let start = (o * p.stride) as isize - p.padding as isize;
            (start.max(0) as usize, ((start + p.kernel as isize).min(len as isize)) as usize)
        };
        Windows {
            rows: (0..pooled(h, p)).map(|r| span(r, h)).collect(),
            cols: (0..pooled(w, p)).map(|c| span(c, w)).collect(),
            w,
            p: *p,
        }
    }
}

/// A task's space for one plane: each input row's maxima over the output columns' windows, their
/// columns (with the argmax), and the row split into its stride phases.
struct Scratch<T> {
    best: Vec<T>,
    at: Vec<i32>,
    phases: Vec<T>,
}

impl<T: Real> Scratch<T> {
    /// A task's space for planes of `h` rows pooled by `windows`, with room for the argmax when
    /// `arg`.
    fn new(h: usize, windows: &Windows, arg: bool) -> Self {
        let ow = windows.cols.len();
        Scratch {
            best: vec![T::zero(); h * ow],
            at: vec![0i32; if arg { h * ow } else { 0 }],
            phases: vec![T::zero(); windows.w + windows.p.stride],
        }
    }
}

/// One channel plane's pooling: its input, outputs and the task's scratch space.
struct Plane<'a, T, const ARG: bool> {
    x: &'a [T],
    y: &'a mut [T],
    arg: &'a mut [i32],
    scratch: &'a mut Scratch<T>,
    windows: &'a Windows,
}

impl<T: Real, const ARG: bool> Kernel for Plane<'_, T, ARG> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        pool_plane::<T, ARG>(self.x, self.y, self.arg, self.scratch, self.windows)
    }
}

/// One channel plane: the row pass into `scratch`, then the column pass into `y` (and `arg`).
#[inline(always)]
fn pool_plane<T: Real, const ARG: bool>(
    x: &[T],
    y: &mut [T],
    arg: &mut [i32],
    scratch: &mut Scratch<T>,
    windows: &Windows,
) {
    let Windows { rows, cols, w, p } = windows;
    let (w, ow) = (*w, cols.len());
    let Scratch { best, at, phases } = scratch;
    for (i, line) in x.chunks(w).enumerate() {
        let at = if ARG { &mut at[i * ow..(i + 1) * ow] } else { &mut [][..] };
        row_pass::<T, ARG>(line, &mut best[i * ow..(i + 1) * ow], at, phases, cols, p);
    }
    for (r, &(r0, r1)) in rows.iter().enumerate() {
        let y = &mut y[r * ow..(r + 1) * ow];
        y.copy_from_slice(&best[r0 * ow..(r0 + 1) * ow]);
        if ARG {
            let arg = &mut arg[r * ow..(r + 1) * ow];
            for (a, j) in arg.iter_mut().zip(&at[r0 * ow..(r0 + 1) * ow]) {
                *a = (r0 * w) as i32 + *j;
            }
            for i in r0 + 1..r1 {
                let (row, cols_at) = (&best[i * ow..(i + 1) * ow], &at[i * ow..(i + 1) * ow]);
                fold_row_with_arg(y, arg, row, cols_at, (i * w) as i32);
            }
        } else {
            for i in r0 + 1..r1 {
                fold_row(y, &best[i * ow..(i + 1) * ow]);
            }
        }
    }
}

// The element-wise folds below are index loops over slices of one length (the compiler drops the
// bounds checks); compiled for AVX-512 or AVX2 ([`Isa`]) their selects vectorise with masked
// stores. For SSE2 alone they stay scalar.

/// `y = max(y, row)` element-wise, the first (`y`) winning ties; `arg` follows with `base + at`.
#[inline(always)]
fn fold_row_with_arg<T: Real>(y: &mut [T], arg: &mut [i32], row: &[T], at: &[i32], base: i32) {
    let n = y.len();
    let (arg, row, at) = (&mut arg[..n], &row[..n], &at[..n]);
    for c in 0..n {
        let take = beats(row[c], y[c]);
        y[c] = if take { row[c] } else { y[c] };
        arg[c] = if take { base + at[c] } else { arg[c] };
    }
}

/// `y = max(y, row)` element-wise (NaN propagating).
#[inline(always)]
fn fold_row<T: Real>(y: &mut [T], row: &[T]) {
    let row = &row[..y.len()];
    for c in 0..y.len() {
        y[c] = if beats(row[c], y[c]) { row[c] } else { y[c] };
    }
}

/// `best = max(best, run)` element-wise, the first winning ties; `at` becomes `k` where `run` won.
#[inline(always)]
fn fold_run_with_arg<T: Real>(best: &mut [T], at: &mut [i32], run: &[T], k: i32) {
    let n = best.len();
    let (at, run) = (&mut at[..n], &run[..n]);
    for c in 0..n {
        let take = beats(run[c], best[c]);
        best[c] = if take { run[c] } else { best[c] };
        at[c] = if take { k } else { at[c] };
    }
}

/// One input row's maximum over each output column's window (and, with `ARG`, its column). With
/// no padding every window is whole and [`whole_windows`] takes it; `phases` is scratch space.
#[inline(always)]
fn row_pass<T: Real, const ARG: bool>(
    line: &[T],
    best: &mut [T],
    at: &mut [i32],
    phases: &mut [T],
    cols: &[(usize, usize)],
    p: &PoolParams,
) {
    if p.padding == 0 {
        return whole_windows::<T, ARG>(line, best, at, phases, p);
    }
    for (c, &(c0, c1)) in cols.iter().enumerate() {
        let (mut m, mut j) = (line[c0], c0 as i32);
        for (jj, &v) in (c0 + 1..c1).zip(&line[c0 + 1..c1.max(c0 + 1)]) {
            let take = beats(v, m);
            m = if take { v } else { m };
            j = if take { jj as i32 } else { j };
        }
        best[c] = m;
        if ARG {
            at[c] = j;
        }
    }
}

/// [`row_pass`] for whole windows, in loops the compiler vectorises: the row is split into its
/// `stride` phases (`phase r` holds columns `r, r + stride, ...`), so the `k`-th element of every
/// window is one contiguous run, `phase k % stride` from `k / stride`; one pass per window
/// offset then runs over all output columns.
#[inline(always)]
fn whole_windows<T: Real, const ARG: bool>(
    line: &[T],
    best: &mut [T],
    at: &mut [i32],
    phases: &mut [T],
    p: &PoolParams,
) {
    let (ow, s) = (best.len(), p.stride);
    let len = line.len().div_ceil(s);
    if s == 2 {
        // Stride 2 (AlexNet's): pairs, which the compiler turns into vector shuffles.
        let (even, odd) = phases[..2 * len].split_at_mut(len);
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(line.chunks_exact(2)) {
            (*e, *o) = (pair[0], pair[1]);
        }
        if line.len() % 2 == 1 {
            even[len - 1] = line[line.len() - 1];
        }
    } else {
        for (r, phase) in phases[..s * len].chunks_mut(len).enumerate() {
            for (d, &v) in phase.iter_mut().zip(line[r..].iter().step_by(s)) {
                *d = v;
            }
        }
    }
    best.copy_from_slice(&phases[..ow]);
    if ARG {
        at[..ow].fill(0);
    }
    for k in 1..p.kernel {
        let start = (k % s) * len + k / s;
        let run = &phases[start..start + ow];
        if ARG {
            fold_run_with_arg(best, &mut at[..ow], run, k as i32);
        } else {
            fold_row(best, run);
        }
    }
    if ARG {
        for (c, a) in at[..ow].iter_mut().enumerate() {
            *a += (c * s) as i32;
        }
    }
}

/// The pooling gradient: each input receives `dy` from every window that covers it and chose it
/// (with a 3x3 window and stride 2, up to four). Planes run in parallel and each plane is summed
/// by one task, so no two tasks write the same element (the GPU kernels gather instead).
pub fn max_pool_backward<T: Real>(
    dy: &[T],
    arg: &[i32],
    input_hw: [usize; 2],
    out_hw: [usize; 2],
    _p: &PoolParams,
) -> Vec<T> {
    let ([h, w], [oh, ow]) = (input_hw, out_hw);
    let planes = dy.len() / (oh * ow);
    let mut dx = vec![T::zero(); planes * h * w];
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(oh * ow).zip(arg.par_chunks(oh * ow))).for_each(
        |(dx, (dy, arg))| {
            for (g, &a) in dy.iter().zip(arg) {
                dx[a as usize] = dx[a as usize] + *g;
            }
        },
    );
    dx
}
