//! The training loop: epochs of shuffled full batches from the loader, the graph file's
//! learning-rate schedule, validation after each epoch, checkpoints written atomically (every
//! epoch, and every N steps if asked), resume from the last one, and a stop on a non-finite loss
//! that keeps the last good checkpoint.

use std::path::PathBuf;
use std::time::Instant;

use alexc::ast::{OptimizerDecl, ScheduleDecl};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::data::{epoch_order, Dataset, Loader};
use crate::error::RunError;
use crate::exec::{Batch, Executor};
use crate::init::Rng;
use crate::kernels::KernelBackend;

/// How long to train, and where to keep checkpoints.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    /// At most this many steps per epoch (all full batches when `None`).
    pub max_steps_per_epoch: Option<usize>,
    pub batch_size: usize,
    pub loader: Loader,
    /// Where checkpoints go; none are written without it.
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every this many steps within an epoch.
    pub checkpoint_every: Option<usize>,
    /// Dataset statistics to record in checkpoints.
    pub stats: Option<crate::data::stats::Stats>,
}

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

/// What the loop tells its caller as it goes.
pub enum Event<'a> {
    /// A training step: 0-based epoch and step, steps in the epoch, the batch's loss, the running
    /// epoch metrics and throughput.
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
        running: Metrics,
        images_per_second: f64,
    },
    /// A sample could not be read (it was skipped).
    Skipped {
        index: usize,
        error: &'a str,
    },
    Evaluating {
        epoch: usize,
    },
    Epoch(&'a EpochRecord),
    Checkpoint {
        path: &'a std::path::Path,
        epoch: usize,
        step: usize,
    },
}

/// The learning rate: the optimizer's, times the schedule's reductions so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    base: f64,
    schedule: ScheduleDecl,
    reductions: usize,
    best_val_error: f64,
    epochs_without_improvement: usize,
}

