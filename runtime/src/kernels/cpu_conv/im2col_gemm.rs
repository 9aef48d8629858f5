//! [`ConvAlgo::Im2colGemm`](super::ConvAlgo::Im2colGemm): per group, the forward pass is
//! `W[Mg x Kg] * col[Kg x P]`, the data gradient `W^T * dY` followed by col2im, and the weight
//! gradient `dY * col^T` summed over the batch. One rayon task takes a run of images; where one
//! image's output plane `P` is small (AlexNet's 13 x 13 layers), the task lays its images' column
//! matrices side by side so that each matrix product is wide enough to run near the machine's
//! peak. The forward pass writes the column matrix a few output rows at a time, at most
//! [`COLUMN_BYTES`] of it, and multiplies each part while it is in L2. Each product runs on the
//! task's own thread ([`matmul`]). The weight gradient is a sum
//! over the batch: at most [`PARTIAL_SUMS`] tasks each add the products of their consecutive runs
//! of images in order, and their partial sums are added in task order. The tasks and runs depend
//! on the shape alone (never on which thread steals what, nor on how many there are), so the
//! gradient is the same bits on any pool.

use rayon::prelude::*;

use super::lowering::{col2im, im2col, PlaneGeometry};
use super::matmul::{matmul, ConvElement, MatRef};
use super::{images_per_task, ConvShape};
use crate::kernels::simd::{dispatch, Isa, Kernel};

/// The number of output columns one matrix product should have at least: below it, images are
/// batched into one product.
const TARGET_COLUMNS: usize = 1024;

/// The most bytes of column matrix one forward product reads: im2col writes a few output rows
/// at a time, and the product reads them while they are still in L2 (conv1's whole column
/// matrix, 363 x 3025 f32, is 4.4 MB).
const COLUMN_BYTES: usize = 384 << 10;

/// The fewest columns a forward product has (narrower ones repack the weights too often).
const MIN_COLUMNS: usize = 192;

/// The most partial sums a weight gradient is split into: the most threads it runs on, and a
/// bound on the memory its partial sums take (8 weight-sized buffers).
const PARTIAL_SUMS: usize = 8;

/// The sizes the three passes share (and the bf16 engine's convolutions, with their own `nb`).
pub(crate) struct Dims {
    pub(crate) g: PlaneGeometry,
    /// Output pixels per plane.
    pub(crate) pl: usize,
    /// Input and output channels per group.
    pub(crate) cg: usize,
    pub(crate) mg: usize,
    /// Rows of a group's column matrix.
    pub(crate) kg: usize,
    /// Values of one image's input and output.
    pub(crate) in_img: usize,
    pub(crate) out_img: usize,
    /// Values of one group's input planes.
    pub(crate) in_group: usize,
    /// Images per task.
    pub(crate) nb: usize,
}

impl Dims {
    pub(crate) fn of(s: &ConvShape) -> Self {
        let g = PlaneGeometry::of(s);
        let pl = g.out_plane();
        let (cg, mg) = (s.in_channels / s.groups, s.out_channels / s.groups);
        Dims {
            g,
            pl,
            cg,
            mg,
            kg: cg * s.kernel * s.kernel,
            in_img: s.in_channels * g.h * g.w,
            out_img: s.out_channels * pl,
            in_group: cg * g.h * g.w,
            nb: images_per_task(s.batch, TARGET_COLUMNS.div_ceil(pl.max(1))),
        }
    }

    /// Columns per product in the forward pass: all `ld` where their column matrix fits in
    /// [`COLUMN_BYTES`], else as many as do (at least [`MIN_COLUMNS`]).
    pub(crate) fn columns_per_product(&self, ld: usize, elem: usize) -> usize {
        (COLUMN_BYTES / (self.kg * elem)).max(MIN_COLUMNS).min(ld)
    }

    /// Columns `q` of group `grp`'s column matrix of images `n0..` side by side (image `j`'s
    /// plane at columns `j * P..`), into `col` with row stride `q.len()`.
    pub(crate) fn columns<T: Copy + Default>(
        &self,
        x: &[T],
        n0: usize,
        grp: usize,
        q: std::ops::Range<usize>,
        col: &mut [T],
    ) {
        for j in q.start / self.pl..q.end.div_ceil(self.pl) {
            let (lo, hi) =
                (q.start.max(j * self.pl) - j * self.pl, q.end.min((j + 1) * self.pl) - j * self.pl);
            let xi = &x[(n0 + j) * self.in_img + grp * self.in_group..][..self.in_group];
            im2col(xi, self.cg, &self.g, col, q.len(), j * self.pl + lo - q.start, lo..hi);
        }
    }

