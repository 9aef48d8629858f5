//! `alexrt`: the runtime's command line.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use alexc::plan::Plan;
use alexc::report::human_bytes;
use alexrt::check::{check_kernels, CheckOptions};
use alexrt::data::augment::Pipeline;
use alexrt::data::stats::{self, Stats};
use alexrt::data::{Dataset, ImageFolder, Loader, Synthetic};
use alexrt::exec::{Batch, Executor};
use alexrt::kernels::KernelBackend;
use alexrt::train::{train, EpochRecord, Event, Progress, Tally, TrainConfig};
use alexrt::{checkpoint, plot, weights, Cpu, RunError, Wgpu};
use burn::backend::wgpu::WgpuDevice;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Parser)]
#[command(name = "alexrt", version, about = "Runs plans compiled by alexc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a plan's network, on an ImageNet-layout folder (--data) or, without one, on the
    /// built-in synthetic dataset (generated, not downloaded).
    Train(TrainArgs),
    /// Top-1 and top-5 accuracy on DIR/val: centre crop, and the paper's ten crops.
    Eval(EvalArgs),
    /// The top-5 classes of each image.
    Infer(InferArgs),
    /// Compute the training set's mean and RGB eigen-decomposition (for `Dataset` mean and PCA
    /// lighting) and store them in DIR/alexrt-stats.json.
    Stats(StatsArgs),
    /// Print what a plan holds: its step, schedule and memory plan.
    Inspect { plan: PathBuf },
    /// Time a plan's step (and, for a training plan, its forward pass alone) on a synthetic batch.
    Bench(BenchArgs),
    /// Time decoding and augmentation of DIR/train images as training prepares them.
    BenchData(BenchDataArgs),
    /// Check the device's LRN and pooling kernels against the reference CPU kernels, and time
    /// them at conv1's shape next to the device's copy bandwidth (the GPU check script uses it).
    CheckKernels(CheckKernelsArgs),
}

#[derive(clap::Args)]
struct CheckKernelsArgs {
    /// cpu, wgpu, cuda[:N] or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Batch of the timed tensors (96 x 55 x 55 each, as conv1's output).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Leave out the grouped-convolution timings (slow on lavapipe).
    #[arg(long)]
    skip_conv: bool,
}

