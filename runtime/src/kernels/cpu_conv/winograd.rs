//! [`ConvAlgo::Winograd`](super::ConvAlgo::Winograd): Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) for 3x3 stride-1
//! convolutions. Each 4x4 input tile and each 3x3 filter is transformed into 16 values; the 16
//! positions are 16 independent matrix products `U[Mg x Cg] * V[Cg x tiles]` (2.25 times fewer
//! multiplications than the direct convolution); the output transform turns each tile's 16 sums
//! into a 2x2 output block, adding the bias and applying ReLU as it writes. A task takes a run of
//! images so that the products are wide; the data gradient is this forward pass over `dy` with the
//! filters rotated by 180 degrees and their channel axes swapped.

use rayon::prelude::*;

use super::matmul::{matmul, ConvElement, MatRef};
use super::{images_per_task, ConvShape};

/// Output columns (tiles) one task's products should have at least.
const TARGET_TILES: usize = 512;

fn half<T: ConvElement>() -> T {
    T::from(0.5).expect("representable")
}

/// `G g G^T` of every filter, laid out `[group][position][m][c]`.
fn transform_weights<T: ConvElement>(s: &ConvShape, w: &[T]) -> Vec<T> {
    let (cg, mg) = (s.in_channels / s.groups, s.out_channels / s.groups);
    let mut u = vec![T::zero(); s.groups * 16 * mg * cg];
    let h = half::<T>();
    let gg = |a: [T; 3]| [a[0], (a[0] + a[1] + a[2]) * h, (a[0] - a[1] + a[2]) * h, a[2]];
    for co in 0..s.out_channels {
        let (grp, m) = (co / mg, co % mg);
        for c in 0..cg {
            let f = &w[(co * cg + c) * 9..][..9];
            let rows = [gg([f[0], f[3], f[6]]), gg([f[1], f[4], f[7]]), gg([f[2], f[5], f[8]])];
            for i in 0..4 {
                let t = gg([rows[0][i], rows[1][i], rows[2][i]]);
                for (j, v) in t.into_iter().enumerate() {
                    u[((grp * 16 + i * 4 + j) * mg + m) * cg + c] = v;
                }
            }
        }
    }
    u
}

/// `B^T d B` of one 4x4 tile `d` (row-major).
#[inline]
fn transform_tile<T: ConvElement>(d: [T; 16]) -> [T; 16] {
    let mut t = [T::zero(); 16];
    for j in 0..4 {
        let col = |i: usize| d[i * 4 + j];
        t[j] = col(0) - col(2);
        t[4 + j] = col(1) + col(2);
        t[8 + j] = col(2) - col(1);
        t[12 + j] = col(1) - col(3);
    }
    let mut v = [T::zero(); 16];
    for i in 0..4 {
        let r = &t[i * 4..i * 4 + 4];
        v[i * 4] = r[0] - r[2];
        v[i * 4 + 1] = r[1] + r[2];
        v[i * 4 + 2] = r[2] - r[1];
        v[i * 4 + 3] = r[1] - r[3];
    }
    v
}

/// `A^T m A`: one tile's 2x2 output block from its 16 sums.
#[inline]
fn inverse_tile<T: ConvElement>(m: [T; 16]) -> [T; 4] {
    let mut s = [T::zero(); 8];
    for j in 0..4 {
        s[j] = m[j] + m[4 + j] + m[8 + j];
        s[4 + j] = m[4 + j] - m[8 + j] - m[12 + j];
    }
    let row = |r: &[T]| [r[0] + r[1] + r[2], r[1] - r[2] - r[3]];
    let (a, b) = (row(&s[..4]), row(&s[4..]));
    [a[0], a[1], b[0], b[1]]
}

