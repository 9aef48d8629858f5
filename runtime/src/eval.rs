//! Evaluation as the paper reports it: top-1 and top-5 accuracy on a validation folder with the
//! centre crop, and with ten crops (four corners and the centre, and their mirrors) whose softmax
//! outputs are averaged; and the top classes of single images, for inference.

use crate::data::ImageSet;
use crate::error::RunError;
use crate::exec::{Batch, Executor};
use crate::kernels::KernelBackend;
use crate::metrics::{Metrics, Tally};

/// What [`evaluate_folder`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Centre-crop metrics.
    pub center: Metrics,
    /// Ten-crop metrics, when asked for.
    pub ten: Option<Metrics>,
    /// Images that could not be read (skipped).
    pub skipped: usize,
}

/// The softmax of one row of logits.
pub fn softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// The `k` most probable classes of one row of logits, with their probabilities, most probable
/// first.
pub fn top_classes(logits: &[f64], k: usize) -> Vec<(usize, f64)> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
    order.into_iter().take(k).map(|c| (c, probs[c])).collect()
}

/// Evaluates every image of `val` in batches of `batch` (the plan's): centre crop, and ten crops
/// unless `center_only`. `progress` is told how many images each batch covered.
pub fn evaluate_folder<B: KernelBackend>(
    exec: &mut Executor<B>,
    val: &dyn ImageSet,
    batch: usize,
    center_only: bool,
    mut progress: impl FnMut(usize),
) -> Result<EvalReport, RunError> {
    let k = exec.classes();
    let indices: Vec<usize> = (0..val.len()).collect();
    let (mut center, mut ten) = (Tally::default(), Tally::default());
    let mut skipped = 0;
    for chunk in indices.chunks(batch.max(1)) {
        let (b, failed) = val.batch(chunk, None);
        skipped += failed.len();
        if !b.is_empty() {
            let out = exec.forward(&b)?;
            center.add(out.loss.unwrap_or(f64::NAN), &out.logits, &b.labels, k);
            if !center_only {
                let readable: Vec<usize> =
                    chunk.iter().copied().filter(|i| !failed.iter().any(|(f, _)| f == i)).collect();
                let log_avg = ten_crop_log_probs(exec, val, &readable, batch)?;
                let loss =
                    b.labels.iter().enumerate().map(|(i, &l)| -log_avg[i * k + l as usize]).sum::<f64>()
                        / b.len() as f64;
                ten.add(loss, &log_avg, &b.labels, k);
            }
        }
        progress(chunk.len());
    }
    Ok(EvalReport { center: center.metrics(), ten: (!center_only).then(|| ten.metrics()), skipped })
}

/// The log of the ten-crop averaged softmax of each image in `images` (`images.len() x classes`),
/// a few images per forward pass so that a pass holds at most about `batch` crops.
fn ten_crop_log_probs<B: KernelBackend>(
    exec: &mut Executor<B>,
    val: &dyn ImageSet,
    images: &[usize],
    batch: usize,
) -> Result<Vec<f64>, RunError> {
    let k = exec.classes();
    let per_pass = batch.div_ceil(10).max(1);
    let mut avg = Vec::with_capacity(images.len() * k);
    for group in images.chunks(per_pass) {
        let mut crops = Vec::new();
        for &i in group {
            let img = val.decode_image(i).map_err(RunError::Input)?;
            for crop in val.image_pipeline().ten_crops(&img) {
                crops.extend(crop);
            }
        }
        let out = exec.forward(Batch { images: crops, labels: vec![0; group.len() * 10] })?;
        for g in 0..group.len() {
            let mut row = vec![0.0f64; k];
            for c in 0..10 {
                for (a, p) in row.iter_mut().zip(softmax(&out.logits[(g * 10 + c) * k..][..k])) {
                    *a += p / 10.0;
                }
            }
            avg.extend(row);
        }
    }
    Ok(avg.into_iter().map(|p| p.max(1e-30).ln()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let p = softmax(&[1.0, 3.0, 2.0, -1000.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[1] > p[2] && p[2] > p[0] && p[3] < 1e-300);
    }

    #[test]
    fn the_top_classes_come_most_probable_first() {
        let top = top_classes(&[0.5, 2.0, -1.0, 1.0], 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 0]);
        assert!(top[0].1 > top[1].1);
    }
}
