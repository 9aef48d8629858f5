//! Where a training run stands: the epoch and step, the learning-rate schedule's state, the
//! records of the epochs done. A checkpoint saves it beside the tensors; `--resume` restores it.

use alexir::ir::{Optimizer, Schedule};
use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, Tally};

/// One epoch's record, as written to metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train: Metrics,
    pub val: Metrics,
    pub images_per_second: f64,
    pub peak_bytes: usize,
    /// Samples that could not be read this epoch (skipped).
    pub skipped: usize,
    pub seconds: f64,
}

/// The learning rate: the optimizer's, times the schedule's reductions so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    base: f64,
    schedule: Schedule,
    reductions: usize,
    best_val_error: f64,
    epochs_without_improvement: usize,
}

impl LrSchedule {
    pub fn new(optimizer: &Optimizer, schedule: &Schedule) -> Self {
        let Optimizer::Sgd { lr, .. } = *optimizer;
        LrSchedule {
            base: lr,
            schedule: schedule.clone(),
            reductions: 0,
            best_val_error: f64::MAX,
            epochs_without_improvement: 0,
        }
    }

    /// The rate for `epoch` (0-based).
    pub fn lr(&self, epoch: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Step { factor, every_epochs } => self.base * factor.powi((epoch / every_epochs) as i32),
            Schedule::Plateau { factor, .. } => self.base * factor.powi(self.reductions as i32),
        }
    }

    /// Takes a recompiled plan's base rate and schedule, keeping the progress so far (reductions,
    /// best validation error): on `--resume` the plan in hand is what the user asked to run.
    /// Returns whether anything changed.
    pub fn adopt(&mut self, optimizer: &Optimizer, schedule: &Schedule) -> bool {
        let Optimizer::Sgd { lr, .. } = *optimizer;
        let changed = lr != self.base || *schedule != self.schedule;
        self.base = lr;
        self.schedule = schedule.clone();
        changed
    }

    /// Records an epoch's validation error; a plateau schedule divides the rate when it has not
    /// improved for more than `patience` epochs, at most `max_reductions` times.
    pub fn observe(&mut self, val_error: f64) {
        if let Schedule::Plateau { patience, max_reductions, .. } = self.schedule {
            if val_error < self.best_val_error - 1e-9 {
                self.best_val_error = val_error;
                self.epochs_without_improvement = 0;
            } else {
                self.epochs_without_improvement += 1;
                if self.epochs_without_improvement > patience && self.reductions < max_reductions {
                    self.reductions += 1;
                    self.epochs_without_improvement = 0;
                }
            }
        }
    }
}

/// Where a run stands: what a checkpoint saves besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch to run next (0-based) and how many of its steps are done.
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub schedule: LrSchedule,
    pub records: Vec<EpochRecord>,
    /// The partial epoch's running sums, when checkpointed mid-epoch.
    pub partial: Option<Tally>,
}

impl Progress {
    /// A fresh run of a plan with `spec`.
    pub fn start(spec: &alexir::ir::TrainingSpec) -> Self {
        Progress {
            epoch: 0,
            step_in_epoch: 0,
            schedule: LrSchedule::new(&spec.optimizer, &spec.schedule),
            records: Vec::new(),
            partial: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_reads_back_from_a_checkpoint_as_the_same_bits() {
        // Values whose shortest decimal form a fast float parser rounds to the neighbouring f64.
        let plateau = Schedule::Plateau { factor: 0.1, patience: 1, max_reductions: 3 };
        let sgd = Optimizer::Sgd { lr: 0.01, momentum: 0.9, weight_decay: 5e-4 };
        let mut schedule = LrSchedule::new(&sgd, &plateau);
        schedule.observe(0.2875295696263214);
        let metrics = Metrics { loss: 2.0124047005878998, top1: 0.3442550132465074, top5: 0.9, images: 64 };
        let record = EpochRecord {
            epoch: 1,
            lr: 0.01,
            train: metrics,
            val: metrics,
            images_per_second: 12.3,
            peak_bytes: 1,
            skipped: 0,
            seconds: 1.5,
        };
        let partial = Tally::from_sums([2.2875295696263214 * 32.0, 3.0, 16.0, 32.0]);
        let progress =
            Progress { epoch: 1, step_in_epoch: 2, schedule, records: vec![record], partial: Some(partial) };
        let text = serde_json::to_string(&progress).unwrap();
        let back: Progress = serde_json::from_str(&text).unwrap();
        assert_eq!(back, progress, "{text}");
    }

    #[test]
    fn a_recompiled_schedule_is_adopted_with_the_progress_so_far() {
        let sgd = |lr| Optimizer::Sgd { lr, momentum: 0.9, weight_decay: 5e-4 };
        let plateau = Schedule::Plateau { factor: 0.1, patience: 0, max_reductions: 3 };
        let mut s = LrSchedule::new(&sgd(0.01), &plateau);
        s.observe(0.5);
        s.observe(0.6); // no improvement: one reduction
        assert!((s.lr(2) - 0.001).abs() < 1e-12);
        assert!(!s.adopt(&sgd(0.01), &plateau), "the same plan changes nothing");
        assert!(s.adopt(&sgd(0.02), &plateau));
        assert!((s.lr(2) - 0.002).abs() < 1e-12, "the new base rate, with the reduction kept");
        assert!(s.adopt(&sgd(0.02), &Schedule::Constant));
        assert!((s.lr(2) - 0.02).abs() < 1e-12);
    }
}