/// `relu(conv(x, w) + bias)` for a 3x3 stride-1 `s`.
pub fn forward<T: ConvElement>(s: &ConvShape, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool) -> Vec<T> {
    let [oh, ow] = s.out_hw();
    let [h, wd] = s.in_hw;
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let (ph, pw) = (2 * th + 2, 2 * tw + 2);
    let (cg, mg) = (s.in_channels / s.groups, s.out_channels / s.groups);
    let (in_img, out_img) = (s.in_channels * h * wd, s.out_channels * oh * ow);
    let u = transform_weights(s, w);
    let nb = images_per_task(s.batch, TARGET_TILES.div_ceil(tiles));
    let mut y = vec![T::zero(); s.batch * out_img];
    y.par_chunks_mut(nb * out_img).enumerate().for_each(|(task, y_chunk)| {
        let (n0, nbt) = (task * nb, y_chunk.len() / out_img);
        let cols = nbt * tiles;
        T::with_scratch(16 * (cg + mg) * cols + ph * pw, |scratch| {
            let (v, rest) = scratch.split_at_mut(16 * cg * cols);
            let (prod, padded) = rest.split_at_mut(16 * mg * cols);
            padded.fill(T::zero());
            for grp in 0..s.groups {
                for j in 0..nbt {
                    for c in 0..cg {
                        let plane = &x[(n0 + j) * in_img + (grp * cg + c) * h * wd..][..h * wd];
                        for r in 0..h {
                            let at = (r + s.padding) * pw + s.padding;
                            padded[at..at + wd].copy_from_slice(&plane[r * wd..(r + 1) * wd]);
                        }
                        for a in 0..th {
                            for b in 0..tw {
                                let d: [T; 16] =
                                    std::array::from_fn(|i| padded[(2 * a + i / 4) * pw + 2 * b + i % 4]);
                                let col = j * tiles + a * tw + b;
                                for (xi, val) in transform_tile(d).into_iter().enumerate() {
                                    v[(xi * cg + c) * cols + col] = val;
                                }
                            }
                        }
                    }
                }
                for xi in 0..16 {
                    let ug = &u[(grp * 16 + xi) * mg * cg..][..mg * cg];
                    let lhs = MatRef { data: ug, rows: mg, cols: cg, rs: cg, cs: 1 };
                    let rhs =
                        MatRef { data: &v[xi * cg * cols..][..cg * cols], rows: cg, cols, rs: cols, cs: 1 };
                    matmul(&mut prod[xi * mg * cols..][..mg * cols], cols, false, lhs, rhs);
                }
                for j in 0..nbt {
                    for m in 0..mg {
                        let co = grp * mg + m;
                        let b = bias.map_or(T::zero(), |b| b[co]);
                        let out = &mut y_chunk[j * out_img + co * oh * ow..][..oh * ow];
                        for a in 0..th {
                            for bb in 0..tw {
                                let col = j * tiles + a * tw + bb;
                                let sums: [T; 16] =
                                    std::array::from_fn(|xi| prod[(xi * mg + m) * cols + col]);
                                for (k, val) in inverse_tile(sums).into_iter().enumerate() {
                                    let (r, q) = (2 * a + k / 2, 2 * bb + k % 2);
                                    if r < oh && q < ow {
                                        let z = val + b;
                                        out[r * ow + q] = if relu && z < T::zero() { T::zero() } else { z };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    });
    y
}

/// The input gradient of a 3x3 stride-1 `s` with padding at most 2: the forward convolution of
/// `dy` by the rotated, channel-swapped filters with padding `2 - padding`.
pub fn data_grad<T: ConvElement>(s: &ConvShape, dy: &[T], w: &[T]) -> Vec<T> {
    let (cg, mg) = (s.in_channels / s.groups, s.out_channels / s.groups);
    let mut wt = vec![T::zero(); w.len()];
    for co in 0..s.out_channels {
        let (grp, m) = (co / mg, co % mg);
        for c in 0..cg {
            for k in 0..9 {
                wt[((grp * cg + c) * mg + m) * 9 + (8 - k)] = w[(co * cg + c) * 9 + k];
            }
        }
    }
    let transposed = ConvShape {
        in_channels: s.out_channels,
        in_hw: s.out_hw(),
        out_channels: s.in_channels,
        padding: 2 - s.padding,
        ..*s
    };
    forward(&transposed, dy, &wt, None, false)
}
