//! `alexrt bench` (a plan's step time, optionally per node) and `alexrt check-kernels` (the
//! device's kernels against the CPU, timed).

use std::path::PathBuf;
use std::time::Instant;

use crate::check::{check_kernels, CheckOptions};
use crate::data::{Dataset, Synthetic};
use crate::distributed::{self, Collective};
use crate::exec::{Batch, Executor};
use crate::kernels::KernelBackend;
use crate::RunError;
use alexir::plan::Plan;
use alexir::units::human_bytes;

use super::DeviceArg;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A plan from `alexc compile` (training or inference).
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Timed steps (at least 1).
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
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
    /// Also write one step as a Chrome trace (JSON trace events; open it in Perfetto): a slice per
    /// node with its op, kernel and bytes, a track per device, the gradient buckets in flight.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Run fused nodes step by step instead of on the fused kernels (to measure what they buy).
    #[arg(long)]
    unfused: bool,
    /// For a data-parallel plan under `mpirun`: time --steps pairs of steps, one with the
    /// gradient all-reduce and one without it (each rank then keeps its own gradients),
    /// alternated in one run, and print what the communication adds to a step: the median of
    /// the pairs' ratios. The machine's drift over minutes then falls on both alike.
    #[arg(long)]
    ab_all_reduce: bool,
}

#[derive(clap::Args)]
pub struct CheckKernelsArgs {
    #[command(flatten)]
    pub device: DeviceArg,
    /// Batch of the timed tensors (96 x 55 x 55 each, as conv1's output).
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    batch: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    steps: usize,
    /// Leave out the grouped-convolution timings (slow on lavapipe).
    #[arg(long)]
    skip_conv: bool,
}

/// A count flag (`--steps`, `--batch`) of 1 or more, as a plain number.
fn at_least_one(text: &str) -> Result<usize, String> {
    super::one_or_more(text).map(std::num::NonZeroUsize::get)
}

/// Median seconds of `steps` runs of `f` (at least one: `--steps` refuses 0), after `warmup`
/// untimed ones.
fn time_median(
    warmup: usize,
    steps: usize,
    mut f: impl FnMut() -> Result<(), RunError>,
) -> Result<f64, RunError> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

pub fn run_bench<B: KernelBackend>(args: BenchArgs, devices: Vec<B::Device>) -> Result<(), RunError> {
    super::as_rank(distributed::connect()?, |world| bench_in::<B>(args, devices, world))
}