impl LrSchedule {
    pub fn new(optimizer: &OptimizerDecl, schedule: &ScheduleDecl) -> Self {
        let OptimizerDecl::Sgd { lr, .. } = *optimizer;
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
            ScheduleDecl::Constant => self.base,
            ScheduleDecl::Step { factor, every_epochs } => {
                self.base * factor.powi((epoch / every_epochs) as i32)
            }
            ScheduleDecl::Plateau { factor, .. } => self.base * factor.powi(self.reductions as i32),
        }
    }

    /// Takes a recompiled plan's base rate and schedule, keeping the progress so far (reductions,
    /// best validation error): on `--resume` the plan in hand is what the user asked to run.
    /// Returns whether anything changed.
    pub fn adopt(&mut self, optimizer: &OptimizerDecl, schedule: &ScheduleDecl) -> bool {
        let OptimizerDecl::Sgd { lr, .. } = *optimizer;
        let changed = lr != self.base || *schedule != self.schedule;
        self.base = lr;
        self.schedule = schedule.clone();
        changed
    }

    /// Records an epoch's validation error; a plateau schedule divides the rate when it has not
    /// improved for more than `patience` epochs, at most `max_reductions` times.
    pub fn observe(&mut self, val_error: f64) {
        if let ScheduleDecl::Plateau { patience, max_reductions, .. } = self.schedule {
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
    pub fn start(exec: &Executor<impl KernelBackend>) -> Self {
        Progress {
            epoch: 0,
            step_in_epoch: 0,
            schedule: LrSchedule::new(&exec.graph.spec.optimizer, &exec.graph.spec.schedule),
            records: Vec::new(),
            partial: None,
        }
    }
}

/// Evaluates `data` (test-time preprocessing) with the forward pass only.
pub fn evaluate<B: KernelBackend>(
    exec: &mut Executor<B>,
    data: &dyn Dataset,
    batch: usize,
    loader: &Loader,
) -> Result<(Metrics, usize), RunError> {
    let classes = exec.classes();
    let indices: Vec<usize> = (0..data.len()).collect();
    let batches: Vec<Vec<usize>> = indices.chunks(batch).map(|c| c.to_vec()).collect();
    let mut tally = Tally::default();
    let mut skipped = 0;
    loader.run(data, &batches, None, |mut l| {
        skipped += l.failed.len();
        if !l.batch.is_empty() {
            let images = std::mem::take(&mut l.batch.images);
            let out = exec.forward(Batch { images, labels: l.batch.labels.clone() })?;
            tally.add(out.loss.unwrap_or(f64::NAN), &out.logits, &l.batch.labels, classes);
        }
        Ok::<(), RunError>(())
    })?;
    Ok((tally.metrics(), skipped))
}

/// Trains from `progress` to `cfg.epochs`, validating after each epoch.
pub fn train<B: KernelBackend>(
    exec: &mut Executor<B>,
    train_set: &dyn Dataset,
    val_set: &dyn Dataset,
    cfg: &TrainConfig,
    mut progress: Progress,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Progress, RunError> {
    if train_set.len() < cfg.batch_size {
        return Err(RunError::Input(format!(
            "the training set has {} images, fewer than one batch of {}; use more images, or compile with a smaller --batch-size",
            train_set.len(),
            cfg.batch_size
        )));
    }
    let classes = exec.classes();
    let seed = exec.graph.spec.training.seed;
    let class_names = train_set.class_names();
    let run_data = checkpoint::RunData {
        classes: &class_names,
        stats: cfg.stats.as_ref(),
        train_images: train_set.len(),
        batch_size: cfg.batch_size,
    };
    while progress.epoch < cfg.epochs {
        let epoch = progress.epoch;
        let lr = progress.schedule.lr(epoch);
        let mut batches = epoch_order(train_set.len(), cfg.batch_size, seed, epoch);
        if let Some(max) = cfg.max_steps_per_epoch {
            batches.truncate(max);
        }
        let steps = batches.len();
        let mut tally = progress.partial.take().unwrap_or_default();
        let resumed_images = tally.images;
        let skip = progress.step_in_epoch;
        if skip > steps {
            return Err(RunError::Input(format!(
                "the checkpoint is at step {skip} of epoch {}, but this run's epochs have {steps} steps; resume with the same --steps-per-epoch",
                epoch + 1
            )));
        }
        let mut peak = 0;
        let mut skipped = 0;
        let started = Instant::now();
        let augment = Rng::for_stream(seed, &[b"augment", &(epoch as u64).to_le_bytes()]).next_u64();
        cfg.loader.run(train_set, &batches[skip..], Some(augment), |mut l| {
            let step = skip + l.index;
            for (index, error) in &l.failed {
                on_event(Event::Skipped { index: *index, error });
            }
            skipped += l.failed.len();
            if l.batch.is_empty() {
                return Ok(());
            }
            // The images move to the device as they are; the labels stay for the tally.
            let images = std::mem::take(&mut l.batch.images);
            let out = exec.step(Batch { images, labels: l.batch.labels.clone() }, lr)?;
            let loss = out.loss.unwrap_or(f64::NAN);
            if !loss.is_finite() {
                return Err(RunError::NonFinite { value: loss, epoch: epoch + 1, step: step + 1 });
            }
            peak = peak.max(out.peak_bytes);
            tally.add(loss, &out.logits, &l.batch.labels, classes);
            let ips = (tally.images - resumed_images) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            on_event(Event::Step {
                epoch,
                step,
                steps,
                loss,
                running: tally.metrics(),
                images_per_second: ips,
            });
            progress.step_in_epoch = step + 1;
            if let (Some(dir), Some(every)) = (&cfg.checkpoint_dir, cfg.checkpoint_every) {
                if every > 0 && progress.step_in_epoch.is_multiple_of(every) && progress.step_in_epoch < steps
                {
                    progress.partial = Some(tally.clone());
                    let path = checkpoint::save(exec, dir, &progress, &run_data)?;
                    progress.partial = None;
                    on_event(Event::Checkpoint { path: &path, epoch, step: progress.step_in_epoch });
                }
            }
            Ok(())
        })?;
        let images_per_second =
            (tally.images - resumed_images) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        on_event(Event::Evaluating { epoch });
        let (val, val_skipped) = evaluate(exec, val_set, cfg.batch_size, &cfg.loader)?;
        progress.schedule.observe(1.0 - val.top1);
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train: tally.metrics(),
            val,
            images_per_second,
            peak_bytes: peak,
            skipped: skipped + val_skipped,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.records.push(record.clone());
        progress.epoch += 1;
        progress.step_in_epoch = 0;
        on_event(Event::Epoch(&record));
        if let Some(dir) = &cfg.checkpoint_dir {
            let path = checkpoint::save(exec, dir, &progress, &run_data)?;
            on_event(Event::Checkpoint { path: &path, epoch: progress.epoch, step: 0 });
        }
    }
    Ok(progress)
}

/// Reads the checkpoint in `dir` into `exec`, for `--resume`.
pub fn resume<B: KernelBackend>(
    exec: &mut Executor<B>,
    dir: &std::path::Path,
) -> Result<(Progress, Checkpoint), RunError> {
    checkpoint::load(exec, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recompiled_schedule_is_adopted_with_the_progress_so_far() {
        let sgd = |lr| OptimizerDecl::Sgd { lr, momentum: 0.9, weight_decay: 5e-4 };
        let plateau = ScheduleDecl::Plateau { factor: 0.1, patience: 0, max_reductions: 3 };
        let mut s = LrSchedule::new(&sgd(0.01), &plateau);
        s.observe(0.5);
        s.observe(0.6); // no improvement: one reduction
        assert!((s.lr(2) - 0.001).abs() < 1e-12);
        assert!(!s.adopt(&sgd(0.01), &plateau), "the same plan changes nothing");
        assert!(s.adopt(&sgd(0.02), &plateau));
        assert!((s.lr(2) - 0.002).abs() < 1e-12, "the new base rate, with the reduction kept");
        assert!(s.adopt(&sgd(0.02), &ScheduleDecl::Constant));
        assert!((s.lr(2) - 0.02).abs() < 1e-12);
    }
}
