//! Datasets. The built-in synthetic one is generated, not downloaded: each class is a fixed
//! pattern of coloured gratings, and each image a randomly shifted, rescaled, noisy copy of its
//! class's pattern, so a convnet can learn it quickly while chance stays at 1 / classes.

use crate::exec::Batch;
use crate::init::Rng;

/// A labelled image collection, read by index.
pub trait Dataset: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `i` (`C x H x W`, normalised) and its label.
    fn get(&self, i: usize) -> (Vec<f32>, i32);
    fn classes(&self) -> usize;

    /// The images at `indices`, as one batch.
    fn batch(&self, indices: &[usize]) -> Batch {
        let mut images = Vec::new();
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let (img, label) = self.get(i);
            images.extend_from_slice(&img);
            labels.push(label);
        }
        Batch { images, labels }
    }
}

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

    fn classes(&self) -> usize {
        self.classes
    }

    fn get(&self, i: usize) -> (Vec<f32>, i32) {
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
        (img, label as i32)
    }
}

/// Shuffled batch indices for one epoch: full batches only (the plan's batch size is fixed).
pub fn epoch_batches(len: usize, batch: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = Rng::for_stream(seed, &[b"shuffle", &(epoch as u64).to_le_bytes()]);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order.chunks_exact(batch).map(|c| c.to_vec()).collect()
}
