//! bf16 convolutions on the CPU, by im2col and [`gemm`]: activations and gradients in bf16 (as
//! bits), the weight read as its f32 master or as bf16, every product summed in f32. Per group,
//! the forward pass is `W[Mg x Kg] * col[Kg x P]` with bias and ReLU applied as the f32 sums are
//! rounded to bf16; the data gradient `W^T * dY` in f32, added back onto the input plane
//! (col2im) in f32 and rounded once; the weight gradient `dY * col^T` in f32, summed over the
//! batch in f32.
//!
//! The batch is cut into parts of a fixed number of images (enough columns for a wide product,
//! whatever the thread count); rayon runs the parts, each writing its own images, and the weight
//! gradient adds the parts' sums in part order: the same bits on any number of threads.

use rayon::prelude::*;

use super::convert::{round, round_bias_into, round_into, Bias};
use super::gemm::{gemm, Operand};
use crate::kernels::cpu_conv::{col2im, ConvDims as Dims, ConvShape, MatRef};
use crate::kernels::scratch::{scratch, zeroed};

/// A weight: the f32 master, or bf16 bits.
#[derive(Clone, Copy)]
pub enum Weight<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

/// At least this many output columns per product: smaller planes take several images at once.
const TARGET_COLUMNS: usize = 1024;

/// The shared sizes, with images per part fixed by the shape alone: enough for a wide product,
/// at most the batch.
fn dims(s: &ConvShape) -> Dims {
    let mut d = Dims::of(s);
    d.nb = TARGET_COLUMNS.div_ceil(d.pl.max(1)).min(s.batch.max(1));
    d
}

/// Group `grp`'s weight as an operand: `Mg x Kg`, or its transpose.
fn weight<'a>(d: &Dims, w: Weight<'a>, grp: usize, transposed: bool) -> Operand<'a> {
    let at = grp * d.mg * d.kg;
    let (rows, cols, rs, cs) = if transposed { (d.kg, d.mg, 1, d.kg) } else { (d.mg, d.kg, d.kg, 1) };
    match w {
        Weight::F32(w) => Operand::F32(MatRef { data: &w[at..at + d.mg * d.kg], rows, cols, rs, cs }),
        Weight::Bf16(w) => Operand::Bf16(MatRef { data: &w[at..at + d.mg * d.kg], rows, cols, rs, cs }),
    }
}

/// An f32 master weight rounded to bf16 once for the whole call (into `keep`, on all threads,
/// vectorised), instead of element by element in every part's packing of it: the same bits, since
/// packing rounds each element with the same function. Measured at batch 128: conv2's data
/// gradient 131 -> 97 ms, conv3's 134 -> 90 ms.
pub(super) fn once_bf16<'a>(w: Weight<'a>, keep: &'a mut Vec<u16>) -> Weight<'a> {
    match w {
        Weight::F32(v) => {
            *keep = round(v);
            Weight::Bf16(keep)
        }
        other => other,
    }
}

/// `y = conv(x, w) (+ bias) (then ReLU)`, rounded to bf16 once.
pub fn forward(s: &ConvShape, x: &[u16], w: Weight<'_>, bias: Option<&[f32]>, relu: bool) -> Vec<u16> {
    let d = dims(s);
    let mut master = Vec::new();
    let w = once_bf16(w, &mut master);
    let mut y = vec![0u16; s.batch * d.out_img];
    y.par_chunks_mut(d.nb * d.out_img).enumerate().for_each(|(part, out)| {
        let n0 = part * d.nb;
        let nbt = out.len() / d.out_img;
        let ld = nbt * d.pl;
        // Scratch (the product and im2col write every element they read). The whole column
        // matrix at once: cut into L2-sized products as the f32 engine's are, this pass measured
        // 3-10% slower (its product packs the weight once per call).
        let (mut col, mut acc) = (scratch::<u16>(d.kg * ld), scratch::<f32>(d.mg * ld));
        for grp in 0..s.groups {
            d.columns(x, n0, grp, 0..ld, &mut col);
            let cols = Operand::Bf16(MatRef { data: &col, rows: d.kg, cols: ld, rs: ld, cs: 1 });
            gemm(&mut acc, ld, false, weight(&d, w, grp, false), cols);
            for m in 0..d.mg {
                let channel = grp * d.mg + m;
                let b = Bias::One(bias.map_or(0.0, |b| b[channel]));
                for j in 0..nbt {
                    let src = &acc[m * ld + j * d.pl..][..d.pl];
                    round_bias_into(&mut out[j * d.out_img + channel * d.pl..][..d.pl], src, b, relu);
                }
            }
        }
    });
    y
}

