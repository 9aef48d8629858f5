//! bf16 fully connected layers on the CPU, on [`gemm`]: `y = x W^T` and `dx = dy W` rounded to
//! bf16 once, `dW = dy^T x` in f32 (a sum over the batch). The weight is read as its f32 master or
//! as bf16. The output's columns (or the weight gradient's rows) are cut into fixed parts that
//! rayon runs, each writing its own: the same bits on any number of threads.

use rayon::prelude::*;

use super::conv::{once_bf16, Weight};
use super::convert::{round_bias_into, Bias};
use super::gemm::{gemm, Operand};
use crate::kernels::cpu_conv::MatRef;

/// Columns of the output one part computes.
const PART: usize = 256;

/// `w` (`out x in`, row-major) as an operand: itself (`transposed` false) or its transpose.
fn weight(w: Weight<'_>, out: usize, inp: usize, transposed: bool) -> Operand<'_> {
    let (rows, cols, rs, cs) = if transposed { (inp, out, 1, inp) } else { (out, inp, inp, 1) };
    match w {
        Weight::F32(w) => Operand::F32(MatRef { data: w, rows, cols, rs, cs }),
        Weight::Bf16(w) => Operand::Bf16(MatRef { data: w, rows, cols, rs, cs }),
    }
}

/// Columns `c0..c0 + n` of `m`.
fn columns(m: Operand<'_>, c0: usize, n: usize) -> Operand<'_> {
    match m {
        Operand::F32(m) => Operand::F32(MatRef { data: &m.data[c0 * m.cs..], cols: n, ..m }),
        Operand::Bf16(m) => Operand::Bf16(MatRef { data: &m.data[c0 * m.cs..], cols: n, ..m }),
    }
}

/// `rows x cols` of `a * b`, computed in column parts and rounded to bf16.
fn product_bf16(
    a: Operand<'_>,
    b: Operand<'_>,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<u16> {
    let parts: Vec<Vec<f32>> = (0..cols.div_ceil(PART))
        .into_par_iter()
        .map(|p| {
            let (c0, n) = (p * PART, PART.min(cols - p * PART));
            let mut c = vec![0f32; rows * n];
            gemm(&mut c, n, false, a, columns(b, c0, n));
            c
        })
        .collect();
    let mut out = vec![0u16; rows * cols];
    for (p, c) in parts.iter().enumerate() {
        let (c0, n) = (p * PART, PART.min(cols - p * PART));
        let b = bias.map_or(Bias::One(0.0), |b| Bias::Each(&b[c0..c0 + n]));
        for r in 0..rows {
            round_bias_into(&mut out[r * cols + c0..][..n], &c[r * n..][..n], b, relu);
        }
    }
    out
}

/// `y = x W^T (+ bias) (then ReLU)` for `x` of `batch x inp`, `W` of `out x inp`.
pub fn forward(
    x: &[u16],
    batch: usize,
    w: Weight<'_>,
    out: usize,
    inp: usize,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<u16> {
    let xa = Operand::Bf16(MatRef { data: x, rows: batch, cols: inp, rs: inp, cs: 1 });
    // The f32 master rounded as each part packs its columns of `W^T` (each packed once): fc6's
    // forward 30.0 -> 24.5 ms at batch 128 against a rounded copy made first.
    product_bf16(xa, weight(w, out, inp, true), batch, out, bias, relu)
}

/// `dx = dy W` for `dy` of `batch x out`.
pub fn data_grad(dy: &[u16], batch: usize, w: Weight<'_>, out: usize, inp: usize) -> Vec<u16> {
    let dya = Operand::Bf16(MatRef { data: dy, rows: batch, cols: out, rs: out, cs: 1 });
    // Here the f32 master rounded once first measured faster (fc6's 23.8 against 25.2 ms at batch
    // 128) than rounded as each part packs its columns (which the forward pass does).
    let mut master = Vec::new();
    let w = once_bf16(w, &mut master);
    product_bf16(dya, weight(w, out, inp, false), batch, inp, None, false)
}

/// `dW = dy^T x`, `out x inp`, in f32: parts of [`WEIGHT_GRAD_ROWS`] rows of `dW`, each written
/// in place by one product (no copy of the gradient, which is the layer's size: 151 MB for fc6).
pub fn weight_grad(x: &[u16], dy: &[u16], batch: usize, out: usize, inp: usize) -> Vec<f32> {
    let xb = Operand::Bf16(MatRef { data: x, rows: batch, cols: inp, rs: inp, cs: 1 });
    let mut dw = vec![0f32; out * inp];
    if inp == 0 {
        return dw;
    }
    dw.par_chunks_mut(WEIGHT_GRAD_ROWS * inp).enumerate().for_each(|(p, part)| {
        let (r0, rows) = (p * WEIGHT_GRAD_ROWS, part.len() / inp);
        let dyt = Operand::Bf16(MatRef { data: &dy[r0..], rows, cols: batch, rs: 1, cs: out });
        gemm(part, inp, false, dyt, xb);
    });
    dw
}

/// Rows of the weight gradient one part computes (a multiple of the kernel's 12).
const WEIGHT_GRAD_ROWS: usize = 96;