    /// Group `grp`'s weight as an `Mg x Kg` matrix.
    fn weight<'a, T>(&self, w: &'a [T], grp: usize) -> MatRef<'a, T> {
        let data = &w[grp * self.mg * self.kg..][..self.mg * self.kg];
        MatRef { data, rows: self.mg, cols: self.kg, rs: self.kg, cs: 1 }
    }

    /// Copies rows `grp * Mg..` of the output-shaped tensor `src` for images `n0..n0 + nbt` side
    /// by side into `packed` (row stride `nbt * P`).
    fn pack_rows<T: Copy>(&self, src: &[T], n0: usize, nbt: usize, grp: usize, packed: &mut [T]) {
        let ld = nbt * self.pl;
        for j in 0..nbt {
            for m in 0..self.mg {
                let from = &src[(n0 + j) * self.out_img + (grp * self.mg + m) * self.pl..][..self.pl];
                packed[m * ld + j * self.pl..][..self.pl].copy_from_slice(from);
            }
        }
    }

    /// Group `grp`'s rows of the output-shaped `src` for images `n0..n0 + nbt` as an `Mg x nbt*P`
    /// matrix: in place for one image, packed into `scratch` otherwise.
    fn out_rows<'a, T: Copy>(
        &self,
        src: &'a [T],
        n0: usize,
        nbt: usize,
        grp: usize,
        scratch: &'a mut [T],
    ) -> MatRef<'a, T> {
        let ld = nbt * self.pl;
        if nbt == 1 {
            let data = &src[n0 * self.out_img + grp * self.mg * self.pl..][..self.mg * self.pl];
            return MatRef { data, rows: self.mg, cols: ld, rs: ld, cs: 1 };
        }
        self.pack_rows(src, n0, nbt, grp, scratch);
        MatRef { data: &*scratch, rows: self.mg, cols: ld, rs: ld, cs: 1 }
    }

    /// The weight gradient of run `run` of images into `acc` (added to it when `accumulate`).
    fn add_weight_grad<T: ConvElement>(
        &self,
        s: &ConvShape,
        x: &[T],
        dy: &[T],
        run: usize,
        accumulate: bool,
        acc: &mut [T],
    ) {
        let (n0, nbt) = (run * self.nb, self.nb.min(s.batch - run * self.nb));
        let ld = nbt * self.pl;
        let packed = if nbt > 1 { self.mg * ld } else { 0 };
        T::with_scratch(self.kg * ld + packed, |scratch| {
            let (col, pack) = scratch.split_at_mut(self.kg * ld);
            for grp in 0..s.groups {
                self.columns(x, n0, grp, 0..ld, col);
                let col_t = MatRef { data: &*col, rows: ld, cols: self.kg, rs: 1, cs: ld };
                let lhs = self.out_rows(dy, n0, nbt, grp, pack);
                let dst = &mut acc[grp * self.mg * self.kg..][..self.mg * self.kg];
                matmul(dst, self.kg, accumulate, lhs, col_t);
            }
        });
    }
}

/// Adds `bias` per channel and applies ReLU, in place on NCHW images of `channels` planes.
fn bias_relu<T: ConvElement>(y: &mut [T], bias: Option<&[T]>, relu: bool, channels: usize, plane: usize) {
    if bias.is_none() && !relu {
        return;
    }
    dispatch(Isa::detect(), BiasRelu { y, bias, relu, channels, plane });
}

/// [`bias_relu`]'s loops, compiled per instruction set.
struct BiasRelu<'a, T> {
    y: &'a mut [T],
    bias: Option<&'a [T]>,
    relu: bool,
    channels: usize,
    plane: usize,
}

impl<T: ConvElement> Kernel for BiasRelu<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let BiasRelu { y, bias, relu, channels, plane } = self;
        for (i, row) in y.chunks_mut(plane).enumerate() {
            let b = bias.map_or(T::zero(), |b| b[i % channels]);
            if relu {
                for v in row {
                    let z = *v + b;
                    // `z < 0`, not `max`: a NaN stays a NaN.
                    *v = if z < T::zero() { T::zero() } else { z };
                }
            } else {
                for v in row {
                    *v = *v + b;
                }
            }
        }
    }
}

