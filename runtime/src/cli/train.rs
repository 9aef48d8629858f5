//! `alexrt train`: flags, then the library's [`Session`] and training loop, with a progress bar
//! (or a line every few seconds when stderr is not a terminal) and a line per epoch.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::data::DataSource;
use crate::distributed::{self, Collective};
use crate::exec::AllReduceTimes;
use crate::kernels::KernelBackend;
use crate::session::{Session, TrainRequest};
use crate::train::{train, Event, StepPhases};
use crate::{weights, RunError};
use alexir::plan::Plan;
use alexir::units::human_bytes;
use indicatif::ProgressBar;

use super::{bar, is_terminal, DeviceArg};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// A training plan from `alexc compile`.
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// An ImageNet-layout folder (DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG), or the
    /// shards `alexrt pack` made of one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where metrics.jsonl, the plot and checkpoints go (default: runs/<graph>, or the next free
    /// runs/<graph>-N when that holds an earlier run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the checkpoint in --out (or from the one before it, if that one is damaged).
    #[arg(long)]
    resume: bool,
    /// Epochs in all (default: the graph file's).
    #[arg(long, value_parser = super::one_or_more)]
    epochs: Option<NonZeroUsize>,
    /// At most this many steps per epoch.
    #[arg(long, value_parser = super::one_or_more)]
    steps_per_epoch: Option<NonZeroUsize>,
    /// Also write a checkpoint every N steps (one is always written after each epoch).
    #[arg(long, value_parser = super::one_or_more)]
    checkpoint_every: Option<NonZeroUsize>,
    /// Decoding threads (default: one per core).
    #[arg(long, value_parser = super::one_or_more)]
    workers: Option<NonZeroUsize>,
    /// Synthetic training images (without --data).
    #[arg(long, default_value = "2048", value_parser = super::one_or_more)]
    train_images: NonZeroUsize,
    /// Synthetic validation images (without --data).
    #[arg(long, default_value = "512", value_parser = super::one_or_more)]
    val_images: NonZeroUsize,
    /// Start from these weights (safetensors, PyTorch names and layouts).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Also write the final weights here (safetensors).
    #[arg(long)]
    save_weights: Option<PathBuf>,
}

impl TrainArgs {
    fn request(&self) -> TrainRequest {
        TrainRequest {
            out: self.out.clone(),
            resume: self.resume,
            weights: self.weights.clone(),
            data: match &self.data {
                Some(dir) => DataSource::Folder(dir.clone()),
                None => DataSource::Synthetic {
                    train_images: self.train_images.get(),
                    val_images: self.val_images.get(),
                },
            },
            epochs: self.epochs.map(NonZeroUsize::get),
            max_steps_per_epoch: self.steps_per_epoch.map(NonZeroUsize::get),
            checkpoint_every: self.checkpoint_every.map(NonZeroUsize::get),
            workers: self.workers.map(NonZeroUsize::get),
        }
    }
}

pub fn run<B: KernelBackend>(args: TrainArgs, devices: Vec<B::Device>) -> Result<(), RunError> {
    super::as_rank(distributed::connect()?, |world| run_in::<B>(args, devices, world))
}

