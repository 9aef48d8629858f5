//! LRN of bf16 tensors on the CPU, forward and backward, in tiles: an image's planes are cut into
//! runs of positions ([`tile`]), and each run is widened (every channel of it), computed and
//! rounded while its f32 copies (about 64 KiB each) stay in the core's L2 cache. The arithmetic is
//! the f32 reference's, element for element and in its order
//! ([`super::reference::lrn_forward`], `lrn_backward` then the ReLU mask), so the result is the
//! reference on the widened inputs rounded once, bit for bit; only the memory traffic differs (the
//! whole-image version wrote and re-read seven f32 copies of each image: relu1's gradient took as
//! long in bf16 as in f32). Images run on all threads, each writing its own.

use rayon::prelude::*;

use super::cpu_bf16::convert::{round_into, widen_into};
use super::reference::{pow_neg_all, window_scales, window_sum};
use super::scratch::scratch;
use super::simd::{dispatch, Isa, Kernel};
use super::LrnParams;

/// Positions of a plane one tile covers for `channels` channels: each f32 copy of a tile about
/// 128 KiB for up to 128 channels, 64 KiB for more (the gradient holds six: three inputs,
/// squares, bases, ratios; within a core's 1 MiB L2), at least 32 positions, at most 512, a
/// multiple of 16 (one AVX-512 vector). The tiling changes no result. Measured at batch 128:
/// relu1's gradient (96 channels) 51-57 ms at 160 positions, 36-45 at 336; relu2's (256) 30-41
/// at 64 positions, 34-44 at 128.
fn tile(channels: usize) -> usize {
    let floats = if channels <= 128 { 32768 } else { 16384 };
    (floats / channels.max(1)).clamp(32, 512) / 16 * 16
}

/// `y = x * (k + scale * sum over the window of x^2)^-beta` for bf16 `x` of `[n, c, h, w]`.
pub fn forward(x: &[u16], dims: [usize; 4], p: &LrnParams) -> Vec<u16> {
    let (channels, plane) = (dims[1], dims[2] * dims[3]);
    let mut y = vec![0u16; x.len()];
    if x.is_empty() {
        return y;
    }
    let isa = Isa::detect();
    y.par_chunks_mut(channels * plane).zip(x.par_chunks(channels * plane)).for_each(|(y, x)| {
        dispatch(isa, ForwardImage { x, y, channels, plane, p });
    });
    y
}

struct ForwardImage<'a> {
    x: &'a [u16],
    y: &'a mut [u16],
    channels: usize,
    plane: usize,
    p: &'a LrnParams,
}

impl Kernel for ForwardImage<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let ForwardImage { x, y, channels, plane, p } = self;
        let tile = tile(channels);
        let (mut xs, mut s) = (scratch::<f32>(channels * tile), scratch::<f32>(channels * tile));
        let mut out = scratch::<f32>(tile);
        for t0 in (0..plane).step_by(tile) {
            let n = tile.min(plane - t0);
            for c in 0..channels {
                widen_into(&mut xs[c * n..][..n], &x[c * plane + t0..][..n]);
            }
            window_scales(&xs[..channels * n], channels, n, p, &mut s[..channels * n]);
            pow_neg_all(&mut s[..channels * n], p.beta);
            for c in 0..channels {
                for ((o, a), v) in out[..n].iter_mut().zip(&s[c * n..][..n]).zip(&xs[c * n..][..n]) {
                    *o = *v * *a;
                }
                round_into(&mut y[c * plane + t0..][..n], &out[..n]);
            }
        }
    }
}

/// The LRN gradient from bf16 `x`, `y`, `dy` of `[n, c, h, w]`:
/// `dx[c] = dy[c] s[c]^-beta - 2 scale beta x[c] sum over c's window of dy y / s`, then zero
/// where `x <= 0` when `relu` (through the ReLU whose output `x` is).
pub fn backward(x: &[u16], y: &[u16], dy: &[u16], dims: [usize; 4], p: &LrnParams, relu: bool) -> Vec<u16> {
    let (channels, plane) = (dims[1], dims[2] * dims[3]);
    let image = channels * plane;
    let mut dx = vec![0u16; x.len()];
    if x.is_empty() {
        return dx;
    }
    let isa = Isa::detect();
    dx.par_chunks_mut(image).enumerate().for_each(|(i, dx)| {
        let at = i * image..(i + 1) * image;
        let (x, y, dy) = (&x[at.clone()], &y[at.clone()], &dy[at]);
        dispatch(isa, BackwardImage { x, y, dy, dx, channels, plane, p, relu });
    });
    dx
}

