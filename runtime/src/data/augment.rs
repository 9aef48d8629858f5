//! The paper's preprocessing and augmentation (section 4.1): rescale so that the short side has
//! `resize_short_side` pixels, take the centre square of `center_crop`, then for training a random
//! crop of the input size, a horizontal flip with probability 1/2, and PCA lighting noise; for
//! testing the centre crop. Finally the mean is subtracted (and the optional std divided).

use alexir::ir::{DataPipeline, Lighting, Mean, PcaBasis};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::imageops;
use image::RgbImage;

use super::stats::Stats;
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
        let (w, h) = img.dimensions();
        let s = self.resize_short_side as f64 / w.min(h) as f64;
        let (nw, nh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
        let resized = if (nw, nh) == (w, h) { img.clone() } else { resize(img, nw, nh) };
        let c = (self.center_crop as u32).min(nw).min(nh);
        imageops::crop_imm(&resized, (nw - c) / 2, (nh - c) / 2, c, c).to_image()
    }

    /// The network input (`3 x crop x crop`, channel-major) for a decoded image.
    pub fn prepare(&self, img: &RgbImage, augment: Option<u64>) -> Vec<f32> {
        let square = self.rescale(img);
        let side = square.width() as usize;
        let crop = self.crop.min(side);
        let mut rng = augment.map(Rng::new);
        let (x0, y0, flip, noise) = match rng.as_mut() {
            Some(rng) => {
                let room = side - crop;
                let (x0, y0) = if self.random_crop {
                    (rng.below(room + 1), rng.below(room + 1))
                } else {
                    (room / 2, room / 2)
                };
                let flip = self.flip && rng.uniform() < 0.5;
                let mut noise = [0.0f64; 3];
                if let Some(l) = &self.lighting {
                    let alpha: Vec<f64> = (0..3).map(|_| l.std * rng.normal()).collect();
                    for (c, n) in noise.iter_mut().enumerate() {
                        // 0-1 scale eigen-decomposition, 0-255 pixels.
                        *n = 255.0
                            * (0..3).map(|i| l.eigenvectors[c][i] * alpha[i] * l.eigenvalues[i]).sum::<f64>();
                    }
                }
                (x0, y0, flip, noise)
            }
            None => ((side - crop) / 2, (side - crop) / 2, false, [0.0; 3]),
        };
        self.extract(&square, x0, y0, flip, noise)
    }

    /// The `crop x crop` window at (x0, y0) of a rescaled square, optionally mirrored, with
    /// lighting `noise` added and the mean (and std) applied, channel-major.
    fn extract(&self, square: &RgbImage, x0: usize, y0: usize, flip: bool, noise: [f64; 3]) -> Vec<f32> {
        let side = square.width() as usize;
        let crop = self.crop.min(side);
        let mut out = vec![0.0f32; 3 * crop * crop];
        let raw = square.as_raw();
        for c in 0..3 {
            let (shift, scale) = (noise[c] - self.mean[c], self.std.map(|s| 1.0 / s[c]).unwrap_or(1.0));
            let plane = &mut out[c * crop * crop..(c + 1) * crop * crop];
            for y in 0..crop {
                for x in 0..crop {
                    let sx = if flip { x0 + crop - 1 - x } else { x0 + x };
                    let v = raw[((y0 + y) * side + sx) * 3 + c] as f64;
                    plane[y * crop + x] = ((v + shift) * scale) as f32;
                }
            }
        }
        out
    }
}

impl Pipeline {
    /// The paper's ten test crops of an image: the four corners and the centre of the rescaled
    /// square, and their mirror images, each `3 x crop x crop`.
    pub fn ten_crops(&self, img: &RgbImage) -> Vec<Vec<f32>> {
        let square = self.rescale(img);
        let side = square.width() as usize;
        let crop = self.crop.min(side);
        let room = side - crop;
        let corners = [(0, 0), (room, 0), (0, room), (room, room), (room / 2, room / 2)];
        let mut out = Vec::with_capacity(10);
        for flip in [false, true] {
            for &(x0, y0) in &corners {
                out.push(self.extract(&square, x0, y0, flip, [0.0; 3]));
            }
        }
        out
    }
}
