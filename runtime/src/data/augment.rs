//! The paper's preprocessing and augmentation (section 4.1): rescale so that the short side has
//! `resize_short_side` pixels, take the centre square of `center_crop`, then for training a random
//! crop of the input size, a horizontal flip with probability 1/2, and PCA lighting noise; for
//! testing the centre crop. Finally the mean is subtracted (and the optional std divided).

use std::borrow::Cow;

use alexir::ir::{DataPipeline, Lighting, Mean, PcaBasis};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use image::imageops;
use image::RgbImage;

use super::band::Band;
use super::stats::Stats;
use super::window::write_planes;
use crate::init::Rng;

/// The widely used ImageNet RGB eigen-decomposition (fb.resnet.torch, torchvision), for pixels on
/// a 0-1 scale: eigenvalues, and eigenvectors as columns.
pub const IMAGENET_EIGENVALUES: [f64; 3] = [0.2175, 0.0188, 0.0045];
pub const IMAGENET_EIGENVECTORS: [[f64; 3]; 3] =
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]];
/// torchvision's ImageNet mean and standard deviation, 0-255 scale.
pub const IMAGENET_MEAN: [f64; 3] = [123.675, 116.28, 103.53];
pub const IMAGENET_STD: [f64; 3] = [58.395, 57.12, 57.375];

/// Bilinear (antialiased, like PIL's and torchvision's) resize with SIMD.
pub(super) fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    match Resizer::new().resize(img, &mut out, &options) {
        Ok(()) => out,
        // Sizes fast_image_resize refuses (none in practice) fall back to the image crate.
        Err(_) => imageops::resize(img, width, height, imageops::FilterType::Triangle),
    }
}

/// The `[x, y, width, height]` region of `img` resized to `size`, computing only that region:
/// fast_image_resize centres each output pixel's filter on the same source position and clips
/// it to the whole image, not to the region, so the pixels are those of [`resize`] cut to the
/// region, for a fraction of the work (a 4:3 photograph's centre square is 3/4 of it, a 227
/// crop of that square 79% again). Where the region's corner rounds differently in the last bit
/// of an f64, a value can differ by one level: 0.16% of them over the sizes of the test (most in
/// enlargements), 0.008% of the centre squares of 997 photographs reduced to 256 (in 54 of them).
pub(super) fn resize_region(img: &RgbImage, size: (u32, u32), region: [u32; 4]) -> RgbImage {
    let (w, h) = img.dimensions();
    let [x, y, width, height] = region;
    let (sx, sy) = (f64::from(w) / f64::from(size.0), f64::from(h) / f64::from(size.1));
    let mut out = RgbImage::new(width, height);
    let (left, top) = (f64::from(x) * sx, f64::from(y) * sy);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)).crop(
        left,
        top,
        f64::from(width) * sx,
        f64::from(height) * sy,
    );
    match Resizer::new().resize(img, &mut out, &options) {
        Ok(()) => out,
        Err(_) => imageops::crop_imm(&resize(img, size.0, size.1), x, y, width, height).to_image(),
    }
}

/// The size of a `w x h` image resized so that its short side is `short` (rounded, at least 1):
/// what the pipeline resizes to, and what packing stores, so that training resizes a packed image
/// no further.
pub(super) fn short_side_to(w: u32, h: u32, short: u32) -> (u32, u32) {
    let s = f64::from(short) / f64::from(w.min(h));
    (((f64::from(w) * s).round() as u32).max(1), ((f64::from(h) * s).round() as u32).max(1))
}

/// Where the centre square of side `side` (at most the short side) lies in a `w x h` image: its
/// left, top and side. Packing cuts the same square the pipeline reads.
pub(super) fn centre_square(w: u32, h: u32, side: u32) -> (u32, u32, u32) {
    let c = side.min(w).min(h);
    ((w - c) / 2, (h - c) / 2, c)
}

