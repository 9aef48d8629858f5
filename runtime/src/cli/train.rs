//! `alexrt train`: flags, then the library's [`Session`] and training loop, with a progress bar
//! (or a line every few seconds when stderr is not a terminal) and a line per epoch.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use alexc::plan::Plan;
use alexc::report::human_bytes;
use alexrt::data::DataSource;
use alexrt::distributed::{self, Collective};
use alexrt::exec::AllReduceTimes;
use alexrt::kernels::KernelBackend;
use alexrt::session::{Session, TrainRequest};
use alexrt::train::{train, Event};
use alexrt::{weights, RunError};
use indicatif::ProgressBar;

use super::{bar, is_terminal, DeviceArg};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// A training plan from `alexc compile`.
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// An ImageNet-layout folder: DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG.
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
    #[arg(long)]
    epochs: Option<NonZeroUsize>,
    /// At most this many steps per epoch.
    #[arg(long)]
    steps_per_epoch: Option<NonZeroUsize>,
    /// Also write a checkpoint every N steps (one is always written after each epoch).
    #[arg(long)]
    checkpoint_every: Option<NonZeroUsize>,
    /// Decoding threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Synthetic training images (without --data).
    #[arg(long, default_value = "2048")]
    train_images: NonZeroUsize,
    /// Synthetic validation images (without --data).
    #[arg(long, default_value = "512")]
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
            workers: self.workers,
        }
    }
}

pub fn run<B: KernelBackend>(args: TrainArgs, devices: Vec<B::Device>) -> Result<(), RunError> {
    let world = distributed::connect()?;
    if world.size() == 1 {
        return run_in::<B>(args, devices, world);
    }
    // One replica of a data-parallel run: its share of the machine's cores, and an error on any
    // rank ends every rank (rather than leave them waiting in a collective).
    let threads = distributed::threads_per_rank(&*world);
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let rank = world.rank();
    if let Err(e) = run_in::<B>(args, devices, std::sync::Arc::clone(&world)) {
        distributed::say_from_rank(rank, &format!("{e}\nending every rank of the run"));
        world.abort(if matches!(e, RunError::Internal(_)) { 1 } else { 2 });
    }
    Ok(())
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
        // The other ranks train in step with rank 0 and write nothing.
        train(&mut exec, &*datasets.train, &*datasets.val, &config, progress, |_| {})?;
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
    let started = Instant::now();
    let mut shown = Shown::default();
    let mut records = progress.records.clone();
    let arena = human_bytes(plan.memory.arena_bytes);
    let (train_set, val_set) = (&*datasets.train, &*datasets.val);
    let result = train(&mut exec, train_set, val_set, &config, progress, |event| match event {
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
                if r.skipped > 0 { format!(", {} unreadable images skipped", r.skipped) } else { String::new() }
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
    });
    shown.finish();
    let progress = result.inspect_err(|e| {
        if matches!(e, RunError::NonFinite { .. }) && dir.checkpoint().exists() {
            eprintln!("the last good checkpoint is {}", dir.checkpoint().display());
        }
    })?;
    if let Some(last) = progress.records.last() {
        let best = progress.records.iter().map(|r| r.val.top1).fold(0.0, f64::max);
        alexrt::say(&format!(
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
    if let Some(line) = shown.times.summary() {
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

/// Each training step's seconds and all-reduce times, for the run's last line: the first step
/// (which warms up the allocator and the caches) apart from the others.
#[derive(Default)]
struct StepTimes {
    steps: Vec<(f64, AllReduceTimes)>,
}

impl StepTimes {
    fn summary(&self) -> Option<String> {
        let (first, rest) = self.steps.split_first()?;
        let mut line = format!("step time: first {:.3}s", first.0);
        if !rest.is_empty() {
            let n = rest.len() as f64;
            let seconds: Vec<f64> = rest.iter().map(|s| s.0).collect();
            let (min, max) = seconds.iter().fold((f64::MAX, 0.0f64), |(a, b), &s| (a.min(s), b.max(s)));
            line += &format!(
                ", then {:.3}s per step over {} steps (min {min:.3}s, max {max:.3}s)",
                seconds.iter().sum::<f64>() / n,
                rest.len()
            );
            let exposed: f64 = rest.iter().map(|s| s.1.exposed).sum();
            let span: f64 = rest.iter().map(|s| s.1.span).sum();
            if rest.iter().any(|s| s.1.steps > 0) {
                line += &format!(
                    "; gradient all-reduce after the first step: {:.1} ms exposed of {:.1} ms in flight per step",
                    1e3 * exposed / n,
                    1e3 * span / n
                );
            }
        }
        Some(line)
    }
}

impl Shown {
    fn event(&mut self, event: &Event<'_>, epochs: usize) {
        match *event {
            Event::Step { epoch, step, steps, loss, running, images_per_second, seconds, all_reduce } => {
                self.times.steps.push((seconds, all_reduce));
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
