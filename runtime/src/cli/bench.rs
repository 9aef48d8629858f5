//! `alexrt bench` (a plan's step time, optionally per node) and `alexrt check-kernels` (the
//! device's kernels against the CPU, timed).

use std::path::PathBuf;
use std::time::Instant;

use alexc::plan::Plan;
use alexc::report::human_bytes;
use alexrt::check::{check_kernels, CheckOptions};
use alexrt::data::{Dataset, Synthetic};
use alexrt::exec::Executor;
use alexrt::kernels::KernelBackend;
use alexrt::RunError;

use super::DeviceArg;

#[derive(clap::Args)]
pub struct BenchArgs {
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
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

#[derive(clap::Args)]
pub struct CheckKernelsArgs {
    #[command(flatten)]
    pub device: DeviceArg,
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

pub fn run_bench<B: KernelBackend>(args: BenchArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<B>::new(&plan, device)?;
    exec.options.fused_kernels = !args.unfused;
    let data = Synthetic::new(exec.input_shape(), exec.classes(), batch_size, 0, "bench");
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
    alexrt::say(&if args.json {
        format!(
            "{}\n",
            serde_json::json!({
                "graph": plan.graph.name, "batch": batch_size, "threads": rayon::current_num_threads(),
                "step_seconds": step, "forward_seconds": forward,
                "images_per_second": batch_size as f64 / step, "peak_bytes": peak,
                "arena_bytes": plan.memory.arena_bytes, "fused_kernels": !args.unfused,
            })
        )
    } else {
        format!(
            "{} batch {batch_size}: {} step {:.1} ms ({:.1} images/s){}; peak {} (plan arena {})\n",
            plan.graph.name,
            if training { "training" } else { "inference" },
            step * 1e3,
            batch_size as f64 / step,
            forward.map(|f| format!(", forward only {:.1} ms", f * 1e3)).unwrap_or_default(),
            human_bytes(peak),
            human_bytes(plan.memory.arena_bytes)
        )
    });
    Ok(())
}

pub fn run_check_kernels<B: KernelBackend>(
    args: CheckKernelsArgs,
    device: B::Device,
) -> Result<(), RunError> {
    let options = CheckOptions { batch: args.batch, steps: args.steps, conv: !args.skip_conv };
    let (report, verdict) = check_kernels::<B>(&options, &device);
    alexrt::say(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
    verdict
}