/// PCA lighting: `std` of the per-image coefficients, the eigenvalues and eigenvectors (columns).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaLighting {
    pub std: f64,
    pub eigenvalues: [f64; 3],
    pub eigenvectors: [[f64; 3]; 3],
}

/// Everything that turns a decoded image into network input.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub resize_short_side: usize,
    pub center_crop: usize,
    /// The network's input size (square).
    pub crop: usize,
    pub random_crop: bool,
    pub flip: bool,
    pub lighting: Option<PcaLighting>,
    pub mean: [f64; 3],
    pub std: Option<[f64; 3]>,
}

impl Pipeline {
    /// The pipeline a graph file's `data` section describes for an input of `3 x size x size`.
    /// `stats` (from `alexrt stats`) is needed where the graph asks for the dataset's own mean or
    /// eigen-decomposition.
    pub fn from_spec(
        spec: Option<&DataPipeline>,
        input: [usize; 3],
        stats: Option<&Stats>,
    ) -> Result<Self, String> {
        let [channels, height, width] = input;
        if channels != 3 || height != width {
            return Err(format!(
                "images need a square RGB input, but the graph's input is {channels}x{height}x{width}; \
                 set the input to 3 channels and equal height and width"
            ));
        }
        let size = height;
        let need_stats = |what: &str| {
            stats.cloned().ok_or_else(|| {
                format!("the graph asks for the dataset's {what}, but no statistics were found; run `alexrt stats --data DIR` first")
            })
        };
        let Some(d) = spec else {
            // No data section: resize to the input, flips only, torchvision's normalisation.
            return Ok(Pipeline {
                resize_short_side: size,
                center_crop: size,
                crop: size,
                random_crop: false,
                flip: true,
                lighting: None,
                mean: IMAGENET_MEAN,
                std: Some(IMAGENET_STD),
            });
        };
        let mean = match &d.mean {
            Mean::Rgb(m) => *m,
            Mean::Dataset => need_stats("mean")?.mean,
        };
        let lighting = match &d.lighting {
            Lighting::None => None,
            Lighting::Pca { std, basis: PcaBasis::ImageNet } => Some(PcaLighting {
                std: *std,
                eigenvalues: IMAGENET_EIGENVALUES,
                eigenvectors: IMAGENET_EIGENVECTORS,
            }),
            Lighting::Pca { std, basis: PcaBasis::Dataset } => {
                let s = need_stats("RGB eigen-decomposition")?;
                Some(PcaLighting { std: *std, eigenvalues: s.eigenvalues, eigenvectors: s.eigenvectors })
            }
        };
        Ok(Pipeline {
            resize_short_side: d.resize_short_side,
            center_crop: d.center_crop,
            crop: size,
            random_crop: d.random_crop,
            flip: d.horizontal_flip,
            lighting,
            mean,
            std: d.std,
        })
    }

    /// The resize and centre crop of `spec` (or of the default pipeline) alone, no mean, no
    /// augmentation: what `alexrt stats` measures the dataset's statistics on.
    pub fn for_statistics(spec: Option<&DataPipeline>, input: [usize; 3]) -> Result<Self, String> {
        let mut spec = spec.cloned();
        if let Some(d) = spec.as_mut() {
            d.mean = Mean::Rgb([0.0; 3]);
            d.lighting = Lighting::None;
        }
        Self::from_spec(spec.as_ref(), input, None)
    }

    /// Short side to `resize_short_side`, then the centre `center_crop` square (0-255 RGB).
    pub fn rescale(&self, img: &RgbImage) -> RgbImage {
        let (resized, square) = self.square(img);
        match resized {
            Cow::Owned(square) => square,
            Cow::Borrowed(img) => {
                let (x0, y0, side) = (square.x0 as u32, square.y0 as u32, square.side as u32);
                imageops::crop_imm(img, x0, y0, side, side).to_image()
            }
        }
    }

