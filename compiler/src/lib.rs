//! alexc: compiles a RON graph file through petgraph passes into a training or inference plan.
//!
//! ```text
//! graphs/*.ron --parse--> AST --build--> IR --validate--> --infer-shapes--> [--towers-->] --autodiff-->
//!   [--place-->] [--split-groups-->] [--all-reduce-->] --conv-algo--> --precision--> --fuse--> --schedule-->
//!   --memory--> plan.bin
//! ```
//! [`front_end`] runs parse to shape inference; [`lower`] runs the rest for one mode and batch size.
//! After every pass the verifier ([`passes::verify_after`]) checks the IR's invariants, and the
//! dump hook sees the IR.

pub mod ast;
pub mod onnx;
pub mod passes;
pub mod report;

// The IR, the catalog and the plan file are shared with the runtime through `alexir`; they are
// re-exported here so that the passes read `crate::ir`, `crate::catalog`, ... as before.
pub use alexir::{catalog, diag, ir, memory, plan, say, spec, units, value};

use std::path::Path;

use diag::Diagnostics;
use ir::{Graph, Mode};
use passes::{FusionStats, MemoryPlan, PassName};

/// A graph that passed the front end: built, validated and typed, with its warnings.
#[derive(Debug, Clone)]
pub struct Checked {
    pub file: String,
    pub graph: Graph,
    pub warnings: Diagnostics,
}

/// Called with the IR after each pass, for `--dump-after`.
pub type DumpHook<'a> = &'a mut dyn FnMut(PassName, &Graph, Option<&MemoryPlan>);

/// Parses, builds, validates and infers shapes. Errors come back all together, located.
pub fn front_end(path: &Path, dump: DumpHook<'_>) -> Result<Checked, Diagnostics> {
    let parsed = ast::parse_file(path).map_err(Diagnostics::from)?;
    front_end_parsed(&parsed, dump)
}

/// [`front_end`] for text already in memory.
pub fn front_end_str(text: &str, file: &str, dump: DumpHook<'_>) -> Result<Checked, Diagnostics> {
    let parsed = ast::parse_str(text, file).map_err(Diagnostics::from)?;
    front_end_parsed(&parsed, dump)
}

fn front_end_parsed(parsed: &ast::ParsedGraph, dump: DumpHook<'_>) -> Result<Checked, Diagnostics> {
    let file = parsed.file.as_str();
    let (mut graph, mut diags) = passes::build(parsed);
    // The verifier follows each pass the input's own errors have not already stopped: a graph
    // file with an unknown input builds a graph with a missing edge, which is the file's fault.
    let mut after = |pass: PassName, graph: &mut Graph, diags: &mut Diagnostics| {
        if !diags.has_errors() {
            graph.renumber();
            diags.extend(passes::verify_after(pass, graph, &[]));
        }
        dump(pass, graph, None);
    };
    after(PassName::Build, &mut graph, &mut diags);
    let validation = passes::validate(&graph);
    diags.extend(validation.diagnostics);
    after(PassName::Validate, &mut graph, &mut diags);
    if validation.cycles.is_empty() {
        diags.extend(passes::infer_shapes(&mut graph));
        after(PassName::InferShapes, &mut graph, &mut diags);
    }
    let diags = diags.in_file(file);
    if diags.has_errors() {
        // Errors only: warnings about a broken graph (unused nodes, say) are noise until it is fixed.
        return Err(Diagnostics(diags.errors().cloned().collect()));
    }
    Ok(Checked { file: file.to_string(), graph, warnings: diags })
}

/// A lowered step: the final graph, its fusion figures and its memory plan.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub graph: Graph,
    pub fusion: FusionStats,
    pub memory: MemoryPlan,
    /// Each device's memory plan, when the step is placed on several ([`Lowering::devices`]);
    /// `memory` is then the step's as one device would hold it.
    pub device_memory: Vec<MemoryPlan>,
    /// What the lowering passes warn about (a forced convolution algorithm that does not apply).
    pub warnings: Diagnostics,
    /// The processes a data-parallel step is compiled for (1: a single process).
    pub replicas: usize,
}

impl Lowered {
    /// The memory plan of the device that needs the most bytes (arena and persistent values):
    /// the step's on one device, the fuller device's when it is placed on several.
    pub fn fullest_device(&self) -> &MemoryPlan {
        self.device_memory.iter().max_by_key(|m| m.total_bytes()).unwrap_or(&self.memory)
    }

