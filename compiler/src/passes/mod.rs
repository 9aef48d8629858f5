//! The passes, in pipeline order. Each takes the IR and returns it changed, or diagnostics.

pub mod all_reduce;
pub mod autodiff;
pub mod build;
pub mod conv_algo;
pub mod fuse;
pub mod infer;
pub mod loss_scale;
pub mod memory;
pub mod place;
pub mod precision;
pub mod schedule;
pub mod split_groups;
pub mod validate;
pub mod verify;

pub use all_reduce::{insert_gradient_all_reduce, DataParallel};
pub use autodiff::autodiff;
pub use build::build;
pub use conv_algo::{choose_conv_algos, ConvAlgoChoice};
pub use fuse::{fuse, FusionStats};
pub use infer::infer_shapes;
pub use memory::{plan_memory, plan_memory_per_device, MemoryPlan};
pub use place::{insert_transfers, split_towers};
pub use precision::apply_precision;
pub use schedule::schedule;
pub use split_groups::split_grouped_convs;
pub use validate::validate;
pub use verify::verify_after;

/// The passes `--dump-after` can name, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PassName {
    Build,
    Validate,
    InferShapes,
    Towers,
    Autodiff,
    Place,
    SplitGroups,
    AllReduce,
    ConvAlgo,
    Precision,
    Fuse,
    Schedule,
    Memory,
}

impl PassName {
    pub fn all() -> [PassName; 13] {
        use PassName::*;
        [
            Build,
            Validate,
            InferShapes,
            Towers,
            Autodiff,
            Place,
            SplitGroups,
            AllReduce,
            ConvAlgo,
            Precision,
            Fuse,
            Schedule,
            Memory,
        ]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PassName::Build => "build",
            PassName::Validate => "validate",
            PassName::InferShapes => "infer-shapes",
            PassName::Towers => "towers",
            PassName::Autodiff => "autodiff",
            PassName::Place => "place",
            PassName::SplitGroups => "split-groups",
            PassName::AllReduce => "all-reduce",
            PassName::ConvAlgo => "conv-algo",
            PassName::Precision => "precision",
            PassName::Fuse => "fuse",
            PassName::Schedule => "schedule",
            PassName::Memory => "memory",
        }
    }
}

/// What [`run_pass`] needs beyond the graph: the batch size (schedule, memory), the convolution
/// algorithm choice (conv-algo), the data-parallel settings (all-reduce) and the precision.
#[derive(Debug, Clone, Copy)]
pub struct PassOptions {
    pub batch: usize,
    pub conv_algo: ConvAlgoChoice,
    pub data_parallel: DataParallel,
    pub precision: crate::ir::Precision,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            batch: 1,
            conv_algo: ConvAlgoChoice::default(),
            data_parallel: DataParallel::new(2),
            precision: Default::default(),
        }
    }
}

/// Runs one pass on IR (read back from its text, say) as the driver would, with no verifier: its
/// diagnostics, and the memory plans the `memory` pass makes (the step's, then each device's of a
/// placed step). `build` reads a graph file, not IR, and is not run here.
pub fn run_pass(
    pass: PassName,
    graph: &mut crate::ir::Graph,
    options: &PassOptions,
) -> (crate::diag::Diagnostics, Vec<MemoryPlan>) {
    let mut diags = crate::diag::Diagnostics::default();
    let mut plans = Vec::new();
    match pass {
        PassName::Build => diags.push(
            crate::diag::Diagnostic::error("build reads a graph file, not IR")
                .help("compile the graph file instead"),
        ),
        PassName::Validate => diags.extend(validate(graph).diagnostics),
        PassName::InferShapes => diags.extend(infer_shapes(graph)),
        PassName::Towers => {
            split_towers(graph);
        }
        PassName::Autodiff => diags.extend(autodiff(graph)),
        PassName::Place => {
            insert_transfers(graph);
        }
        PassName::SplitGroups => {
            split_grouped_convs(graph);
        }
        PassName::AllReduce => {
            insert_gradient_all_reduce(graph, options.data_parallel);
        }
        PassName::ConvAlgo => diags.extend(choose_conv_algos(graph, options.conv_algo)),
        PassName::Precision => diags.extend(apply_precision(graph, options.precision)),
        PassName::Fuse => {
            fuse(graph);
        }
        PassName::Schedule => schedule(graph, options.batch),
        PassName::Memory => {
            plans.push(plan_memory(graph, options.batch));
            if graph.devices > 1 {
                plans.extend(plan_memory_per_device(graph, options.batch));
            }
        }
    }
    (diags, plans)
}