pub fn forward<T: ConvElement>(s: &ConvShape, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool) -> Vec<T> {
    let d = Dims::of(s);
    let mut y = vec![T::zero(); s.batch * d.out_img];
    y.par_chunks_mut(d.nb * d.out_img).enumerate().for_each(|(t, y_chunk)| {
        let (n0, nbt) = (t * d.nb, y_chunk.len() / d.out_img);
        let ld = nbt * d.pl;
        let chunk = d.columns_per_product(ld, std::mem::size_of::<T>());
        let packed = if nbt > 1 { d.mg * ld } else { 0 };
        T::with_scratch(d.kg * chunk + packed, |scratch| {
            let (col, out) = scratch.split_at_mut(d.kg * chunk);
            for grp in 0..s.groups {
                for q0 in (0..ld).step_by(chunk) {
                    let q1 = (q0 + chunk).min(ld);
                    d.columns(x, n0, grp, q0..q1, col);
                    let cols = MatRef { data: &*col, rows: d.kg, cols: q1 - q0, rs: q1 - q0, cs: 1 };
                    if nbt == 1 {
                        let dst = &mut y_chunk[grp * d.mg * d.pl + q0..];
                        matmul(dst, d.pl, false, d.weight(w, grp), cols);
                    } else {
                        matmul(&mut out[q0..], ld, false, d.weight(w, grp), cols);
                    }
                }
                if nbt == 1 {
                    continue;
                }
                for j in 0..nbt {
                    for m in 0..d.mg {
                        let to = &mut y_chunk[j * d.out_img + (grp * d.mg + m) * d.pl..][..d.pl];
                        to.copy_from_slice(&out[m * ld + j * d.pl..][..d.pl]);
                    }
                }
            }
        });
        bias_relu(y_chunk, bias, relu, s.out_channels, d.pl);
    });
    y
}

pub fn data_grad<T: ConvElement>(s: &ConvShape, dy: &[T], w: &[T]) -> Vec<T> {
    let d = Dims::of(s);
    let mut dx = vec![T::zero(); s.batch * d.in_img];
    dx.par_chunks_mut(d.nb * d.in_img).enumerate().for_each(|(t, dx_chunk)| {
        let (n0, nbt) = (t * d.nb, dx_chunk.len() / d.in_img);
        let ld = nbt * d.pl;
        let packed = if nbt > 1 { d.mg * ld } else { 0 };
        T::with_scratch(d.kg * ld + packed, |scratch| {
            let (dcol, pack) = scratch.split_at_mut(d.kg * ld);
            for grp in 0..s.groups {
                let w_t = d.weight(w, grp);
                let w_t = MatRef { rows: d.kg, cols: d.mg, rs: 1, cs: d.kg, ..w_t };
                let rhs = d.out_rows(dy, n0, nbt, grp, pack);
                matmul(dcol, ld, false, w_t, rhs);
                for j in 0..nbt {
                    let dxi = &mut dx_chunk[j * d.in_img + grp * d.in_group..][..d.in_group];
                    col2im(dcol, ld, j * d.pl, d.cg, &d.g, dxi);
                }
            }
        });
    });
    dx
}

pub fn weight_grad<T: ConvElement>(s: &ConvShape, x: &[T], dy: &[T]) -> Vec<T> {
    let d = Dims::of(s);
    let runs = s.batch.div_ceil(d.nb);
    let per_sum = runs.div_ceil(PARTIAL_SUMS);
    let partial = |first: usize| {
        let mut acc = vec![T::zero(); s.out_channels * d.kg];
        for run in first..runs.min(first + per_sum) {
            d.add_weight_grad(s, x, dy, run, run > first, &mut acc);
        }
        acc
    };
    let parts: Vec<Vec<T>> =
        (0..runs.div_ceil(per_sum)).into_par_iter().map(|t| partial(t * per_sum)).collect();
    add_in_order(parts, s.out_channels * d.kg)
}

/// `parts[0] + parts[1] + ...` (each `len` long; zeros for none), element by element, added in
/// that order (in parallel over the elements).
fn add_in_order<T: ConvElement>(mut parts: Vec<Vec<T>>, len: usize) -> Vec<T> {
    const CHUNK: usize = 1 << 14;
    if parts.is_empty() {
        return vec![T::zero(); len];
    }
    let mut total = parts.remove(0);
    total.par_chunks_mut(CHUNK).enumerate().for_each(|(c, total)| {
        for part in &parts {
            for (t, p) in total.iter_mut().zip(&part[c * CHUNK..]) {
                *t = *t + *p;
            }
        }
    });
    total
}
