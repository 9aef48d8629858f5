//! `alexrt`: the runtime's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use alexc::plan::Plan;
use alexc::report::human_bytes;
use alexrt::data::Synthetic;
use alexrt::exec::Executor;
use alexrt::train::{train, Event, TrainConfig};
use alexrt::{weights, Cpu, RunError};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "alexrt", version, about = "Runs plans compiled by alexc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a plan's network. Without a dataset, on the built-in synthetic one (generated, not
    /// downloaded): each class a pattern of coloured gratings, each image a shifted noisy copy.
    Train(TrainArgs),
    /// Print what a plan holds: its step, schedule and memory plan.
    Inspect { plan: PathBuf },
    /// Time a plan's step (and, for a training plan, its forward pass alone) on a synthetic batch.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    plan: PathBuf,
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
}

#[derive(clap::Args)]
struct TrainArgs {
    /// A training plan from `alexc compile`.
    plan: PathBuf,
    /// Epochs to train (default: the graph file's).
    #[arg(long)]
    epochs: Option<usize>,
    /// At most this many steps per epoch.
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    /// Synthetic training images.
    #[arg(long, default_value_t = 2048)]
    train_images: usize,
    /// Synthetic validation images.
    #[arg(long, default_value_t = 512)]
    val_images: usize,
    /// Start from these weights (safetensors, PyTorch names and layouts).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Write the trained weights here (safetensors).
    #[arg(long)]
    save_weights: Option<PathBuf>,
}

fn main() -> ExitCode {
    alexrt::tune_allocator();
    let result = match Cli::parse().command {
        Command::Inspect { plan } => alexrt::inspect(&plan).map(|t| alexrt::say(&t)).map_err(RunError::from),
        Command::Train(args) => run_train(args),
        Command::Bench(args) => run_bench(args),
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

fn run_train(args: TrainArgs) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    if plan.graph.loss.is_none() {
        return Err(RunError::Input(format!(
            "{}: an inference plan cannot be trained; compile with `--mode train`",
            args.plan.display()
        )));
    }
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<Cpu>::new(&plan, Default::default())?;
    if let Some(w) = &args.weights {
        weights::load(&mut exec, w)?;
        eprintln!("loaded weights from {}", w.display());
    }
    let shape = exec.input_shape();
    let seed = plan.graph.spec.training.seed;
    let classes = exec.classes();
    let train_set = Synthetic::new(shape, classes, args.train_images, seed, "train");
    let val_set = Synthetic::new(shape, classes, args.val_images, seed, "val");
    let cfg = TrainConfig {
        epochs: args.epochs.unwrap_or(plan.graph.spec.training.epochs),
        max_steps_per_epoch: args.steps_per_epoch,
        batch_size,
    };
    eprintln!(
        "training `{}` on the CPU (burn Flex): synthetic data, {} training and {} validation images of {}x{}x{}, {} classes (chance {:.1}%), batch {}, {} epochs",
        plan.graph.name,
        args.train_images,
        args.val_images,
        shape[0],
        shape[1],
        shape[2],
        classes,
        100.0 / classes as f64,
        batch_size,
        cfg.epochs
    );
    let started = Instant::now();
    let mut last_print = Instant::now();
    let records = train(&mut exec, &train_set, &val_set, &cfg, |event| {
        match event {
        Event::Step { epoch, step, steps, loss, running, images_per_second } => {
            if last_print.elapsed().as_secs_f64() > 2.0 || step + 1 == steps {
                last_print = Instant::now();
                eprintln!(
                    "  epoch {}/{} step {}/{}: loss {loss:.4}, running top-1 {:.1}%, {images_per_second:.0} images/s",
                    epoch + 1,
                    cfg.epochs,
                    step + 1,
                    steps,
                    100.0 * running.top1
                );
            }
        }
        Event::Epoch(r) => eprintln!(
            "epoch {}/{}: lr {:.4}, train loss {:.4} top-1 {:.1}% | val loss {:.4} top-1 {:.1}% top-5 {:.1}% | {:.0} images/s, peak {} (plan arena {})",
            r.epoch,
            cfg.epochs,
            r.lr,
            r.train.loss,
            100.0 * r.train.top1,
            r.val.loss,
            100.0 * r.val.top1,
            100.0 * r.val.top5,
            r.images_per_second,
            human_bytes(r.peak_bytes),
            human_bytes(plan.memory.arena_bytes)
        ),
    }
    })?;
    if let Some(last) = records.last() {
        alexrt::say(&format!(
            "trained `{}` for {} epochs in {:.1}s: validation top-1 {:.1}% (chance {:.1}%), top-5 {:.1}%, loss {:.4}\n",
            plan.graph.name,
            records.len(),
            started.elapsed().as_secs_f64(),
            100.0 * last.val.top1,
            100.0 / classes as f64,
            100.0 * last.val.top5,
            last.val.loss
        ));
    }
    if let Some(path) = &args.save_weights {
        weights::save(&exec, path)?;
        eprintln!("wrote {}", path.display());
    }
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

fn run_bench(args: BenchArgs) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<Cpu>::new(&plan, Default::default())?;
    let shape = exec.input_shape();
    let data = Synthetic::new(shape, exec.classes(), batch_size, 0, "bench");
    let batch = alexrt::data::Dataset::batch(&data, &(0..batch_size).collect::<Vec<_>>());
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
                "arena_bytes": plan.memory.arena_bytes,
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