#[derive(clap::Args)]
struct BenchDataArgs {
    /// The dataset folder; DIR/train is read.
    #[arg(long)]
    data: PathBuf,
    /// The plan whose preprocessing and input size to use.
    #[arg(long)]
    plan: PathBuf,
    /// Images to prepare.
    #[arg(long, default_value_t = 512)]
    images: usize,
    /// Decoding threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// A training plan from `alexc compile`.
    plan: PathBuf,
    /// Where to run: `cpu` (burn Flex), `wgpu` (a Vulkan/Metal/DX12 GPU, or Mesa's lavapipe),
    /// `cuda[:N]`, or `auto` (CUDA where a driver and a GPU exist, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// An ImageNet-layout folder: DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where metrics.jsonl, the plot and checkpoints go (default: runs/<graph>, or the next free
    /// runs/<graph>-N when that holds an earlier run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the checkpoint in --out.
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

#[derive(clap::Args)]
struct EvalArgs {
    plan: PathBuf,
    /// Where to run: `cpu` (burn Flex), `wgpu` (a Vulkan/Metal/DX12 GPU, or Mesa's lavapipe),
    /// `cuda[:N]`, or `auto` (CUDA where a driver and a GPU exist, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// A checkpoint (its class list is used) or weights file (the class list then comes from
    /// DIR/train's folders).
    #[arg(long)]
    weights: PathBuf,
    /// The dataset folder; DIR/val is evaluated.
    #[arg(long)]
    data: PathBuf,
    /// Skip the ten-crop evaluation (ten forward passes per image).
    #[arg(long)]
    center_only: bool,
}

#[derive(clap::Args)]
struct InferArgs {
    plan: PathBuf,
    /// Where to run: `cpu` (burn Flex), `wgpu` (a Vulkan/Metal/DX12 GPU, or Mesa's lavapipe),
    /// `cuda[:N]`, or `auto` (CUDA where a driver and a GPU exist, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// A checkpoint (its class names are printed) or weights file.
    #[arg(long)]
    weights: PathBuf,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct StatsArgs {
    /// The dataset folder; DIR/train is read.
    #[arg(long)]
    data: PathBuf,
    /// The graph whose preprocessing (resize, centre crop) the statistics follow.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Use at most this many images, spread over the set.
    #[arg(long)]
    max_images: Option<NonZeroUsize>,
}

#[derive(clap::Args)]
struct BenchArgs {
    plan: PathBuf,
    /// Where to run: `cpu` (burn Flex), `wgpu` (a Vulkan/Metal/DX12 GPU, or Mesa's lavapipe),
    /// `cuda[:N]`, or `auto` (CUDA where a driver and a GPU exist, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also print the time of each node of the step, slowest first.
    #[arg(long)]
    profile: bool,
    /// Run fused nodes step by step instead of on the fused kernels (to measure what they buy).
    #[arg(long)]
    unfused: bool,
}

/// Runs `$run::<Backend>($args, device)` on the backend `--device` chose.
macro_rules! on_device {
    ($device:expr, $run:ident, $args:expr) => {
        match choose($device) {
            Ok(Chosen::Cpu) => $run::<Cpu>($args, Default::default()),
            Ok(Chosen::Wgpu) => $run::<Wgpu>($args, WgpuDevice::DefaultDevice),
            #[cfg(feature = "cuda")]
            Ok(Chosen::Cuda(i)) => $run::<alexrt::Cuda>($args, cubecl::cuda::CudaDevice::new(i)),
            #[cfg(not(feature = "cuda"))]
            Ok(Chosen::Cuda(_)) => unreachable!("choose() refuses CUDA in builds without it"),
            Err(e) => Err(e),
        }
    };
}

fn main() -> ExitCode {
    alexrt::tune_allocator();
    let result = match Cli::parse().command {
        Command::Inspect { plan } => alexrt::inspect(&plan).map(|t| alexrt::say(&t)).map_err(RunError::from),
        Command::Train(args) => on_device!(&args.device, run_train, args),
        Command::Eval(args) => on_device!(&args.device, run_eval, args),
        Command::Infer(args) => on_device!(&args.device, run_infer, args),
        Command::Stats(args) => run_stats(args),
        Command::Bench(args) => on_device!(&args.device, run_bench, args),
        Command::CheckKernels(args) => on_device!(&args.device.clone(), run_check_kernels, args),
        Command::BenchData(args) => run_bench_data(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(match e {
                RunError::Internal(_) => 1,
                _ => 2,
            })
        }
    }
}

/// The backend a run uses.
enum Chosen {
    Cpu,
    Wgpu,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Cuda(usize),
}

/// Reads `--device`, says which device was chosen, and refuses what this build cannot run.
fn choose(device: &str) -> Result<Chosen, RunError> {
    let vulkan = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
        .iter()
        .any(|d| std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false));
    let cuda = |index: usize| -> Result<Chosen, RunError> {
        if !cfg!(feature = "cuda") {
            return Err(input_error(
                "--device cuda: this alexrt was built without CUDA (cargo feature `cuda`); use --device cpu or --device wgpu",
            ));
        }
        match alexrt::cuda_devices() {
            Ok(n) if index < n => {
                eprintln!("device: cuda:{index} (of {n})");
                Ok(Chosen::Cuda(index))
            }
            Ok(n) => Err(input_error(format!(
                "--device cuda:{index}: there are {n} CUDA devices, numbered from 0"
            ))),
            Err(why) => Err(input_error(format!("--device cuda: {why}; use --device cpu or --device wgpu"))),
        }
    };
    match device {
        "auto" => match (cfg!(feature = "cuda"), alexrt::cuda_devices()) {
            (true, Ok(_)) => cuda(0),
            (true, Err(why)) => {
                eprintln!("device: cpu (burn Flex; {why})");
                Ok(Chosen::Cpu)
            }
            (false, _) => {
                eprintln!("device: cpu (burn Flex; this alexrt has no CUDA support, and --device wgpu uses a Vulkan GPU)");
                Ok(Chosen::Cpu)
            }
        },
        "cpu" => Ok(Chosen::Cpu),
        "wgpu" if vulkan => {
            eprintln!("device: wgpu (our CubeCL kernels for LRN, pooling, the fused epilogues and SGD)");
            Ok(Chosen::Wgpu)
        }
        "wgpu" => Err(input_error(
            "--device wgpu: no Vulkan driver is installed; install one for your GPU, or mesa-vulkan-drivers to run on the CPU through lavapipe",
        )),
        "cuda" => cuda(0),
        d if d.starts_with("cuda:") => match d[5..].parse::<usize>() {
            Ok(i) => cuda(i),
            Err(_) => Err(input_error(format!("--device {d}: write cuda:N with N a device number"))),
        },
        other => Err(input_error(format!("--device {other}: use cpu, wgpu, cuda[:N] or auto"))),
    }
}

fn input_error(msg: impl Into<String>) -> RunError {
    RunError::Input(msg.into())
}

/// A progress bar on a terminal; on anything else, a line every few seconds.
fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
    pb.set_style(ProgressStyle::with_template(template).unwrap().progress_chars("=> "));
    pb
}

fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// A run's training set, validation set, and the training set's statistics (image folders only).
type Datasets = (Box<dyn Dataset>, Box<dyn Dataset>, Option<Stats>);

/// The datasets of a run: an image folder's train and val splits, or the synthetic set.
fn datasets(plan: &Plan, args: &TrainArgs) -> Result<Datasets, RunError> {
    let spec = &plan.graph.spec;
    let shape = input_shape(plan);
    match &args.data {
        None => {
            let seed = spec.training.seed;
            let train = Synthetic::new(shape, spec.classes, args.train_images.get(), seed, "train");
            let val = Synthetic::new(shape, spec.classes, args.val_images.get(), seed, "val");
            Ok((Box::new(train), Box::new(val), None))
        }
        Some(dir) => {
            if !dir.is_dir() {
                return Err(input_error(format!(
                    "{}: no such dataset folder; expected DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG",
                    dir.display()
                )));
            }
            let stats = stats::load(dir).map_err(input_error)?;
            let pipeline =
                Pipeline::from_spec(spec.data.as_ref(), shape, stats.as_ref()).map_err(input_error)?;
            if spec.data.is_none() {
                eprintln!("note: the graph has no `data` section; resizing to the input, flipping, ImageNet mean/std");
            }
            let train = ImageFolder::open(dir, "train", None, pipeline.clone()).map_err(input_error)?;
            let classes = train.class_names();
            if classes.len() != spec.classes {
                return Err(input_error(format!(
                    "{}: {} class folders, but the graph has `classes: {}`; set classes to {} or use a folder with {} classes",
                    dir.join("train").display(),
                    classes.len(),
                    spec.classes,
                    classes.len(),
                    spec.classes
                )));
            }
            let val = ImageFolder::open(dir, "val", Some(&classes), pipeline).map_err(input_error)?;
            for (split, f) in [("train", &train), ("val", &val)] {
                let r = &f.report;
                eprintln!(
                    "{split}: {} images in {} classes{}{}{}",
                    r.images,
                    classes.len(),
                    if r.stray_files > 0 {
                        format!(", {} stray files skipped", r.stray_files)
                    } else {
                        String::new()
                    },
                    if r.empty_classes.is_empty() {
                        String::new()
                    } else {
                        format!(", empty classes: {}", r.empty_classes.join(" "))
                    },
                    if r.unknown_classes.is_empty() {
                        String::new()
                    } else {
                        format!(", unknown classes skipped: {}", r.unknown_classes.join(" "))
                    },
                );
            }
            Ok((Box::new(train), Box::new(val), stats))
        }
    }
}

fn input_shape(plan: &Plan) -> [usize; 3] {
    plan.graph
        .node_indices()
        .into_iter()
        .find_map(|n| match &plan.graph.g[n].op {
            alexc::catalog::Op::Input(i) => Some([i.channels, i.height, i.width]),
            _ => None,
        })
        .expect("a plan has an input")
}