    /// The bytes [`Lowered::fullest_device`] needs.
    pub fn device_bytes(&self) -> usize {
        self.fullest_device().total_bytes()
    }

    /// The plan file's contents for this step, compiled from `source` in `mode`.
    pub fn into_plan(self, mode: Mode, source: &str) -> plan::Plan {
        plan::Plan {
            compiler: env!("CARGO_PKG_VERSION").to_string(),
            source: source.to_string(),
            mode,
            nodes_before_fusion: self.fusion.before,
            nodes_after_fusion: self.fusion.after,
            memory: self.memory,
            graph: self.graph,
            device_memory: self.device_memory,
            replicas: self.replicas,
        }
    }
}

/// Compiles graph-file text to a plan in one call (front end and lowering, no dumps).
pub fn compile_str(text: &str, file: &str, mode: Mode, batch: usize) -> Result<plan::Plan, Diagnostics> {
    let checked = front_end_str(text, file, &mut |_, _, _| {})?;
    Ok(lower(&checked, mode, batch, &mut |_, _, _| {})?.into_plan(mode, file))
}

/// Device lowerings that [`lower_with`] can apply; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lowering {
    /// Split each grouped convolution (and its gradients) into one convolution per group, for
    /// devices where that is faster ([`passes::split_grouped_convs`]).
    pub split_grouped_conv: bool,
    /// How each convolution's algorithm is chosen ([`passes::choose_conv_algos`]).
    pub conv_algo: passes::ConvAlgoChoice,
    /// Place the step on this many devices ([`passes::place`]): 2 splits the towers as the
    /// paper did; 0 and 1 leave it on one.
    pub devices: u8,
    /// Average the gradients across replicas of a data-parallel run
    /// ([`passes::insert_gradient_all_reduce`]; training plans only).
    pub data_parallel: Option<passes::DataParallel>,
    /// The type the step computes in ([`passes::apply_precision`]); `None` takes the graph
    /// file's (`precision:`, f32 by default).
    pub precision: Option<ir::Precision>,
}

/// Lowers a checked graph to a scheduled, memory-planned step for `mode` at `batch`.
/// Errors here are compiler bugs, reported as diagnostics rather than panics.
pub fn lower(
    checked: &Checked,
    mode: Mode,
    batch: usize,
    dump: DumpHook<'_>,
) -> Result<Lowered, Diagnostics> {
    lower_with(checked, mode, batch, &Lowering::default(), dump)
}

