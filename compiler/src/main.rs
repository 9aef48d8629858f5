//! `alexc`: the compiler's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alexc::diag::Diagnostics;
use alexc::ir::Mode;
use alexc::onnx::InterchangeError;
use alexc::passes::{ConvAlgoChoice, PassName};
use alexc::plan::{write_atomically, Plan};
use alexc::report::{build_report, human_bytes, memory_table, mode_name, replicas_note, summary_table};
use alexc::{front_end, ir, lower, lower_with, max_batch, say, Checked, Lowering};
use clap::{Parser, Subcommand};
use cli::flags::{parse_batch, parse_conv_algo, parse_fixed_batch, parse_pass, parse_precision};
use cli::flags::{BatchSize, DumpChoice, Emit, ModeArg, ReportFormat};

/// The command line's parts besides this file (as the runtime's `cli/`).
mod cli {
    pub mod flags;
}

#[derive(Parser)]
#[command(name = "alexc", version, about = "Compiles RON graph files into training and inference plans")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a graph file into a plan (plan.bin by default).
    Compile(CompileArgs),
    /// Print the per-layer table of a graph file: shapes, parameters, multiply-adds, memory.
    Summary {
        file: PathBuf,
        /// Batch size for the memory figures (default: the graph file's).
        #[arg(long, value_parser = parse_fixed_batch)]
        batch_size: Option<usize>,
    },
    /// Print a plan file back as the IR text the dumps use, with its memory table.
    Inspect {
        /// The plan file, e.g. plan.bin.
        plan: PathBuf,
    },
    /// Write a graph's inference network and its weights as one ONNX model (opset 17), with the
    /// preprocessing and class names in its metadata (docs/interchange.md).
    Export {
        /// The graph file or plan, e.g. graphs/alexnet.ron or plan.bin (fused nodes are written
        /// back as their parts).
        graph: PathBuf,
        /// The weights: safetensors with the graph's parameter names (`alexrt train
        /// --save-weights`, or a run's checkpoint, whose class names go along).
        #[arg(long)]
        weights: PathBuf,
        /// For a graph whose mean is the dataset's (`mean: Dataset`) when the weights do not carry
        /// it: the alexrt-stats.json that `alexrt stats` wrote.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// The ONNX file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Read an ONNX model (alexc's export, torchvision's AlexNet from torch.onnx.export) into a
    /// graph file, and its weights into safetensors with the graph's parameter names.
    Import {
        /// The .onnx file (external data, if any, beside it).
        model: PathBuf,
        /// The graph file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the weights here (safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct CompileArgs {
    /// The graph file, e.g. graphs/alexnet.ron.
    file: PathBuf,
    /// Where to write the output (default plan.bin, or GRAPH.dot with --emit dot).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// A training step (forward, backward, update) or inference only.
    #[arg(long, value_enum, default_value_t = ModeArg::Train)]
    mode: ModeArg,
    /// Batch size: a number, or `max` for the largest that fits in --memory-limit.
    #[arg(long, value_parser = parse_batch)]
    batch_size: Option<BatchSize>,
    /// Fail unless the step fits in this much device memory, e.g. 24GiB or 512MiB.
    #[arg(long, value_parser = alexc::units::parse_bytes)]
    memory_limit: Option<u64>,
    /// Print the IR after this pass (repeatable; `all` for every pass).
    #[arg(long, value_parser = parse_pass)]
    dump_after: Vec<DumpChoice>,
    /// Split each grouped convolution (and its gradients) into one convolution per group: a
    /// lowering for devices where that is faster (`alexrt check-kernels` measures it).
    #[arg(long)]
    split_grouped_conv: bool,
    /// Each convolution's algorithm: `auto` (by shape), or one of im2col-gemm, winograd, burn for
    /// every node it can compute (the others keep the by-shape choice, with a warning).
    #[arg(long, value_parser = parse_conv_algo, default_value = "auto")]
    conv_algo: ConvAlgoChoice,
    /// The type the step computes in: f32, bf16 (f32 master weights, momentum, loss and update),
    /// or f16 (the same, with dynamic loss scaling); overrides the graph file's `precision:` (f32
    /// when it has none).
    #[arg(long, value_parser = parse_precision)]
    precision: Option<alexc::ir::Precision>,
    /// Place the step on this many devices: 2 splits it into the paper's two towers, one per
    /// device, with explicit transfers between them (implies the grouped convolutions split).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    devices: u8,
    /// Data parallel: a training step for N processes (`mpirun -np N alexrt train`), each on its
    /// own batch of --batch-size, with the gradients averaged across them (all-reduce).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u16).range(1..))]
    replicas: u16,
    /// The most gradient MiB in one all-reduce bucket (with --replicas).
    #[arg(long, default_value = "25", value_parser = clap::value_parser!(u32).range(1..))]
    bucket_mib: u32,
    /// What to write: the plan, or the final graph as Graphviz.
    #[arg(long, value_enum, default_value_t = Emit::Plan)]
    emit: Emit,
    /// Print a report to stdout.
    #[arg(long, value_enum)]
    report: Option<ReportFormat>,
}

/// A failure at the edge of the program: its message and exit status.
struct Failure(String, u8);

impl From<InterchangeError> for Failure {
    fn from(e: InterchangeError) -> Self {
        match e {
            InterchangeError::Graph(d) => Failure::from(d),
            InterchangeError::Onnx(e) => Failure(e.to_string(), if e.internal { 1 } else { 2 }),
        }
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        // Bad input exits with 2; a compiler bug (the verifier's finding) with 1.
        Failure(d.to_string(), if d.has_internal() { 1 } else { 2 })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => compile(args),
        Command::Summary { file, batch_size } => summary(&file, batch_size),
        Command::Inspect { plan } => inspect(&plan),
        Command::Export { graph, weights, stats, output } => {
            export(&graph, &weights, stats.as_deref(), &output)
        }
        Command::Import { model, output, weights } => import(&model, &output, weights.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

fn print_warnings(checked: &Checked) {
    for w in checked.warnings.warnings() {
        eprintln!("{w}");
    }
}

fn compile(args: CompileArgs) -> Result<(), Failure> {
    let mode = Mode::from(args.mode);
    let passes: Vec<PassName> = if args.dump_after.iter().any(|d| matches!(d, DumpChoice::All)) {
        PassName::all().to_vec()
    } else {
        args.dump_after
            .iter()
            .filter_map(|d| if let DumpChoice::One(p) = d { Some(*p) } else { None })
            .collect()
    };
    let mut dump = |pass: PassName, graph: &ir::Graph, memory: Option<&alexc::passes::MemoryPlan>| {
        if passes.contains(&pass) {
            say(&ir::print_graph(graph, pass.as_str()));
            if let Some(m) = memory {
                say(&memory_table(m));
            }
        }
    };
    let checked = front_end(&args.file, &mut dump)?;
    print_warnings(&checked);

    let data_parallel = (args.replicas > 1).then(|| alexc::passes::DataParallel {
        replicas: usize::from(args.replicas),
        bucket_bytes: (args.bucket_mib as usize) << 20,
    });
    let lowering = Lowering {
        split_grouped_conv: args.split_grouped_conv,
        conv_algo: args.conv_algo,
        devices: args.devices,
        data_parallel,
        precision: args.precision,
    };
    let batch = match (args.batch_size, args.memory_limit) {
        (Some(BatchSize::Max), None) => {
            return Err(Failure("--batch-size max needs --memory-limit, e.g. --memory-limit 24GiB".into(), 2))
        }
        (Some(BatchSize::Max), Some(limit)) => match max_batch(&checked, mode, &lowering, limit)? {
            Some(b) => {
                eprintln!(
                    "--batch-size max: {b} is the largest batch that fits in {}",
                    human_bytes(limit as usize)
                );
                b
            }
            None => {
                return Err(Failure(
                    format!(
                        "not even a batch of 1 fits in {}: raise --memory-limit",
                        human_bytes(limit as usize)
                    ),
                    2,
                ))
            }
        },
        (Some(BatchSize::Fixed(b)), _) => b,
        (None, _) => checked.graph.spec.training.batch_size,
    };
    let lowered = lower_with(&checked, mode, batch, &lowering, &mut dump)?;
    for w in lowered.warnings.warnings() {
        eprintln!("{w}");
    }
    if let Some(limit) = args.memory_limit {
        let need = lowered.device_bytes() as u64;
        if need > limit {
            let fits = max_batch(&checked, mode, &lowering, limit)?;
            let hint = match fits {
                Some(b) => format!("a batch of at most {b} fits; pass --batch-size {b} or --batch-size max"),
                None => "not even a batch of 1 fits; raise --memory-limit".into(),
            };
            return Err(Failure(
                format!(
                    "{}: the {} step at batch {batch} needs {} (arena {} + parameters and state {}), over the {} limit; {hint}",
                    checked.file,
                    mode_name(mode),
                    human_bytes(need as usize),
                    human_bytes(lowered.fullest_device().arena_bytes),
                    human_bytes(lowered.fullest_device().persistent_bytes),
                    human_bytes(limit as usize),
                ),
                2,
            ));
        }
    }

    if let Some(format) = args.report {
        let other = if mode == Mode::Train { Mode::Infer } else { Mode::Train };
        let other_lowered = lower_with(&checked, other, batch, &lowering, &mut |_, _, _| {})?;
        let (train, infer) =
            if mode == Mode::Train { (&lowered, &other_lowered) } else { (&other_lowered, &lowered) };
        let report = build_report(&checked, train, infer);
        match format {
            ReportFormat::Json => {
                say(&format!("{}\n", serde_json::to_string_pretty(&report).expect("report serialises")))
            }
            ReportFormat::Text => say(&summary_table(&report)),
        }
    }

    match args.emit {
        Emit::Plan => {
            let out = args.output.unwrap_or_else(|| PathBuf::from("plan.bin"));
            let plan = lowered.into_plan(mode, &checked.file);
            plan.write(&out).map_err(|e| Failure(e.to_string(), 1))?;
            eprintln!(
                "wrote {} ({} step, batch {batch}{}, arena {}, {} nodes after fusion)",
                out.display(),
                mode_name(mode),
                replicas_note(plan.replicas, batch),
                human_bytes(plan.memory.arena_bytes),
                plan.nodes_after_fusion
            );
        }
        Emit::Dot => {
            let out = args.output.unwrap_or_else(|| PathBuf::from(format!("{}.dot", checked.graph.name)));
            write_atomically(&out, ir::to_dot(&lowered.graph).as_bytes())
                .map_err(|e| Failure(format!("{}: cannot write: {e}", out.display()), 1))?;
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn summary(file: &Path, batch: Option<usize>) -> Result<(), Failure> {
    let checked = front_end(file, &mut |_, _, _| {})?;
    let batch = batch.unwrap_or(checked.graph.spec.training.batch_size);
    let train = lower(&checked, Mode::Train, batch, &mut |_, _, _| {})?;
    let infer = lower(&checked, Mode::Infer, batch, &mut |_, _, _| {})?;
    say(&summary_table(&build_report(&checked, &train, &infer)));
    Ok(())
}

fn inspect(path: &Path) -> Result<(), Failure> {
    let plan = Plan::read(path).map_err(|e| Failure(e.to_string(), 2))?;
    say(&alexc::report::plan_text(&plan, path));
    Ok(())
}

fn export(graph: &Path, weights: &Path, stats: Option<&Path>, output: &Path) -> Result<(), Failure> {
    let e = alexc::onnx::export_file(graph, weights, stats, output)?;
    eprintln!(
        "wrote {} (`{}`: {} ONNX nodes, {} initializers, {})",
        output.display(),
        e.graph,
        e.nodes,
        e.initializers,
        human_bytes(e.bytes)
    );
    Ok(())
}

fn import(model: &Path, output: &Path, weights: Option<&Path>) -> Result<(), Failure> {
    let s = alexc::onnx::import_file(model, output, weights)?;
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    let also =
        weights.map(|w| format!(" and {} ({} parameters)", w.display(), s.parameters)).unwrap_or_default();
    eprintln!("wrote {}{also} (`{}`: {} layers)", output.display(), s.graph, s.layers);
    Ok(())
}