/// `dx` from `dy` and the weight, rounded to bf16 once.
pub fn data_grad(s: &ConvShape, dy: &[u16], w: Weight<'_>) -> Vec<u16> {
    let d = dims(s);
    let mut master = Vec::new();
    let w = once_bf16(w, &mut master);
    let mut dx = vec![0u16; s.batch * d.in_img];
    dx.par_chunks_mut(d.nb * d.in_img).enumerate().for_each(|(part, out)| {
        let n0 = part * d.nb;
        let nbt = out.len() / d.in_img;
        let ld = nbt * d.pl;
        let (mut dcol, mut dy_part) = (scratch::<f32>(d.kg * ld), scratch::<u16>(d.mg * ld));
        // col2im adds onto the planes: cleared first.
        let mut planes = zeroed::<f32>(nbt * d.in_img);
        for grp in 0..s.groups {
            for j in 0..nbt {
                for m in 0..d.mg {
                    let from = &dy[(n0 + j) * d.out_img + (grp * d.mg + m) * d.pl..][..d.pl];
                    dy_part[m * ld + j * d.pl..][..d.pl].copy_from_slice(from);
                }
            }
            let dyr = Operand::Bf16(MatRef { data: &dy_part, rows: d.mg, cols: ld, rs: ld, cs: 1 });
            gemm(&mut dcol, ld, false, weight(&d, w, grp, true), dyr);
            let plane = d.g.h * d.g.w;
            for j in 0..nbt {
                let dst = &mut planes[j * d.in_img + grp * d.cg * plane..][..d.cg * plane];
                col2im(&dcol, ld, j * d.pl, d.cg, &d.g, dst);
            }
        }
        round_into(out, &planes);
    });
    dx
}

/// `dw` from `x` and `dy`, summed over the batch in f32.
pub fn weight_grad(s: &ConvShape, x: &[u16], dy: &[u16]) -> Vec<f32> {
    let d = dims(s);
    let parts = s.batch.div_ceil(d.nb);
    let sums: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let n0 = part * d.nb;
            let nbt = d.nb.min(s.batch - n0);
            let ld = nbt * d.pl;
            let (mut col, mut dy_part) = (scratch::<u16>(d.kg * ld), scratch::<u16>(d.mg * ld));
            let mut dw = vec![0f32; s.out_channels * d.kg];
            for grp in 0..s.groups {
                d.columns(x, n0, grp, 0..ld, &mut col);
                for j in 0..nbt {
                    for m in 0..d.mg {
                        let from = &dy[(n0 + j) * d.out_img + (grp * d.mg + m) * d.pl..][..d.pl];
                        dy_part[m * ld + j * d.pl..][..d.pl].copy_from_slice(from);
                    }
                }
                let dyr = Operand::Bf16(MatRef { data: &dy_part, rows: d.mg, cols: ld, rs: ld, cs: 1 });
                let colt = Operand::Bf16(MatRef { data: &col, rows: ld, cols: d.kg, rs: 1, cs: ld });
                gemm(&mut dw[grp * d.mg * d.kg..], d.kg, false, dyr, colt);
            }
            dw
        })
        .collect();
    let mut total = vec![0f32; s.out_channels * d.kg];
    for part in sums {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}