/// [`lower`] with device lowerings.
pub fn lower_with(
    checked: &Checked,
    mode: Mode,
    batch: usize,
    lowering: &Lowering,
    dump: DumpHook<'_>,
) -> Result<Lowered, Diagnostics> {
    let mut graph = checked.graph.clone();
    let placed = lowering.devices > 1;
    let file = checked.file.as_str();
    if lowering.devices > passes::place::TOWERS {
        let d = diag::Diagnostic::error(format!(
            "cannot place the step on {} devices: the towers split it two ways",
            lowering.devices
        ))
        .help("use `--devices 2` (or 1)");
        return Err(Diagnostics::from(d).in_file(file));
    }
    if placed && lowering.data_parallel.is_some_and(|dp| dp.replicas > 1) {
        let d = diag::Diagnostic::error(
            "a step placed on two devices cannot also be data parallel yet: each replica would drive two devices"
                .to_string(),
        )
        .help("use either `--devices 2` or `--replicas N`");
        return Err(Diagnostics::from(d).in_file(file));
    }
    // After each pass: the nodes renumbered in the order the text lists them (so that a graph read
    // back from a dump is the pipeline's own), the verifier, then the dump hook (which sees only
    // IR the verifier passed). The memory plans name values by node, so the memory pass, which
    // changes no node, is not renumbered after.
    let mut after = |pass: PassName, graph: &mut Graph, memory: &[(Option<u8>, &MemoryPlan)]| {
        if pass != PassName::Memory {
            graph.renumber();
        }
        let d = passes::verify_after(pass, graph, memory);
        if d.has_errors() {
            return Err(d.in_file(file));
        }
        dump(pass, graph, memory.first().map(|(_, m)| *m));
        Ok(())
    };
    if placed {
        // The towers split the forward graph; `place` adds the transfers after autodiff.
        passes::split_towers(&mut graph);
        after(PassName::Towers, &mut graph, &[])?;
    }
    if mode == Mode::Train {
        let d = passes::autodiff(&mut graph);
        if d.has_errors() {
            return Err(d.in_file(file));
        }
        after(PassName::Autodiff, &mut graph, &[])?;
    } else {
        // Inference reads no labels and computes no loss.
        if let Some(loss) = graph.loss.take() {
            let labels: Vec<_> = graph.inputs(loss.node).into_iter().skip(1).map(|v| v.node).collect();
            graph.g.remove_node(loss.node);
            for l in labels {
                graph.g.remove_node(l);
            }
        }
    }
    if placed {
        passes::insert_transfers(&mut graph);
        after(PassName::Place, &mut graph, &[])?;
    }
    if lowering.split_grouped_conv {
        passes::split_grouped_convs(&mut graph);
        after(PassName::SplitGroups, &mut graph, &[])?;
    }
    let replicas = match lowering.data_parallel {
        Some(dp) if mode == Mode::Train => {
            passes::insert_gradient_all_reduce(&mut graph, dp);
            after(PassName::AllReduce, &mut graph, &[])?;
            dp.replicas.max(1)
        }
        _ => 1,
    };
    let warnings = passes::choose_conv_algos(&mut graph, lowering.conv_algo).in_file(file);
    after(PassName::ConvAlgo, &mut graph, &[])?;
    let precision = lowering.precision.unwrap_or(checked.graph.spec.precision);
    let d = passes::apply_precision(&mut graph, precision);
    if d.has_errors() {
        return Err(d.in_file(file));
    }
    after(PassName::Precision, &mut graph, &[])?;
    let fusion = passes::fuse(&mut graph);
    after(PassName::Fuse, &mut graph, &[])?;
    if naive_step_bytes(&graph, batch) > MAX_STEP_BYTES {
        let d = diag::Diagnostic::error(format!(
            "at batch size {batch} the step needs more than 2^50 bytes (a petabyte) of memory"
        ))
        .help("use a smaller batch size (`--batch-size`, or `batch_size` under `training`)");
        return Err(Diagnostics::from(d).in_file(file));
    }
    passes::schedule(&mut graph, batch);
    after(PassName::Schedule, &mut graph, &[])?;
    let memory = passes::plan_memory(&graph, batch);
    let device_memory = if placed { passes::plan_memory_per_device(&graph, batch) } else { Vec::new() };
    let mut plans = vec![(None, &memory)];
    plans.extend(device_memory.iter().enumerate().map(|(d, m)| (Some(d as u8), m)));
    after(PassName::Memory, &mut graph, &plans)?;
    Ok(Lowered { graph, fusion, memory, device_memory, warnings, replicas })
}

/// The most bytes a step may need with every value in a buffer of its own: 2^50, a petabyte,
/// beyond any device and far enough from `usize::MAX` that the planner's sums are exact.
pub const MAX_STEP_BYTES: u128 = 1 << 50;

/// The bytes a step of `graph` needs at `batch` with every value in a buffer of its own (an upper
/// bound of what the memory plan needs), computed without overflow.
fn naive_step_bytes(graph: &Graph, batch: usize) -> u128 {
    let value_bytes = |t: &ir::TensorType| {
        let per_sample = t.dims.iter().fold(t.dtype.size() as u128, |acc, &d| acc.saturating_mul(d as u128));
        if t.batched {
            per_sample.saturating_mul(batch as u128)
        } else {
            per_sample
        }
    };
    graph.g.node_weights().flat_map(|n| &n.outputs).map(value_bytes).fold(0, u128::saturating_add)
}

/// The largest batch whose step fits in `limit` bytes (arena plus persistent values, on each
/// device of a placed step), if any.
pub fn max_batch(
    checked: &Checked,
    mode: Mode,
    lowering: &Lowering,
    limit: u64,
) -> Result<Option<usize>, Diagnostics> {
    let first = lower_with(checked, mode, 1, lowering, &mut |_, _, _| {})?;
    if first.device_bytes() as u64 > limit {
        return Ok(None);
    }
    // The lowered graph does not depend on the batch size: a batch too large to plan does not fit.
    let fits = |b: usize| -> Result<bool, Diagnostics> {
        if naive_step_bytes(&first.graph, b) > MAX_STEP_BYTES {
            return Ok(false);
        }
        Ok(lower_with(checked, mode, b, lowering, &mut |_, _, _| {})?.device_bytes() as u64 <= limit)
    };
    let (mut lo, mut hi) = (1usize, 2usize);
    while hi <= 1 << 20 && fits(hi)? {
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}
