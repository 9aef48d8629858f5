//! The pipeline's geometry, augmentation and planes, against naive versions.

use std::mem::MaybeUninit;

use super::*;

fn pipeline() -> Pipeline {
    Pipeline {
        resize_short_side: 8,
        center_crop: 8,
        crop: 5,
        random_crop: true,
        flip: true,
        lighting: None,
        mean: IMAGENET_MEAN,
        std: Some(IMAGENET_STD),
    }
}

/// The window, computed the plain way: channel-major, mirrored by index.
fn naive(p: &Pipeline, img: &RgbImage, x0: usize, y0: usize, flip: bool, noise: [f64; 3]) -> Vec<f32> {
    let c = p.crop;
    let mut out = vec![0.0f32; 3 * c * c];
    for ch in 0..3 {
        let inv = 1.0 / p.std.unwrap()[ch];
        let (scale, offset) = (inv as f32, ((noise[ch] - p.mean[ch]) * inv) as f32);
        for y in 0..c {
            for x in 0..c {
                let sx = if flip { x0 + c - 1 - x } else { x0 + x };
                let v = img.get_pixel(sx as u32, (y0 + y) as u32)[ch];
                out[(ch * c + y) * c + x] = f32::from(v) * scale + offset;
            }
        }
    }
    out
}

#[test]
fn a_window_is_each_plane_of_the_crop_mirrored_or_not_on_every_code_path() {
    let img =
        RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 31 + y) as u8, (y * 29 + x) as u8, (x * y) as u8]));
    let p = pipeline();
    for (x0, y0, flip) in [(0, 0, false), (3, 1, false), (2, 3, true), (0, 3, true)] {
        let noise = [1.5, -2.0, 0.25];
        let want = naive(&p, &img, x0, y0, flip, noise);
        let mut got = vec![7.0f32];
        p.extract(&img, x0, y0, 5, flip, noise, &mut got);
        assert_eq!(got[0], 7.0, "what was in the batch before is kept");
        assert_eq!(&got[1..], &want[..], "window at ({x0}, {y0}), flip {flip}");
        // The portable loop gives the same bits as the one the CPU's features chose.
        let mut portable = vec![MaybeUninit::uninit(); 75];
        let (scale, offset) = p.scale_offset(noise);
        super::super::window::planes((img.as_raw(), 8, x0, y0, 5, flip), scale, offset, &mut portable);
        let portable: Vec<f32> = portable.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert_eq!(portable, want);
    }
}

#[test]
fn prepare_is_the_augmented_window_of_the_centre_square_and_batches_append() {
    // 12x8: the short side is already 8, so no resize; the centre 8x8 square starts at x 2.
    let img = RgbImage::from_fn(12, 8, |x, y| image::Rgb([(x * 20 + y) as u8, (y * 9) as u8, 200]));
    let p = Pipeline { random_crop: false, flip: false, ..pipeline() };
    let test_time = p.prepare(&img, None);
    assert_eq!(test_time.len(), p.input_len());
    // Test time: the centre 5x5 of the square, at (2 + 1, 1).
    assert_eq!(test_time, naive(&p, &img, 3, 1, false, [0.0; 3]));
    let mut batch = Vec::new();
    p.prepare_into(&img, Some(9), &mut batch);
    p.prepare_into(&img, Some(9), &mut batch);
    assert_eq!(batch.len(), 2 * p.input_len());
    assert_eq!(batch[..p.input_len()], batch[p.input_len()..], "the same seed, the same sample");
}

/// An image of pseudo-random pixels, so that any difference in a filter's weights shows.
fn noise_image(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9e37_79b9) | 1;
    RgbImage::from_fn(w, h, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        image::Rgb([next(), next(), next()])
    })
}

/// Where the crop box's position rounds differently in the last bit of an f64 than the whole
/// image's output positions, a filter can move by that much: a value may then differ by one
/// level. Counted over many sizes (upscales, where the filter is narrowest, most of them).
#[test]
fn a_region_resized_alone_is_the_whole_image_resized_and_cut_to_within_a_level() {
    let mut sizes: Vec<(u32, u32)> =
        vec![(500, 375), (375, 500), (1000, 667), (257, 256), (255, 300), (120, 80)];
    sizes.extend((40..=130).step_by(13).flat_map(|w| (33..=120).step_by(29).map(move |h| (w, h))));
    let (mut values, mut off_by_one) = (0usize, 0usize);
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let img = noise_image(w, h, i as u32);
        for short in [31, 64, 256] {
            let size = short_side_to(w, h, short);
            let whole = resize(&img, size.0, size.1);
            let (x0, y0, side) = centre_square(size.0, size.1, short);
            // The centre square, windows inside it at its corners and between, a row, and all.
            let c = side * 7 / 8;
            let mut regions = vec![[x0, y0, side, side], [0, 0, size.0, size.1], [x0, y0 + 1, side, 1]];
            for (dx, dy) in [(0, 0), (side - c, 0), (0, side - c), (side - c, side - c), ((side - c) / 3, 1)]
            {
                regions.push([x0 + dx, y0 + dy, c, c]);
            }
            for [x, y, rw, rh] in regions {
                let want = imageops::crop_imm(&whole, x, y, rw, rh).to_image();
                let got = resize_region(&img, size, [x, y, rw, rh]);
                assert_eq!(got.dimensions(), (rw, rh));
                for (a, b) in got.as_raw().iter().zip(want.as_raw()) {
                    assert!(
                        a.abs_diff(*b) <= 1,
                        "{w}x{h} to {size:?}, region {x},{y} {rw}x{rh}: {a} against {b}"
                    );
                    off_by_one += usize::from(a != b);
                }
                values += want.as_raw().len();
            }
        }
    }
    assert!(values > 10_000_000, "{values}");
    // 0.16% of them when written.
    assert!(off_by_one * 200 < values, "{off_by_one} of {values} values off by one");
}

/// Each window and square is cut at its place: the pixels of the whole resize there (exactly, for
/// this image and size; the test above bounds where they can differ).
#[test]
fn a_resized_image_gives_the_windows_and_squares_of_its_whole_resize() {
    let img = noise_image(500, 375, 7);
    let p = Pipeline { resize_short_side: 64, center_crop: 64, crop: 57, lighting: None, ..pipeline() };
    let whole = resize(&img, 85, 64);
    let (x0, y0, side) = centre_square(85, 64, 64);
    assert_eq!(p.rescale(&img), imageops::crop_imm(&whole, x0, y0, side, side).to_image());
    for seed in [None, Some(1), Some(2), Some(3), Some(99)] {
        let (wx, wy, flip, noise) = p.window(side as usize, 57, seed);
        let want = naive(&p, &whole, x0 as usize + wx, y0 as usize + wy, flip, noise);
        assert_eq!(p.prepare(&img, seed), want, "seed {seed:?}");
    }
    let crops = p.ten_crops(&img);
    let room = side as usize - 57;
    assert_eq!(crops[3], naive(&p, &whole, x0 as usize + room, y0 as usize + room, false, [0.0; 3]));
    assert_eq!(crops[9], naive(&p, &whole, x0 as usize + room / 2, y0 as usize + room / 2, true, [0.0; 3]));
}