fn write_metrics(out: &Path, records: &[EpochRecord]) -> Result<(), RunError> {
    let text: String =
        records.iter().map(|r| serde_json::to_string(r).expect("serialisable") + "\n").collect();
    let path = out.join("metrics.jsonl");
    alexc::plan::write_atomically(&path, text.as_bytes())
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })
}

fn run_train<B: KernelBackend>(args: TrainArgs, device: B::Device) -> Result<(), RunError> {
    let device_name = format!("{device:?}");
    let plan = Plan::read(&args.plan)?;
    if plan.graph.loss.is_none() {
        return Err(input_error(format!(
            "{}: an inference plan cannot be trained; compile with `--mode train`",
            args.plan.display()
        )));
    }
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<B>::new(&plan, device)?;
    // By default runs/<graph>; a fresh run takes the next free runs/<graph>-N rather than
    // overwrite an earlier run's checkpoint (--resume continues runs/<graph>).
    let out = args.out.clone().unwrap_or_else(|| {
        let base = PathBuf::from("runs").join(&plan.graph.name);
        let taken = |d: &Path| checkpoint::checkpoint_path(d).exists();
        if args.resume || !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| PathBuf::from("runs").join(format!("{}-{n}", plan.graph.name)))
            .find(|d| !taken(d))
            .unwrap()
    });
    let mut progress = Progress::start(&exec);
    let existing = checkpoint::checkpoint_path(&out);
    if !args.resume && existing.exists() {
        return Err(input_error(format!(
            "{} holds the checkpoint of an earlier run; pass --resume to continue it, or choose another --out",
            existing.display()
        )));
    }
    if args.resume && args.weights.is_some() {
        return Err(input_error("--resume continues from the checkpoint's weights; leave out --weights"));
    }
    let mut resumed: Option<checkpoint::Checkpoint> = None;
    if args.resume {
        if !checkpoint::checkpoint_path(&out).exists() {
            return Err(input_error(format!(
                "{}: no checkpoint to resume from; run without --resume, or pass the --out of the run to continue",
                checkpoint::checkpoint_path(&out).display()
            )));
        }
        let (p, meta) = alexrt::train::resume(&mut exec, &out)?;
        eprintln!(
            "resuming from {} at epoch {}, step {} ({} steps done)",
            checkpoint::checkpoint_path(&out).display(),
            p.epoch + 1,
            p.step_in_epoch,
            meta.steps_done
        );
        progress = p;
        if progress.schedule.adopt(&plan.graph.spec.optimizer, &plan.graph.spec.schedule) {
            eprintln!(
                "note: this plan's learning rate or schedule differs from the checkpoint's; continuing with the plan's (rate {:.5} at epoch {})",
                progress.schedule.lr(progress.epoch),
                progress.epoch + 1
            );
        }
        resumed = Some(meta);
    } else if let Some(w) = &args.weights {
        weights::load(&mut exec, w)?;
        eprintln!("loaded weights from {}", w.display());
    }
    let (train_set, val_set, stats) = datasets(&plan, &args)?;
    if let Some(meta) = &resumed {
        // A resumed run must see the same data in the same batches.
        let classes = train_set.class_names();
        if meta.classes != classes || meta.train_images != train_set.len() || meta.batch_size != batch_size {
            return Err(input_error(format!(
                "the checkpoint was trained on {} images of {} classes ({}...) in batches of {}, this run has {} images of {} classes ({}...) in batches of {}; resume with the same --data (or --train-images) and plan",
                meta.train_images,
                meta.classes.len(),
                meta.classes.first().map(String::as_str).unwrap_or(""),
                meta.batch_size,
                train_set.len(),
                classes.len(),
                classes.first().map(String::as_str).unwrap_or(""),
                batch_size
            )));
        }
    }
    let shape = input_shape(&plan);
    let mut loader = Loader::default();
    if let Some(w) = args.workers {
        loader.workers = w.max(1);
    }
    let cfg = TrainConfig {
        epochs: args.epochs.map_or(plan.graph.spec.training.epochs, |e| e.get()),
        max_steps_per_epoch: args.steps_per_epoch.map(|s| s.get()),
        batch_size,
        loader,
        checkpoint_dir: Some(out.clone()),
        checkpoint_every: args.checkpoint_every.map(|n| n.get()),
        stats,
    };
    let classes = plan.graph.spec.classes;
    eprintln!(
        "training `{}` on {}: {} training and {} validation images of {}x{}x{}, {} classes (chance {:.2}%), batch {}, {} epochs; writing to {}",
        plan.graph.name,
        device_name,
        train_set.len(),
        val_set.len(),
        shape[0],
        shape[1],
        shape[2],
        classes,
        100.0 / classes as f64,
        batch_size,
        cfg.epochs,
        out.display()
    );
    std::fs::create_dir_all(&out)
        .map_err(|source| RunError::Io { path: out.display().to_string(), source })?;
    let started = Instant::now();
    let terminal = is_terminal();
    let mut pb: Option<ProgressBar> = None;
    let mut last_line = Instant::now() - Duration::from_secs(60);
    let mut skipped_total = 0usize;
    let title = plan.graph.name.clone();
    let plot_path = out.join("loss.png");
    let mut records = progress.records.clone();
    let result = train(&mut exec, &*train_set, &*val_set, &cfg, progress, |event| match event {
        Event::Step { epoch, step, steps, loss, running, images_per_second } => {
            let msg = format!(
                "loss {loss:.4} | top-1 {:.1}% top-5 {:.1}% | {images_per_second:.0} img/s",
                100.0 * running.top1,
                100.0 * running.top5
            );
            if terminal {
                let bar = pb.get_or_insert_with(|| {
                    bar(
                        steps as u64,
                        &format!(
                            "epoch {}/{} [{{bar:30}}] {{pos}}/{{len}} {{msg}} eta {{eta}}",
                            epoch + 1,
                            cfg.epochs
                        ),
                    )
                });
                bar.set_position(step as u64 + 1);
                bar.set_message(msg);
            } else if last_line.elapsed() > Duration::from_secs(5) || step + 1 == steps {
                last_line = Instant::now();
                eprintln!("  epoch {}/{} step {}/{}: {msg}", epoch + 1, cfg.epochs, step + 1, steps);
            }
        }
        Event::Skipped { error, .. } => {
            skipped_total += 1;
            if skipped_total <= 5 {
                eprintln!("skipped an unreadable image: {error}");
            } else if skipped_total == 6 {
                eprintln!("(further unreadable images are counted, not listed)");
            }
        }
        Event::Evaluating { .. } => {
            if let Some(b) = pb.take() {
                b.finish_and_clear();
            }
        }
        Event::Epoch(r) => {
            eprintln!(
                "epoch {}/{}: lr {:.5}, train loss {:.4} top-1 {:.1}% | val loss {:.4} top-1 {:.1}% top-5 {:.1}% | {:.0} images/s, {:.0}s, peak {} (plan arena {}){}",
                r.epoch,
                cfg.epochs,
                r.lr,
                r.train.loss,
                100.0 * r.train.top1,
                r.val.loss,
                100.0 * r.val.top1,
                100.0 * r.val.top5,
                r.images_per_second,
                r.seconds,
                human_bytes(r.peak_bytes),
                human_bytes(plan.memory.arena_bytes),
                if r.skipped > 0 { format!(", {} unreadable images skipped", r.skipped) } else { String::new() }
            );
            // Metrics and the plot, refreshed after every epoch.
            records.push(r.clone());
            if let Err(e) = write_metrics(&out, &records) {
                eprintln!("{e}");
            }
            if let Err(e) = plot::plot(&records, &title, &plot_path) {
                eprintln!("could not draw {}: {e}", plot_path.display());
            }
        }
        Event::Checkpoint { .. } => {}
    });
    if let Some(b) = pb.take() {
        b.finish_and_clear();
    }
    let progress = match result {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, RunError::NonFinite { .. }) && checkpoint::checkpoint_path(&out).exists() {
                eprintln!("the last good checkpoint is {}", checkpoint::checkpoint_path(&out).display());
            }
            return Err(e);
        }
    };
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
            out.join("metrics.jsonl").display(),
            plot_path.display(),
            checkpoint::checkpoint_path(&out).display()
        ));
    }
    if let Some(path) = &args.save_weights {
        weights::save(&exec, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Loads weights or a checkpoint's parameters; returns the checkpoint's metadata if it is one.
fn load_weights<B: KernelBackend>(
    exec: &mut Executor<B>,
    path: &Path,
) -> Result<Option<checkpoint::Checkpoint>, RunError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RunError::Io { path: p.clone(), source })?;
    weights::load_tensors(exec, &bytes, &p, false)?;
    checkpoint::read_meta(&bytes, &p)
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

fn run_eval<B: KernelBackend>(args: EvalArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let meta = load_weights(&mut exec, &args.weights)?;
    let stats = match stats::load(&args.data).map_err(input_error)? {
        Some(s) => Some(s),
        None => meta.as_ref().and_then(|m| m.stats.clone()),
    };
    let shape = input_shape(&plan);
    let pipeline =
        Pipeline::from_spec(plan.graph.spec.data.as_ref(), shape, stats.as_ref()).map_err(input_error)?;
    // Class indices are sorted folder names: from the checkpoint, else DIR/train, else DIR/val
    // itself (the same order when it holds every class; the count is checked below).
    let classes = match &meta {
        Some(m) => m.classes.clone(),
        None if args.data.join("train").is_dir() => {
            ImageFolder::open(&args.data, "train", None, pipeline.clone()).map_err(input_error)?.class_names()
        }
        None => {
            eprintln!(
                "note: the weights carry no class list and {} has no train/ folder; classes are val/'s folders in sorted order",
                args.data.display()
            );
            ImageFolder::open(&args.data, "val", None, pipeline.clone()).map_err(input_error)?.class_names()
        }
    };
    let k = plan.graph.spec.classes;
    if classes.len() != k {
        return Err(input_error(format!(
            "{}: {} classes, but the graph has `classes: {k}`; evaluate with the dataset the weights were trained on",
            args.data.display(),
            classes.len()
        )));
    }
    let val = ImageFolder::open(&args.data, "val", Some(&classes), pipeline.clone()).map_err(input_error)?;
    let batch = plan.memory.batch_size;
    let indices: Vec<usize> = (0..val.len()).collect();
    let pb = bar(val.len() as u64, "evaluating [{bar:30}] {pos}/{len} {msg}");
    let (mut center, mut ten) = (Tally::default(), Tally::default());
    let mut skipped = 0;
    for chunk in indices.chunks(batch) {
        let (b, failed) = val.batch(chunk, None);
        skipped += failed.len();
        if b.is_empty() {
            continue;
        }
        let out = exec.forward(&b)?;
        center.add(out.loss.unwrap_or(f64::NAN), &out.logits, &b.labels, k);
        if !args.center_only {
            // Ten crops per image, the softmax averaged, a few images per forward pass.
            let ok: Vec<usize> =
                chunk.iter().copied().filter(|i| !failed.iter().any(|(f, _)| f == i)).collect();
            let mut avg = vec![0.0f64; ok.len() * k];
            for (slot, group) in ok.chunks(batch.div_ceil(10).max(1)).enumerate() {
                let mut images = Vec::new();
                for &i in group {
                    let img = val.decode(i).map_err(input_error)?;
                    for crop in pipeline.ten_crops(&img) {
                        images.extend(crop);
                    }
                }
                let labels = vec![0; group.len() * 10];
                let out = exec.forward(Batch { images, labels })?;
                for (g, _) in group.iter().enumerate() {
                    let row = &mut avg[(slot * batch.div_ceil(10).max(1) + g) * k..][..k];
                    for c in 0..10 {
                        for (a, p) in row.iter_mut().zip(softmax(&out.logits[(g * 10 + c) * k..][..k])) {
                            *a += p / 10.0;
                        }
                    }
                }
            }
            let log_avg: Vec<f64> = avg.iter().map(|p| p.max(1e-30).ln()).collect();
            let loss = b.labels.iter().enumerate().map(|(i, &l)| -log_avg[i * k + l as usize]).sum::<f64>()
                / b.len() as f64;
            ten.add(loss, &log_avg, &b.labels, k);
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let c = center.metrics();
    let mut text = format!(
        "{}: {} validation images{}\n  centre crop: top-1 {:.2}%, top-5 {:.2}% (error {:.2}% / {:.2}%)\n",
        args.data.display(),
        c.images,
        if skipped > 0 { format!(" ({skipped} unreadable, skipped)") } else { String::new() },
        100.0 * c.top1,
        100.0 * c.top5,
        100.0 * (1.0 - c.top1),
        100.0 * (1.0 - c.top5)
    );
    if !args.center_only {
        let t = ten.metrics();
        text += &format!(
            "  ten crops:   top-1 {:.2}%, top-5 {:.2}% (error {:.2}% / {:.2}%)\n",
            100.0 * t.top1,
            100.0 * t.top5,
            100.0 * (1.0 - t.top1),
            100.0 * (1.0 - t.top5)
        );
    }
    alexrt::say(&text);
    Ok(())
}

fn run_infer<B: KernelBackend>(args: InferArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let meta = load_weights(&mut exec, &args.weights)?;
    let shape = input_shape(&plan);
    let stats = meta.as_ref().and_then(|m| m.stats.clone());
    let pipeline =
        Pipeline::from_spec(plan.graph.spec.data.as_ref(), shape, stats.as_ref()).map_err(input_error)?;
    let k = plan.graph.spec.classes;
    let names: Vec<String> = match &meta {
        Some(m) if m.classes.len() == k => m.classes.clone(),
        _ => (0..k).map(|c| format!("class {c}")).collect(),
    };
    let mut text = String::new();
    for path in &args.images {
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| input_error(format!("{}: {e}", path.display())))?
            .decode()
            .map_err(|e| input_error(format!("{}: not a readable image ({e})", path.display())))?
            .to_rgb8();
        let out = exec.forward(Batch { images: pipeline.prepare(&img, None), labels: vec![0] })?;
        let probs = softmax(&out.logits[..k]);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
        text += &format!("{}:\n", path.display());
        for &c in order.iter().take(5) {
            text += &format!("  {:6.2}%  {}\n", 100.0 * probs[c], names[c]);
        }
    }
    alexrt::say(&text);
    Ok(())
}

fn run_stats(args: StatsArgs) -> Result<(), RunError> {
    let pipeline = match &args.plan {
        Some(p) => {
            let plan = Plan::read(p)?;
            let shape = input_shape(&plan);
            // The resize and centre crop only; the mean is what is being computed.
            let mut spec = plan.graph.spec.data.clone();
            if let Some(d) = spec.as_mut() {
                d.mean = alexc::ast::MeanDecl::Rgb([0.0; 3]);
                d.lighting = alexc::ast::Lighting::None;
            }
            Pipeline::from_spec(spec.as_ref(), shape, None).map_err(input_error)?
        }
        None => Pipeline::from_spec(None, [3, 256, 256], None).map_err(input_error)?,
    };
    let folder = ImageFolder::open(&args.data, "train", None, pipeline).map_err(input_error)?;
    let n = args.max_images.map_or(folder.len(), |m| m.get().min(folder.len()));
    let pb = bar(n as u64, "statistics [{bar:30}] {pos}/{len} images, eta {eta}");
    let s = stats::compute(&folder, args.max_images.map(|m| m.get()), &|done| pb.set_position(done as u64));
    pb.finish_and_clear();
    if s.images == 0 {
        return Err(input_error(format!(
            "{}: no readable images, so no statistics were written",
            args.data.join("train").display()
        )));
    }
    let path = stats::stats_path(&args.data);
    let text = serde_json::to_string_pretty(&s).expect("serialisable");
    alexc::plan::write_atomically(&path, text.as_bytes())
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })?;
    alexrt::say(&format!(
        "{} images ({} unreadable, skipped): mean RGB {:.2} {:.2} {:.2}; eigenvalues {:.4} {:.4} {:.4}\nwrote {}\n",
        s.images,
        s.skipped,
        s.mean[0],
        s.mean[1],
        s.mean[2],
        s.eigenvalues[0],
        s.eigenvalues[1],
        s.eigenvalues[2],
        path.display()
    ));
    Ok(())
}