    /// `img` resized to the short side `resize_short_side` and where its centre `center_crop`
    /// square lies in that size.
    fn geometry(&self, img: &RgbImage) -> ((u32, u32), Square) {
        let (w, h) = img.dimensions();
        let (nw, nh) = short_side_to(w, h, self.resize_short_side as u32);
        let (x0, y0, side) = centre_square(nw, nh, self.center_crop as u32);
        ((nw, nh), Square { x0: x0 as usize, y0: y0 as usize, side: side as usize })
    }

    /// The centre square of `img` resized ([`Pipeline::geometry`]): `img` itself (borrowed, the
    /// square at its place in it) where it has the size already, else only the square resized
    /// (at 0, 0). The crops are read from there: no copy of the square is made.
    fn square<'a>(&self, img: &'a RgbImage) -> (Cow<'a, RgbImage>, Square) {
        let (size, square) = self.geometry(img);
        if size == img.dimensions() {
            return (Cow::Borrowed(img), square);
        }
        let side = square.side as u32;
        let resized = resize_region(img, size, [square.x0 as u32, square.y0 as u32, side, side]);
        (Cow::Owned(resized), Square { x0: 0, y0: 0, side: square.side })
    }

    /// The network input (`3 x crop x crop`, channel-major) for a decoded image.
    pub fn prepare(&self, img: &RgbImage, augment: Option<u64>) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.input_len());
        self.prepare_into(img, augment, &mut out);
        out
    }

    /// [`Pipeline::prepare`] appended to `out` (the next slot of a batch): `3 x crop x crop`
    /// values, fewer only for an image smaller than the crop after the resize.
    pub fn prepare_into(&self, img: &RgbImage, augment: Option<u64>, out: &mut Vec<f32>) {
        self.prepare_rows(img, 0, img.height(), augment, out)
    }

    /// [`Pipeline::prepare_into`] for a band of an image's rows that holds every row
    /// [`Pipeline::rows_read`] named (or the whole image).
    pub fn prepare_band(&self, band: &Band, augment: Option<u64>, out: &mut Vec<f32>) {
        self.prepare_rows(&band.image, band.top, band.height, augment, out)
    }

    /// [`Pipeline::prepare_into`] for `img`, rows `top..` of an image `height` rows high.
    fn prepare_rows(&self, img: &RgbImage, top: u32, height: u32, augment: Option<u64>, out: &mut Vec<f32>) {
        let whole = top == 0 && height == img.height();
        let (size, square) = if whole {
            self.geometry(img)
        } else {
            let (x0, y0, side) = centre_square(img.width(), height, self.center_crop as u32);
            ((img.width(), height), Square { x0: x0 as usize, y0: y0 as usize, side: side as usize })
        };
        let crop = self.crop.min(square.side);
        let (x0, y0, flip, noise) = self.window(square.side, crop, augment);
        let (x0, y0) = (square.x0 + x0, square.y0 + y0);
        if whole && size != img.dimensions() {
            // Only the window is resized.
            let c = crop as u32;
            let window = resize_region(img, size, [x0 as u32, y0 as u32, c, c]);
            return self.extract(&window, 0, 0, crop, flip, noise, out);
        }
        self.extract(img, x0, y0 - top as usize, crop, flip, noise, out);
    }

    /// The first and last rows of a `width x height` image that preparing it with `augment`
    /// reads, where it is read as it is; `None` where it is resized first.
    pub fn rows_read(&self, width: u32, height: u32, augment: Option<u64>) -> Option<(u32, u32)> {
        if short_side_to(width, height, self.resize_short_side as u32) != (width, height) {
            return None;
        }
        let (_, y0, side) = centre_square(width, height, self.center_crop as u32);
        let crop = self.crop.min(side as usize);
        let first = y0 + self.window(side as usize, crop, augment).1 as u32;
        Some((first, first + crop as u32 - 1))
    }

    /// Where in a `side` square the `crop` window lies, whether it is mirrored and its lighting
    /// noise: drawn from `augment`'s seed, else the centre, unmirrored, no noise.
    fn window(&self, side: usize, crop: usize, augment: Option<u64>) -> (usize, usize, bool, [f64; 3]) {
        let Some(mut rng) = augment.map(Rng::new) else {
            return ((side - crop) / 2, (side - crop) / 2, false, [0.0; 3]);
        };
        let room = side - crop;
        let (x0, y0) =
            if self.random_crop { (rng.below(room + 1), rng.below(room + 1)) } else { (room / 2, room / 2) };
        let flip = self.flip && rng.uniform() < 0.5;
        let mut noise = [0.0f64; 3];
        if let Some(l) = &self.lighting {
            let alpha: Vec<f64> = (0..3).map(|_| l.std * rng.normal()).collect();
            for (c, n) in noise.iter_mut().enumerate() {
                // 0-1 scale eigen-decomposition, 0-255 pixels.
                *n = 255.0 * (0..3).map(|i| l.eigenvectors[c][i] * alpha[i] * l.eigenvalues[i]).sum::<f64>();
            }
        }
        (x0, y0, flip, noise)
    }

    /// Each channel's `scale = 1 / std` and `offset = (noise - mean) / std`, computed in f64 and
    /// rounded to f32: a value is then `v * scale + offset`.
    fn scale_offset(&self, noise: [f64; 3]) -> ([f32; 3], [f32; 3]) {
        let mut scale = [1.0f32; 3];
        let mut offset = [0.0f32; 3];
        for c in 0..3 {
            let inv = self.std.map(|s| 1.0 / s[c]).unwrap_or(1.0);
            scale[c] = inv as f32;
            offset[c] = ((noise[c] - self.mean[c]) * inv) as f32;
        }
        (scale, offset)
    }

    /// The values one image takes in a batch: `3 x crop x crop`.
    pub fn input_len(&self) -> usize {
        3 * self.crop * self.crop
    }

    /// The `crop x crop` window of `img` at (x0, y0), optionally mirrored, with lighting `noise`
    /// added and the mean (and std) applied, channel-major, appended to `out`.
    ///
    /// Each value is `v * scale + offset` in f32 with the channel's `scale = 1 / std` and
    /// `offset = (noise - mean) / std`; a row is read once and written to the three planes in
    /// a loop the compiler vectorises (its stride-3 reads become shuffles), straight into `out`'s
    /// spare room: no batch-sized buffer is zeroed first.
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        img: &RgbImage,
        x0: usize,
        y0: usize,
        crop: usize,
        flip: bool,
        noise: [f64; 3],
        out: &mut Vec<f32>,
    ) {
        let width = img.width() as usize;
        let raw = img.as_raw();
        let (scale, offset) = self.scale_offset(noise);
        let plane = crop * crop;
        out.reserve(3 * plane);
        let spare = &mut out.spare_capacity_mut()[..3 * plane];
        write_planes((raw.as_slice(), width, x0, y0, crop, flip), scale, offset, spare);
        // SAFETY: `write_planes` wrote each of the `3 * plane` values after `out.len()`.
        unsafe { out.set_len(out.len() + 3 * plane) };
    }
}

/// Where the centre square lies in the resized image.
#[derive(Debug, Clone, Copy)]
struct Square {
    x0: usize,
    y0: usize,
    side: usize,
}

impl Pipeline {
    /// The paper's ten test crops of an image: the four corners and the centre of the rescaled
    /// square, and their mirror images, each `3 x crop x crop`.
    pub fn ten_crops(&self, img: &RgbImage) -> Vec<Vec<f32>> {
        let (resized, square) = self.square(img);
        let crop = self.crop.min(square.side);
        let room = square.side - crop;
        let corners = [(0, 0), (room, 0), (0, room), (room, room), (room / 2, room / 2)];
        let mut out = Vec::with_capacity(10);
        for flip in [false, true] {
            for &(x0, y0) in &corners {
                let mut one = Vec::with_capacity(3 * crop * crop);
                self.extract(&resized, square.x0 + x0, square.y0 + y0, crop, flip, [0.0; 3], &mut one);
                out.push(one);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