struct BackwardImage<'a> {
    x: &'a [u16],
    y: &'a [u16],
    dy: &'a [u16],
    dx: &'a mut [u16],
    channels: usize,
    plane: usize,
    p: &'a LrnParams,
    relu: bool,
}

impl Kernel for BackwardImage<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let BackwardImage { x, y, dy, dx, channels, plane, p, relu } = self;
        let factor = (2.0 * p.scale * p.beta) as f32;
        let tile = tile(channels);
        let len = channels * tile;
        let (mut xs, mut ys, mut gs) = (scratch::<f32>(len), scratch::<f32>(len), scratch::<f32>(len));
        let (mut s, mut ratio) = (scratch::<f32>(len), scratch::<f32>(len));
        let (mut acc, mut out) = (scratch::<f32>(tile), scratch::<f32>(tile));
        for t0 in (0..plane).step_by(tile) {
            let n = tile.min(plane - t0);
            for c in 0..channels {
                let at = c * plane + t0;
                widen_into(&mut xs[c * n..][..n], &x[at..][..n]);
                widen_into(&mut ys[c * n..][..n], &y[at..][..n]);
                widen_into(&mut gs[c * n..][..n], &dy[at..][..n]);
            }
            window_scales(&xs[..channels * n], channels, n, p, &mut s[..channels * n]);
            for (((r, g), y), s) in ratio[..channels * n].iter_mut().zip(&gs[..]).zip(&ys[..]).zip(&s[..]) {
                *r = *g * *y / *s;
            }
            for c in 0..channels {
                let acc = &mut acc[..n];
                window_sum(acc, &ratio[..channels * n], c, p.size / 2, channels);
                let at = c * n..(c + 1) * n;
                let out = &mut out[..n];
                out.copy_from_slice(&s[at.clone()]);
                pow_neg_all(out, p.beta);
                for (((o, g), x), a) in
                    out.iter_mut().zip(&gs[at.clone()]).zip(&xs[at.clone()]).zip(acc.iter())
                {
                    *o = *g * *o - factor * *x * *a;
                }
                if relu {
                    for (o, x) in out.iter_mut().zip(&xs[at]) {
                        if *x <= 0.0 {
                            *o = 0.0;
                        }
                    }
                }
                round_into(&mut dx[c * plane + t0..][..n], out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the f32 reference on the widened inputs, rounded once: bit for bit, with planes of
    //! one tile, several, and a last tile cut short (a tile is 32 to 512 positions), and both of `pow_neg`'s paths.
    use super::super::cpu_bf16::convert::{bf16_bits_to_f32, f32_to_bf16_bits};
    use super::super::host::lrn_grad;
    use super::super::reference;
    use super::*;

    fn bits(n: usize, seed: u64) -> Vec<u16> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f32_to_bf16_bits((state >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 2.0)
            })
            .collect()
    }

    fn wide(b: &[u16]) -> Vec<f32> {
        b.iter().map(|&v| bf16_bits_to_f32(v)).collect()
    }

    fn round(v: &[f32]) -> Vec<u16> {
        v.iter().map(|&x| f32_to_bf16_bits(x)).collect()
    }

    #[test]
    fn tiled_lrn_is_the_f32_reference_rounded_once() {
        let paper = LrnParams { size: 5, scale: 1e-2, beta: 0.75, k: 2.0 };
        let other = LrnParams { size: 3, scale: 0.2, beta: 0.6, k: 1.0 };
        for dims in [[2, 7, 9, 9], [1, 9, 37, 59], [3, 4, 16, 32], [1, 2, 3, 3], [1, 600, 5, 9]] {
            let n = dims.iter().product();
            let (x, dy) = (bits(n, 1), bits(n, 2));
            for p in [paper, other] {
                let y = forward(&x, dims, &p);
                assert_eq!(y, round(&reference::lrn_forward(&wide(&x), dims, &p)), "forward {dims:?} {p:?}");
                for relu in [false, true] {
                    let want = round(&lrn_grad(&wide(&x), &wide(&y), &wide(&dy), dims, &p, relu));
                    assert_eq!(
                        backward(&x, &y, &dy, dims, &p, relu),
                        want,
                        "backward {dims:?} {p:?} relu {relu}"
                    );
                }
            }
        }
    }
}