/// Median seconds of `steps` runs of `f`, after `warmup` untimed ones.
fn time_median(
    warmup: usize,
    steps: usize,
    mut f: impl FnMut() -> Result<(), RunError>,
) -> Result<f64, RunError> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

fn run_bench<B: KernelBackend>(args: BenchArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<B>::new(&plan, device)?;
    exec.options.fused_kernels = !args.unfused;
    let shape = exec.input_shape();
    let data = Synthetic::new(shape, exec.classes(), batch_size, 0, "bench");
    let (batch, _) = data.batch(&(0..batch_size).collect::<Vec<_>>(), None);
    let training = plan.graph.loss.is_some();
    let step = time_median(args.warmup, args.steps, || exec.step(&batch, 1e-4).map(|_| ()))?;
    let forward = if training {
        Some(time_median(args.warmup, args.steps, || exec.forward(&batch).map(|_| ()))?)
    } else {
        None
    };
    exec.options.profile = args.profile;
    let peak = exec.step(&batch, 1e-4)?.peak_bytes;
    if args.profile {
        let mut rows: Vec<(f64, String)> = exec
            .profile
            .iter()
            .map(|(n, t)| {
                let node = &exec.graph.g[*n];
                (*t, format!("{} = {} {}", node.name, node.op.def().name(), node.op.def().attrs()))
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = rows.iter().map(|r| r.0).sum();
        eprintln!("profile of one step ({:.1} ms in nodes):", total * 1e3);
        for (t, what) in rows {
            eprintln!("  {:8.2} ms {:5.1}%  {what}", t * 1e3, 100.0 * t / total);
        }
    }
    if args.json {
        alexrt::say(&format!(
            "{}\n",
            serde_json::json!({
                "graph": plan.graph.name, "batch": batch_size, "threads": rayon::current_num_threads(),
                "step_seconds": step, "forward_seconds": forward,
                "images_per_second": batch_size as f64 / step, "peak_bytes": peak,
                "arena_bytes": plan.memory.arena_bytes, "fused_kernels": !args.unfused,
            })
        ));
    } else {
        alexrt::say(&format!(
            "{} batch {batch_size}: {} step {:.1} ms ({:.1} images/s){}; peak {} (plan arena {})\n",
            plan.graph.name,
            if training { "training" } else { "inference" },
            step * 1e3,
            batch_size as f64 / step,
            forward.map(|f| format!(", forward only {:.1} ms", f * 1e3)).unwrap_or_default(),
            human_bytes(peak),
            human_bytes(plan.memory.arena_bytes)
        ));
    }
    Ok(())
}

fn run_bench_data(args: BenchDataArgs) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let shape = input_shape(&plan);
    let stats = stats::load(&args.data).map_err(input_error)?;
    let pipeline =
        Pipeline::from_spec(plan.graph.spec.data.as_ref(), shape, stats.as_ref()).map_err(input_error)?;
    let folder = ImageFolder::open(&args.data, "train", None, pipeline).map_err(input_error)?;
    let n = args.images.min(folder.len());
    let batches: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(32).map(|c| c.to_vec()).collect();
    let loader = Loader { workers: args.workers.max(1), prefetch: 4 };
    // One untimed pass warms the file cache, then the timed one.
    for timed in [false, true] {
        let started = Instant::now();
        let mut done = 0;
        loader.run(&folder, &batches, Some(1), |l| {
            done += l.batch.len();
            Ok::<(), RunError>(())
        })?;
        if timed {
            let secs = started.elapsed().as_secs_f64();
            let rate = done as f64 / secs;
            if args.json {
                alexrt::say(&format!(
                    "{}\n",
                    serde_json::json!({"images": done, "seconds": secs, "workers": loader.workers,
                        "images_per_second": rate, "per_core": rate / loader.workers as f64})
                ));
            } else {
                alexrt::say(&format!(
                    "{done} images decoded and augmented in {secs:.2}s with {} workers: {rate:.0} images/s, {:.0} per core\n",
                    loader.workers,
                    rate / loader.workers as f64
                ));
            }
        }
    }
    Ok(())
}

fn run_check_kernels<B: KernelBackend>(args: CheckKernelsArgs, device: B::Device) -> Result<(), RunError> {
    let options = CheckOptions { batch: args.batch, steps: args.steps, conv: !args.skip_conv };
    let (report, verdict) = check_kernels::<B>(&options, &device);
    alexrt::say(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
    verdict
}
