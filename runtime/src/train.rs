//! The training loop: epochs of shuffled full batches, the graph file's learning-rate schedule,
//! per-epoch validation, metrics, and a stop on a non-finite loss.

use std::time::Instant;

use alexc::ast::{OptimizerDecl, ScheduleDecl};

use crate::data::{epoch_batches, Dataset};
use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;

/// How long to train and how to report it.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    /// At most this many steps per epoch (all full batches when `None`).
    pub max_steps_per_epoch: Option<usize>,
    pub batch_size: usize,
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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
}

#[derive(Default)]
struct Tally {
    loss_sum: f64,
    top1: usize,
    top5: usize,
    images: usize,
}

impl Tally {
    fn add(&mut self, loss: f64, logits: &[f64], labels: &[i32], classes: usize) {
        let (t1, t5) = topk_hits(logits, labels, classes);
        self.loss_sum += loss * labels.len() as f64;
        self.top1 += t1;
        self.top5 += t5;
        self.images += labels.len();
    }

    fn metrics(&self) -> Metrics {
        let n = self.images.max(1) as f64;
        Metrics {
            loss: self.loss_sum / n,
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            images: self.images,
        }
    }
}

/// One epoch's record.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train: Metrics,
    pub val: Metrics,
    pub images_per_second: f64,
    pub peak_bytes: usize,
}

/// What the loop tells its caller as it goes.
pub enum Event<'a> {
    Step { epoch: usize, step: usize, steps: usize, loss: f64, running: Metrics, images_per_second: f64 },
    Epoch(&'a EpochRecord),
}

/// The learning rate: the optimizer's, times the schedule's reductions so far.
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
            best_val_error: f64::INFINITY,
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

    /// Records an epoch's validation error (plateau schedules reduce the rate on no improvement).
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

/// Evaluates `data` with the forward pass only.
pub fn evaluate<B: KernelBackend>(
    exec: &mut Executor<B>,
    data: &dyn Dataset,
    batch: usize,
) -> Result<Metrics, RunError> {
    let mut tally = Tally::default();
    let classes = exec.classes();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch) {
        let b = data.batch(chunk);
        let out = exec.forward(&b)?;
        tally.add(out.loss.unwrap_or(f64::NAN), &out.logits, &b.labels, classes);
    }
    Ok(tally.metrics())
}

/// Trains for `cfg.epochs`, validating after each epoch.
pub fn train<B: KernelBackend>(
    exec: &mut Executor<B>,
    train_set: &dyn Dataset,
    val_set: &dyn Dataset,
    cfg: &TrainConfig,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Vec<EpochRecord>, RunError> {
    if train_set.len() < cfg.batch_size {
        return Err(RunError::Input(format!(
            "the training set has {} images, fewer than one batch of {}; use more images or a smaller --batch-size at compile time",
            train_set.len(),
            cfg.batch_size
        )));
    }
    let classes = exec.classes();
    let mut schedule = LrSchedule::new(&exec.graph.spec.optimizer, &exec.graph.spec.schedule);
    let seed = exec.graph.spec.training.seed;
    let mut records = Vec::new();
    for epoch in 0..cfg.epochs {
        let lr = schedule.lr(epoch);
        let mut batches = epoch_batches(train_set.len(), cfg.batch_size, seed, epoch);
        if let Some(max) = cfg.max_steps_per_epoch {
            batches.truncate(max);
        }
        let mut tally = Tally::default();
        let mut peak = 0;
        let started = Instant::now();
        for (step, indices) in batches.iter().enumerate() {
            let batch = train_set.batch(indices);
            let out = exec.step(&batch, lr)?;
            let loss = out.loss.unwrap_or(f64::NAN);
            if !loss.is_finite() {
                return Err(RunError::NonFinite { value: loss, epoch: epoch + 1, step: step + 1 });
            }
            peak = peak.max(out.peak_bytes);
            tally.add(loss, &out.logits, &batch.labels, classes);
            let ips = tally.images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            on_event(Event::Step {
                epoch,
                step,
                steps: batches.len(),
                loss,
                running: tally.metrics(),
                images_per_second: ips,
            });
        }
        let images_per_second = tally.images as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let val = evaluate(exec, val_set, cfg.batch_size)?;
        schedule.observe(1.0 - val.top1);
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train: tally.metrics(),
            val,
            images_per_second,
            peak_bytes: peak,
        };
        on_event(Event::Epoch(&record));
        records.push(record);
    }
    Ok(records)
}
