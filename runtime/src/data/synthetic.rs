//! The built-in synthetic dataset, generated, not downloaded: each class is a fixed pattern of
//! coloured gratings, and each image a randomly shifted, rescaled, noisy copy of its class's
//! pattern, so a convnet can learn it quickly while chance stays at 1 / classes.

use super::{Dataset, Sample};
use crate::init::Rng;

/// One grating: a plane wave in one channel.
#[derive(Debug, Clone, Copy)]
struct Grating {
    channel: usize,
    fy: f32,
    fx: f32,
    phase: f32,
    amplitude: f32,
}

/// The built-in synthetic dataset.
#[derive(Debug, Clone)]
pub struct Synthetic {
    shape: [usize; 3],
    classes: usize,
    len: usize,
    seed: u64,
    patterns: Vec<Vec<Grating>>,
    noise: f32,
}

impl Synthetic {
    /// `len` images of `shape` over `classes` classes; `split` separates training from validation.
    pub fn new(shape: [usize; 3], classes: usize, len: usize, seed: u64, split: &str) -> Self {
        let mut rng = Rng::for_stream(seed, &[b"synthetic-patterns"]);
        let patterns = (0..classes)
            .map(|_| {
                (0..3)
                    .map(|_| Grating {
                        channel: rng.below(shape[0]),
                        fy: (rng.uniform() * 3.0 + 0.5) as f32,
                        fx: (rng.uniform() * 3.0 + 0.5) as f32,
                        phase: (rng.uniform() * std::f64::consts::TAU) as f32,
                        amplitude: (rng.uniform() * 0.5 + 0.5) as f32,
                    })
                    .collect()
            })
            .collect();
        let split_seed = Rng::for_stream(seed, &[split.as_bytes()]).next_u64();
        Synthetic { shape, classes, len, seed: split_seed, patterns, noise: 0.6 }
    }
}

impl Dataset for Synthetic {
    fn len(&self) -> usize {
        self.len
    }

    fn class_names(&self) -> Vec<String> {
        (0..self.classes).map(|c| format!("pattern-{c}")).collect()
    }

    fn label(&self, i: usize) -> usize {
        i % self.classes
    }

    /// Synthetic images need no augmentation: each is already a random variation.
    fn load(&self, i: usize, _augment: Option<u64>) -> Result<Sample, String> {
        let [c, h, w] = self.shape;
        let label = i % self.classes;
        let mut rng = Rng::for_stream(self.seed, &[&(i as u64).to_le_bytes()]);
        let (dy, dx) = ((rng.uniform() * h as f64 / 4.0) as f32, (rng.uniform() * w as f64 / 4.0) as f32);
        let gain = (0.7 + 0.6 * rng.uniform()) as f32;
        let mut img = vec![0.0f32; c * h * w];
        for g in &self.patterns[label] {
            let plane = &mut img[g.channel * h * w..(g.channel + 1) * h * w];
            let (ky, kx) = (std::f32::consts::TAU * g.fy / h as f32, std::f32::consts::TAU * g.fx / w as f32);
            for y in 0..h {
                for x in 0..w {
                    let v = (ky * (y as f32 + dy) + kx * (x as f32 + dx) + g.phase).sin();
                    plane[y * w + x] += gain * g.amplitude * v;
                }
            }
        }
        for v in img.iter_mut() {
            *v += self.noise * rng.normal() as f32;
        }
        Ok(Sample { image: img, label: label as i32 })
    }
}
