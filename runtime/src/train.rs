//! The training loop: epochs of shuffled full batches from the loader, the graph file's
//! learning-rate schedule, validation after each epoch, checkpoints written atomically (every
//! epoch, and every N steps if asked), resume from the last one, and a stop on a non-finite loss
//! that keeps the last good checkpoint.
//!
//! In a data-parallel run (see [`crate::distributed`]) each rank steps on its slice of every
//! batch of `ranks x batch` images of the epoch's order, and evaluates every `ranks`-th
//! validation image; the metrics are summed across ranks, so every rank sees the same.

use std::path::PathBuf;
use std::time::Instant;

use crate::checkpoint;
use crate::data::{epoch_order, Dataset, Loader};
use crate::distributed::fault::Fault;
use crate::distributed::sync::{reduce_count, reduce_tally};
use crate::error::RunError;
use crate::exec::{AllReduceTimes, Batch, Executor};
use crate::init::Rng;
use crate::kernels::KernelBackend;
use crate::metrics::{Metrics, Tally};
use crate::progress::{EpochRecord, Progress};

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

/// What the loop tells its caller as it goes.
pub enum Event<'a> {
    /// A training step: 0-based epoch and step, steps in the epoch, the batch's loss, its learning
    /// rate, the running
    /// epoch metrics and throughput, the seconds since the previous step ended (or the epoch
    /// began), where those seconds went, and the step's time in the gradient all-reduce.
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
        lr: f64,
        running: Metrics,
        images_per_second: f64,
        seconds: f64,
        phases: StepPhases,
        all_reduce: AllReduceTimes,
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

/// Where a training step's seconds went, as one rank saw them. The step's time (from the previous
/// step's end) is the sum of these and of the loop's own bookkeeping.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepPhases {
    /// From the previous step's end to this step's batch: waiting for the loader, and the
    /// previous step's reporting (progress line, checkpoint where one was due).
    pub data: f64,
    /// In the plan's nodes (the executor's step), the gradient all-reduce's exposed time included.
    pub step: f64,
    /// In the sum of the batch's metrics across ranks: mostly waiting for the slowest rank to
    /// finish its step (zero in one process).
    pub metrics_sum: f64,
}

/// Evaluates `data` (test-time preprocessing) with the forward pass only; returns the metrics and
/// the unreadable images skipped, each summed over the ranks.
pub fn evaluate<B: KernelBackend>(
    exec: &mut Executor<B>,
    data: &dyn Dataset,
    batch: usize,
    loader: &Loader,
) -> Result<(Metrics, usize), RunError> {
    let classes = exec.classes();
    let world = exec.shared_world();
    let indices: Vec<usize> = (world.rank()..data.len()).step_by(world.size()).collect();
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
    Ok((reduce_tally(&tally, &*world).metrics(), reduce_count(skipped, &*world)))
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
    let world = exec.shared_world();
    let (rank, global_batch) = (world.rank(), cfg.batch_size * world.size());
    if train_set.len() < global_batch {
        return Err(RunError::Input(format!(
            "the training set has {} images, fewer than one batch of {global_batch} ({} per process x {} processes); use more images, or compile with a smaller --batch-size",
            train_set.len(),
            cfg.batch_size,
            world.size()
        )));
    }
    let classes = exec.classes();
    let fault = Fault::from_env()?;
    let seed = exec.graph.spec.training.seed;
    let class_names = train_set.class_names();
    let run_data = checkpoint::RunData {
        classes: &class_names,
        stats: cfg.stats.as_ref(),
        train_images: train_set.len(),
        batch_size: global_batch,
    };
    while progress.epoch < cfg.epochs {
        let epoch = progress.epoch;
        let lr = progress.schedule.lr(epoch);
        let mut batches = epoch_order(train_set.len(), global_batch, seed, epoch);
        if let Some(max) = cfg.max_steps_per_epoch {
            batches.truncate(max);
        }
        for b in &mut batches {
            *b = b[rank * cfg.batch_size..(rank + 1) * cfg.batch_size].to_vec();
        }
        let steps = batches.len();
        let mut tally = progress.partial.take().unwrap_or_default();
        let resumed_images = tally.images();
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
        let mut last_step_end = started;
        let augment = Rng::for_stream(seed, &[b"augment", &(epoch as u64).to_le_bytes()]).next_u64();
        cfg.loader.run(train_set, &batches[skip..], Some(augment), |mut l| {
            let data = last_step_end.elapsed().as_secs_f64();
            let step = skip + l.index;
            for (index, error) in &l.failed {
                on_event(Event::Skipped { index: *index, error });
            }
            skipped += l.failed.len();
            if l.batch.is_empty() {
                if world.size() > 1 {
                    // The other ranks are stepping: this one cannot sit the step out. (The
                    // error is printed with its rank.)
                    return Err(RunError::Input(format!(
                        "no image of step {} could be read; fix or remove the unreadable images",
                        step + 1
                    )));
                }
                return Ok(());
            }
            if let Some(fault) = &fault {
                fault.before_step(rank, exec.steps_done + 1)?;
            }
            // The images move to the device as they are; the labels stay for the tally.
            let images = std::mem::take(&mut l.batch.images);
            let all_reduce_before = exec.all_reduce;
            let step_started = Instant::now();
            let out = exec.step(Batch { images, labels: l.batch.labels.clone() }, lr)?;
            let step_seconds = step_started.elapsed().as_secs_f64();
            let all_reduce = exec.all_reduce.since(&all_reduce_before);
            // The batch's loss and hits, summed over the ranks: each sees the whole batch's.
            let mut batch_tally = crate::metrics::Tally::default();
            batch_tally.add(out.loss.unwrap_or(f64::NAN), &out.logits, &l.batch.labels, classes);
            let sum_started = Instant::now();
            let batch_tally = reduce_tally(&batch_tally, &*world);
            let metrics_sum = sum_started.elapsed().as_secs_f64();
            let loss = batch_tally.metrics().loss;
            if !loss.is_finite() {
                return Err(RunError::NonFinite { value: loss, epoch: epoch + 1, step: step + 1 });
            }
            peak = peak.max(out.peak_bytes);
            tally.merge(&batch_tally);
            let ips = (tally.images() - resumed_images) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let seconds = last_step_end.elapsed().as_secs_f64();
            last_step_end = Instant::now();
            on_event(Event::Step {
                epoch,
                step,
                steps,
                loss,
                lr,
                running: tally.metrics(),
                images_per_second: ips,
                seconds,
                phases: StepPhases { data, step: step_seconds, metrics_sum },
                all_reduce,
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
            (tally.images() - resumed_images) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let skipped = reduce_count(skipped, &*world);
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
