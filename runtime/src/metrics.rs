//! Loss and accuracy: top-1 and top-5 hits, running sums over a pass, and the per-epoch metrics
//! file (`metrics.jsonl`, one JSON object per epoch).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::RunError;

/// Top-1 and top-5 hits of `logits` (`n x classes`) against `labels`.
pub fn topk_hits(logits: &[f64], labels: &[i32], classes: usize) -> (usize, usize) {
    let (mut top1, mut top5) = (0, 0);
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let mine = row[label as usize];
        // Rank = how many classes score strictly higher (ties count in the label's favour).
        let rank = row.iter().filter(|&&v| v > mine).count();
        top1 += usize::from(rank < 1);
        top5 += usize::from(rank < 5);
    }
    (top1, top5)
}

/// Loss and accuracy over some images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
}

/// Running sums behind [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    loss_sum: f64,
    top1: usize,
    top5: usize,
    images: usize,
}

impl Tally {
    pub fn add(&mut self, loss: f64, logits: &[f64], labels: &[i32], classes: usize) {
        let (t1, t5) = topk_hits(logits, labels, classes);
        self.loss_sum += loss * labels.len() as f64;
        self.top1 += t1;
        self.top5 += t5;
        self.images += labels.len();
    }

    /// The running sums (loss times images, top-1 hits, top-5 hits, images), to add across the
    /// processes of a data-parallel run.
    pub fn sums(&self) -> [f64; 4] {
        [self.loss_sum, self.top1 as f64, self.top5 as f64, self.images as f64]
    }

    /// A tally from [`Tally::sums`] (added across processes).
    pub fn from_sums([loss_sum, top1, top5, images]: [f64; 4]) -> Self {
        Tally { loss_sum, top1: top1 as usize, top5: top5 as usize, images: images as usize }
    }

    /// Adds another tally's sums (a batch's, summed across processes).
    pub fn merge(&mut self, other: &Tally) {
        self.loss_sum += other.loss_sum;
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.images += other.images;
    }

    /// Images counted so far.
    pub fn images(&self) -> usize {
        self.images
    }

    pub fn metrics(&self) -> Metrics {
        let n = self.images.max(1) as f64;
        Metrics {
            loss: self.loss_sum / n,
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            images: self.images,
        }
    }
}

/// Writes `records` to `path` as JSON lines, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<(), RunError> {
    let mut text = String::new();
    for r in records {
        let line = serde_json::to_string(r)
            .map_err(|e| RunError::Internal(format!("a metrics record does not serialise: {e}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    alexir::plan::write_atomically(path, text.as_bytes())
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })
}