fn bench_in<B: KernelBackend>(
    args: BenchArgs,
    devices: Vec<B::Device>,
    world: std::sync::Arc<dyn Collective>,
) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let training = plan.graph.loss.is_some();
    if args.ab_all_reduce && (args.profile || args.trace.is_some()) {
        return Err(RunError::Input(
            "--profile and --trace time one step node by node, --ab-all-reduce pairs of whole steps: run them separately".into(),
        ));
    }
    if args.ab_all_reduce && (plan.replicas < 2 || !training) {
        return Err(RunError::Input(format!(
            "{}: --ab-all-reduce times the gradient all-reduce of a data-parallel training plan; compile one with `alexc compile GRAPH --replicas 2` and run it under `mpirun -np 2`",
            args.plan.display()
        )));
    }
    let batch_size = plan.memory.batch_size;
    let mut exec = Executor::<B>::new_on(&plan, devices)?;
    exec.join(std::sync::Arc::clone(&world))?;
    exec.options.fused_kernels = !args.unfused;
    let data = Synthetic::new(exec.input_shape(), exec.classes(), batch_size, 0, "bench");
    let (batch, _) = data.batch(&(0..batch_size).collect::<Vec<_>>(), None);
    let rank0 = world.rank() == 0;
    let replicas =
        if plan.replicas > 1 { format!(" per replica x {} replicas", plan.replicas) } else { String::new() };
    if args.ab_all_reduce {
        let ab = time_with_and_without_all_reduce(&mut exec, &batch, args.warmup, args.steps)?;
        if rank0 {
            let ratio = ab.median_ratio();
            crate::say(&if args.json {
                json_line(
                    &plan,
                    serde_json::json!({
                        "pairs": ab.pairs.iter().map(|(w, wo)| serde_json::json!({"with_all_reduce": w, "without": wo})).collect::<Vec<_>>(),
                        "all_reduce_adds_median": ratio - 1.0,
                        "all_reduce_exposed_seconds": ab.exposed,
                    }),
                )
            } else {
                format!(
                    "{} batch {batch_size}{replicas}: the gradient all-reduce adds {:+.1}% to a training step (median of {} pairs of steps with and without it, alternated in one run; means {:.1} ms with, {:.1} ms without; {:.1} ms exposed per step on rank 0)\n  pairs (with / without, ms, the mean over the ranks): {}\n",
                    plan.graph.name,
                    100.0 * (ratio - 1.0),
                    ab.pairs.len(),
                    ab.mean(|p| p.0) * 1e3,
                    ab.mean(|p| p.1) * 1e3,
                    ab.exposed * 1e3,
                    ab.pairs.iter().map(|(w, wo)| format!("{:.0}/{:.0}", w * 1e3, wo * 1e3)).collect::<Vec<_>>().join(" ")
                )
            });
        }
        return Ok(());
    }
    let step = time_median(args.warmup, args.steps, || exec.step(&batch, 1e-4).map(|_| ()))?;
    let forward = if training {
        Some(time_median(args.warmup, args.steps, || exec.forward(&batch).map(|_| ()))?)
    } else {
        None
    };
    exec.options.profile = args.profile || args.trace.is_some();
    exec.timeline = Default::default();
    let peak = exec.step(&batch, 1e-4)?.peak_bytes;
    if !rank0 {
        return Ok(());
    }
    if let Some(path) = &args.trace {
        crate::trace::write(path, &crate::trace::chrome_trace(&exec.graph, batch_size, &exec.timeline, 0))?;
        eprintln!(
            "wrote {} (one step, {} nodes; open it in Perfetto)",
            path.display(),
            exec.timeline.nodes.len()
        );
    }
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
    crate::say(&if args.json {
        json_line(
            &plan,
            serde_json::json!({
                "step_seconds": step, "forward_seconds": forward,
                "images_per_second": batch_size as f64 / step, "peak_bytes": peak,
                "arena_bytes": plan.memory.arena_bytes, "fused_kernels": !args.unfused,
            }),
        )
    } else {
        format!(
            "{} batch {batch_size}{replicas}: {} step {:.1} ms ({:.1} images/s){}; peak {} (plan arena {})\n",
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

/// One line of JSON: what was timed (graph, batch, replicas, threads), then `fields`.
fn json_line(plan: &Plan, fields: serde_json::Value) -> String {
    let mut line = serde_json::json!({
        "graph": plan.graph.name, "batch": plan.memory.batch_size, "replicas": plan.replicas,
        "threads": rayon::current_num_threads(),
    });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    format!("{line}\n")
}

/// Steps with and without the gradient all-reduce, timed in pairs.
struct WithAndWithout {
    /// Each pair's seconds (with, without), the mean over the ranks of each rank's own.
    pairs: Vec<(f64, f64)>,
    /// Rank 0's exposed all-reduce seconds per step with it.
    exposed: f64,
}

impl WithAndWithout {
    /// The median over the pairs of with / without.
    fn median_ratio(&self) -> f64 {
        let mut r: Vec<f64> = self.pairs.iter().map(|(w, wo)| w / wo).collect();
        r.sort_by(|a, b| a.total_cmp(b));
        match r.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }

    fn mean(&self, f: impl Fn(&(f64, f64)) -> f64) -> f64 {
        self.pairs.iter().map(f).sum::<f64>() / self.pairs.len().max(1) as f64
    }
}

/// Times `steps` pairs of steps (at least one), one with the gradient all-reduce and one without, after
/// `warmup` steps with it; the order within a pair flips from pair to pair. Every step starts
/// with the ranks aligned (a one-value sum), so that a step without the all-reduce is the
/// rank's own computation, and one with it adds what the all-reduce costs: the host copies, the
/// MPI calls, and waiting for the other ranks. Every rank calls this, as every collective.
fn time_with_and_without_all_reduce<B: KernelBackend>(
    exec: &mut Executor<B>,
    batch: &Batch,
    warmup: usize,
    steps: usize,
) -> Result<WithAndWithout, RunError> {
    let world = exec.shared_world();
    for _ in 0..warmup {
        exec.step(batch, 1e-4)?;
    }
    // [with, without] seconds of each pair, this rank's.
    let mut seconds = vec![0.0; 2 * steps];
    let all_reduce_before = exec.all_reduce;
    for pair in 0..steps {
        for on in if pair % 2 == 0 { [true, false] } else { [false, true] } {
            world.all_reduce_sum_f64(&mut [0.0]);
            exec.options.all_reduce = on;
            let t = Instant::now();
            exec.step(batch, 1e-4)?;
            seconds[2 * pair + usize::from(!on)] = t.elapsed().as_secs_f64();
        }
    }
    exec.options.all_reduce = true;
    let exposed = exec.all_reduce.since(&all_reduce_before).exposed() / steps as f64;
    world.all_reduce_sum_f64(&mut seconds);
    let ranks = world.size() as f64;
    let pairs = seconds.chunks(2).map(|p| (p[0] / ranks, p[1] / ranks)).collect();
    Ok(WithAndWithout { pairs, exposed })
}

pub fn run_check_kernels<B: KernelBackend>(
    args: CheckKernelsArgs,
    device: B::Device,
) -> Result<(), RunError> {
    let options = CheckOptions { batch: args.batch, steps: args.steps, conv: !args.skip_conv };
    let (report, verdict) = check_kernels::<B>(&options, &device);
    crate::say(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
    verdict
}
