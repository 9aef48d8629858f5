//! A crop window of an RGB image written as the network's three channel planes (`v * scale +
//! offset` per channel, optionally mirrored): the last step of [`super::augment::Pipeline`], on
//! every image of every batch.

use std::mem::MaybeUninit;

/// Where the window is read: the image's bytes, its width, the window's corner and side,
/// and whether it is mirrored.
pub type Rows<'a> = (&'a [u8], usize, usize, usize, usize, bool);

/// The window's three planes, `v * scale + offset` per channel, written to all of `out`
/// (`3 x crop x crop`): each row of each plane, each value of each row. A row is read once and
/// written to the three planes in a loop the compiler vectorises (its stride-3 reads become
/// shuffles). No fused multiply-add: the values are the same bits on every CPU.
#[inline(always)]
pub fn planes(rows: Rows, scale: [f32; 3], offset: [f32; 3], out: &mut [MaybeUninit<f32>]) {
    let (raw, width, x0, y0, crop, flip) = rows;
    let plane = crop * crop;
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for y in 0..crop {
        let start = ((y0 + y) * width + x0) * 3;
        let row = &raw[start..start + crop * 3];
        let at = y * crop;
        let (r, g, b) = (&mut r[at..at + crop], &mut g[at..at + crop], &mut b[at..at + crop]);
        let mut put = |x: usize, px: &[u8]| {
            r[x].write(f32::from(px[0]) * scale[0] + offset[0]);
            g[x].write(f32::from(px[1]) * scale[1] + offset[1]);
            b[x].write(f32::from(px[2]) * scale[2] + offset[2]);
        };
        if flip {
            row.chunks_exact(3).rev().enumerate().for_each(|(x, px)| put(x, px));
        } else {
            row.chunks_exact(3).enumerate().for_each(|(x, px)| put(x, px));
        }
    }
}

/// [`planes`], compiled for AVX2 where the CPU has it (the same bits either way).
pub fn write_planes(rows: Rows, scale: [f32; 3], offset: [f32; 3], out: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { planes_avx2(rows, scale, offset, out) };
    }
    planes(rows, scale, offset, out);
}

/// [`planes`] compiled for AVX2 (wider shuffles and stores; the same arithmetic).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn planes_avx2(rows: Rows, scale: [f32; 3], offset: [f32; 3], out: &mut [MaybeUninit<f32>]) {
    planes(rows, scale, offset, out)
}
