//! The passes, in pipeline order. Each takes the IR and returns it changed, or diagnostics.

pub mod all_reduce;
pub mod autodiff;
pub mod build;
pub mod conv_algo;
pub mod fuse;
pub mod infer;
pub mod memory;
pub mod place;
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
pub use schedule::schedule;
pub use split_groups::split_grouped_convs;
pub use validate::validate;
pub use verify::verify;

/// The passes `--dump-after` can name, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PassName {
    Build,
    Validate,
    InferShapes,
    Autodiff,
    Verify,
    Place,
    AllReduce,
    ConvAlgo,
    Fuse,
    Schedule,
    Memory,
}

impl PassName {
    pub fn all() -> [PassName; 11] {
        use PassName::*;
        [Build, Validate, InferShapes, Autodiff, Verify, Place, AllReduce, ConvAlgo, Fuse, Schedule, Memory]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PassName::Build => "build",
            PassName::Validate => "validate",
            PassName::InferShapes => "infer-shapes",
            PassName::Autodiff => "autodiff",
            PassName::Verify => "verify",
            PassName::Place => "place",
            PassName::AllReduce => "all-reduce",
            PassName::ConvAlgo => "conv-algo",
            PassName::Fuse => "fuse",
            PassName::Schedule => "schedule",
            PassName::Memory => "memory",
        }
    }
}