fn run_in<B: KernelBackend>(
    args: TrainArgs,
    devices: Vec<B::Device>,
    world: std::sync::Arc<dyn Collective>,
) -> Result<(), RunError> {
    let device_name = devices.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(" + ");
    let plan = Plan::read(&args.plan)?;
    let rank0 = world.rank() == 0;
    let Session { mut exec, dir, progress, datasets, config, notes } = Session::<B>::prepare_in(
        &plan,
        &args.plan.display().to_string(),
        &args.request(),
        devices,
        std::sync::Arc::clone(&world),
    )?;
    if !rank0 {
        // The other ranks train in step with rank 0 and write nothing but their step times,
        // which rank 0 prints.
        let mut times = StepTimes::default();
        train(&mut exec, &*datasets.train, &*datasets.val, &config, progress, |e| times.record(&e))?;
        times.gather(&*world);
        exec.check_replicas_identical()?;
        return Ok(());
    }
    for note in &notes {
        eprintln!("{note}");
    }
    if world.size() > 1 {
        eprintln!(
            "data parallel over {} processes ({}), {} threads each: batch {} per process, {} per step",
            world.size(),
            world.describe(),
            distributed::threads_per_rank(&*world),
            config.batch_size,
            config.batch_size * world.size()
        );
    }
    let [c, h, w] = exec.input_shape();
    let (classes, epochs) = (plan.graph.spec.classes, config.epochs);
    eprintln!(
        "training `{}` on {device_name}: {} training and {} validation images of {c}x{h}x{w}, {classes} classes (chance {:.2}%), batch {}, {epochs} epochs; writing to {}",
        plan.graph.name,
        datasets.train.len(),
        datasets.val.len(),
        100.0 / classes as f64,
        config.batch_size,
        dir.path().display()
    );
    // The curves for TensorBoard, rank 0's only; a write error ends the log, not the run.
    let mut board = crate::tensorboard::RunLog::create(dir.path())?;
    let started = Instant::now();
    let mut shown = Shown::default();
    let mut records = progress.records.clone();
    let arena = human_bytes(plan.memory.arena_bytes);
    let (train_set, val_set) = (&*datasets.train, &*datasets.val);
    let result = train(&mut exec, train_set, val_set, &config, progress, |event| {
        if let Err(e) = board.record(&event) {
            eprintln!("{e}; no more TensorBoard events are written");
        }
        match event {
            Event::Epoch(r) => {
                shown.finish();
                eprintln!(
                "epoch {}/{epochs}: lr {:.5}, train loss {:.4} top-1 {:.1}% | val loss {:.4} top-1 {:.1}% top-5 {:.1}% | {:.0} images/s, {:.0}s, peak {} (plan arena {arena}){}",
                r.epoch,
                r.lr,
                r.train.loss,
                100.0 * r.train.top1,
                r.val.loss,
                100.0 * r.val.top1,
                100.0 * r.val.top5,
                r.images_per_second,
                r.seconds,
                human_bytes(r.peak_bytes),
                if r.skipped > 0 { format!(", {} skipped", alexir::units::plural(r.skipped, "unreadable image", "unreadable images")) } else { String::new() }
            );
                // Metrics and the plot, rewritten after every epoch.
                records.push(r.clone());
                match dir.write_records(&records, &plan.graph.name) {
                    Ok(None) => {}
                    Ok(Some(warning)) => eprintln!("{warning}"),
                    Err(e) => eprintln!("{e}"),
                }
            }
            other => shown.event(&other, epochs),
        }
    });
    shown.finish();
    let progress = result.inspect_err(|e| {
        if matches!(e, RunError::NonFinite { .. }) && dir.checkpoint().exists() {
            eprintln!("the last good checkpoint is {}", dir.checkpoint().display());
        }
    })?;
    if let Some(last) = progress.records.last() {
        let best = progress.records.iter().map(|r| r.val.top1).fold(0.0, f64::max);
        crate::say(&format!(
            "trained `{}` for {} epochs in {:.1}s: validation top-1 {:.1}% (best {:.1}%, chance {:.2}%), top-5 {:.1}%, loss {:.4}\n  metrics {}, plot {}, checkpoint {}\n",
            plan.graph.name,
            progress.records.len(),
            started.elapsed().as_secs_f64(),
            100.0 * last.val.top1,
            100.0 * best,
            100.0 / classes as f64,
            100.0 * last.val.top5,
            last.val.loss,
            dir.metrics().display(),
            dir.plot().display(),
            dir.checkpoint().display()
        ));
    }
    let ranks = shown.times.gather(&*world);
    for line in shown.times.summary(&ranks) {
        eprintln!("{line}");
    }
    if world.size() > 1 {
        let crc = exec.check_replicas_identical()?;
        eprintln!("all {} ranks hold identical weights (CRC-32 {crc:08x})", world.size());
    }
    if let Some(path) = &args.save_weights {
        weights::save(&exec, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// What the user sees between epochs: a bar on a terminal, else a line every few seconds; the
/// first few unreadable images.
struct Shown {
    bar: Option<ProgressBar>,
    last_line: Instant,
    skipped: usize,
    times: StepTimes,
}

impl Default for Shown {
    fn default() -> Self {
        Shown {
            bar: None,
            last_line: Instant::now() - Duration::from_secs(60),
            skipped: 0,
            times: StepTimes::default(),
        }
    }
}

/// Each training step's seconds, where they went, and its all-reduce times, for the run's last
/// lines: the first step (which warms up the allocator and the caches) apart from the others.
#[derive(Default)]
struct StepTimes {
    steps: Vec<(f64, StepPhases, AllReduceTimes)>,
}

/// One rank's means over the steps after the first, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RankMeans {
    step: f64,
    data: f64,
    nodes: f64,
    exposed: f64,
    metrics_sum: f64,
}

impl RankMeans {
    const FIELDS: usize = 5;

    fn to_array(self) -> [f64; Self::FIELDS] {
        [self.step, self.data, self.nodes, self.exposed, self.metrics_sum]
    }

    fn from_slice(v: &[f64]) -> Self {
        RankMeans { step: v[0], data: v[1], nodes: v[2], exposed: v[3], metrics_sum: v[4] }
    }
}

impl StepTimes {
    fn record(&mut self, event: &Event<'_>) {
        if let Event::Step { seconds, phases, all_reduce, .. } = *event {
            self.steps.push((seconds, phases, all_reduce));
        }
    }

    /// This rank's means over the steps after the first (none with fewer than two steps).
    fn means(&self) -> Option<RankMeans> {
        let rest = self.steps.get(1..).filter(|r| !r.is_empty())?;
        let n = rest.len() as f64;
        let mean =
            |f: &dyn Fn(&(f64, StepPhases, AllReduceTimes)) -> f64| rest.iter().map(f).sum::<f64>() / n;
        Some(RankMeans {
            step: mean(&|s| s.0),
            data: mean(&|s| s.1.data),
            nodes: mean(&|s| s.1.step),
            exposed: mean(&|s| s.2.exposed()),
            metrics_sum: mean(&|s| s.1.metrics_sum),
        })
    }

    /// Every rank's means, on every rank: one small sum across the ranks, to which each rank
    /// gives its own row. Every rank calls it at the same point (after training).
    fn gather(&self, world: &dyn Collective) -> Vec<RankMeans> {
        let mut rows = vec![0.0; RankMeans::FIELDS * world.size()];
        if let Some(m) = self.means() {
            let at = RankMeans::FIELDS * world.rank();
            rows[at..at + RankMeans::FIELDS].copy_from_slice(&m.to_array());
        }
        if world.size() > 1 {
            world.all_reduce_sum_f64(&mut rows);
        }
        rows.chunks(RankMeans::FIELDS).map(RankMeans::from_slice).collect()
    }

    /// The run's last lines about time: the step time, the all-reduce's, and where the steps
    /// after the first went on each rank (`ranks`, from [`StepTimes::gather`]).
    fn summary(&self, ranks: &[RankMeans]) -> Vec<String> {
        let Some((first, rest)) = self.steps.split_first() else { return Vec::new() };
        let mut line = format!("step time: first {:.3}s", first.0);
        if rest.is_empty() {
            return vec![line];
        }
        let n = rest.len() as f64;
        let (min, max) = rest.iter().fold((f64::MAX, 0.0f64), |(a, b), s| (a.min(s.0), b.max(s.0)));
        line += &format!(
            ", then {:.3}s per step over {} steps (min {min:.3}s, max {max:.3}s)",
            rest.iter().map(|s| s.0).sum::<f64>() / n,
            rest.len()
        );
        if rest.iter().any(|s| s.2.steps > 0) {
            let ms = |f: &dyn Fn(&AllReduceTimes) -> f64| 1e3 * rest.iter().map(|s| f(&s.2)).sum::<f64>() / n;
            line += &format!(
                "; gradient all-reduce after the first step: {:.1} ms exposed of {:.1} ms in flight per step ({:.1} starting, {:.1} letting the engine advance between nodes, {:.1} waiting, {:.1} averaging)",
                ms(&|t| t.exposed()),
                ms(&|t| t.span),
                ms(&|t| t.starting),
                ms(&|t| t.testing),
                ms(&|t| t.waiting),
                ms(&|t| t.averaging),
            );
        }
        let mut lines = vec![line];
        let where_went = |m: &RankMeans| {
            let mut text = format!("{:.3}s in the plan's nodes", m.nodes);
            if ranks.len() > 1 {
                text += &format!(
                    " ({:.3}s of them the gradient all-reduce's exposed time), {:.3}s at the metrics' sum (waiting for the slowest rank)",
                    m.exposed, m.metrics_sum
                );
            }
            text += &format!(
                ", {:.3}s waiting for data, {:.3}s the loop's own",
                m.data,
                (m.step - m.data - m.nodes - m.metrics_sum).max(0.0)
            );
            text
        };
        match ranks {
            [one] => lines.push(format!("  of each step after the first: {}", where_went(one))),
            _ => {
                lines.push("  of each step after the first, per rank:".into());
                for (r, m) in ranks.iter().enumerate() {
                    lines.push(format!("  rank {r}: {:.3}s step: {}", m.step, where_went(m)));
                }
            }
        }
        lines
    }
}

impl Shown {
    fn event(&mut self, event: &Event<'_>, epochs: usize) {
        match *event {
            Event::Step { epoch, step, steps, loss, running, images_per_second, .. } => {
                self.times.record(event);
                let msg = format!(
                    "loss {loss:.4} | top-1 {:.1}% top-5 {:.1}% | {images_per_second:.0} img/s",
                    100.0 * running.top1,
                    100.0 * running.top5
                );
                if is_terminal() {
                    let template = format!(
                        "epoch {}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} eta {{eta}}",
                        epoch + 1
                    );
                    let pb = self.bar.get_or_insert_with(|| bar(steps as u64, &template));
                    pb.set_position(step as u64 + 1);
                    pb.set_message(msg);
                } else if self.last_line.elapsed() > Duration::from_secs(5) || step + 1 == steps {
                    self.last_line = Instant::now();
                    eprintln!("  epoch {}/{epochs} step {}/{steps}: {msg}", epoch + 1, step + 1);
                }
            }
            Event::Skipped { error, .. } => {
                self.skipped += 1;
                if self.skipped <= 5 {
                    eprintln!("skipped an unreadable image: {error}");
                } else if self.skipped == 6 {
                    eprintln!("(further unreadable images are counted, not listed)");
                }
            }
            Event::Evaluating { .. } => self.finish(),
            Event::Epoch(_) | Event::Checkpoint { .. } => {}
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
