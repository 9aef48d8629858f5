//! Dataset statistics for the augmentation: the per-channel mean (0-255) and the eigen-
//! decomposition of the 3x3 RGB covariance (0-1 scale), over the training images after rescaling
//! and centre cropping. `alexrt stats` writes them to `DIR/alexrt-stats.json`, where training
//! finds them.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ImageSet;

pub const STATS_FILE: &str = "alexrt-stats.json";

/// Images summed in order by one task of [`compute`].
const IMAGES_PER_SUM: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub images: usize,
    pub skipped: usize,
    /// Per-channel RGB mean, 0-255 scale.
    pub mean: [f64; 3],
    /// RGB covariance eigenvalues, largest first, 0-1 scale.
    pub eigenvalues: [f64; 3],
    /// Eigenvectors as columns: `eigenvectors[channel][i]` is channel's component of vector i.
    pub eigenvectors: [[f64; 3]; 3],
}

pub fn stats_path(dir: &Path) -> PathBuf {
    dir.join(STATS_FILE)
}

/// Reads `DIR/alexrt-stats.json` if there is one.
pub fn load(dir: &Path) -> Result<Option<Stats>, String> {
    let path = stats_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!("{}: not a statistics file ({e}); run `alexrt stats --data DIR` again", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Computes the statistics over (at most `limit` of) the images of `folder`, calling `progress`
/// with the number done. Runs of [`IMAGES_PER_SUM`] images are summed in parallel, each in order,
/// and their sums added in order: the same bits on any number of threads.
pub fn compute(folder: &dyn ImageSet, limit: Option<usize>, progress: &(dyn Fn(usize) + Sync)) -> Stats {
    let n = limit.map_or(folder.len(), |l| l.min(folder.len()));
    // Spread a limited sample over the whole set.
    let picks: Vec<usize> = (0..n).map(|k| k * folder.len() / n.max(1)).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Sums of r, g, b, rr, gg, bb, rg, rb, gb, and the pixel count; and the unreadable images.
    let add = |(mut s, skipped): ([f64; 10], usize), (t, more): ([f64; 10], usize)| {
        s.iter_mut().zip(t).for_each(|(s, t)| *s += t);
        (s, skipped + more)
    };
    let image_sums = |i: usize| {
        let mut acc = [0.0f64; 10];
        let decoded = folder.decode_image(i);
        if let Ok(img) = &decoded {
            let square = folder.image_pipeline().rescale(img);
            for p in square.pixels() {
                let [r, g, b] = [p[0] as f64 / 255.0, p[1] as f64 / 255.0, p[2] as f64 / 255.0];
                let pixel = [r, g, b, r * r, g * g, b * b, r * g, r * b, g * b, 1.0];
                for (a, v) in acc.iter_mut().zip(pixel) {
                    *a += v;
                }
            }
        }
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        (acc, usize::from(decoded.is_err()))
    };
    let runs: Vec<([f64; 10], usize)> = picks
        .par_chunks(IMAGES_PER_SUM)
        .map(|run| run.iter().map(|&i| image_sums(i)).fold(([0.0; 10], 0), add))
        .collect();
    let (s, skipped) = runs.into_iter().fold(([0.0; 10], 0), add);
    let count = s[9].max(1.0);
    let m = [s[0] / count, s[1] / count, s[2] / count];
    let cov = |i: usize, a: usize, b: usize| s[i] / count - m[a] * m[b];
    let c = [
        [cov(3, 0, 0), cov(6, 0, 1), cov(7, 0, 2)],
        [cov(6, 0, 1), cov(4, 1, 1), cov(8, 1, 2)],
        [cov(7, 0, 2), cov(8, 1, 2), cov(5, 2, 2)],
    ];
    let (eigenvalues, eigenvectors) = symmetric_eigen3(c);
    Stats {
        images: n - skipped,
        skipped,
        mean: [m[0] * 255.0, m[1] * 255.0, m[2] * 255.0],
        eigenvalues,
        eigenvectors,
    }
}

/// Eigenvalues (largest first) and eigenvectors (columns) of a symmetric 3x3 matrix, by cyclic
/// Jacobi rotations.
pub fn symmetric_eigen3(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..64 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        if off < 1e-30 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-300 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
            #[allow(clippy::needless_range_loop)] // a Jacobi rotation reads best as indices
            for k in 0..3 {
                let (akp, akq) = (a[k][p], a[k][q]);
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            #[allow(clippy::needless_range_loop)]
            for k in 0..3 {
                let (apk, aqk) = (a[p][k], a[q][k]);
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let values = [a[order[0]][order[0]], a[order[1]][order[1]], a[order[2]][order[2]]];
    let mut vectors = [[0.0; 3]; 3];
    for (col, &o) in order.iter().enumerate() {
        for row in 0..3 {
            vectors[row][col] = v[row][o];
        }
    }
    (values, vectors)
}
