//! Lowers the graph file's training, data and initialiser declarations to the IR's own types
//! (`ir::TrainingSpec` and its parts, `ir::Init`, `ir::LrnConvention`): past `build`, nothing
//! sees the AST. The AST's defaults were applied when the file was parsed.

use crate::ast;
use crate::ir;

/// The training specification of a parsed graph file.
pub(super) fn lower_spec(file: &ast::GraphFile) -> ir::TrainingSpec {
    ir::TrainingSpec {
        classes: file.classes,
        optimizer: lower_optimizer(&file.optimizer),
        schedule: lower_schedule(&file.schedule),
        training: ir::Training {
            batch_size: file.training.batch_size,
            epochs: file.training.epochs,
            seed: file.training.seed,
        },
        data: file.data.as_ref().map(lower_data),
        precision: match file.precision {
            ast::PrecisionDecl::F32 => ir::Precision::F32,
            ast::PrecisionDecl::Bf16 => ir::Precision::Bf16,
            ast::PrecisionDecl::F16 => ir::Precision::F16,
        },
    }
}

fn lower_optimizer(o: &ast::OptimizerDecl) -> ir::Optimizer {
    match *o {
        ast::OptimizerDecl::Sgd { lr, momentum, weight_decay } => {
            ir::Optimizer::Sgd { lr, momentum, weight_decay }
        }
    }
}

fn lower_schedule(s: &ast::ScheduleDecl) -> ir::Schedule {
    match *s {
        ast::ScheduleDecl::Constant => ir::Schedule::Constant,
        ast::ScheduleDecl::Step { factor, every_epochs } => ir::Schedule::Step { factor, every_epochs },
        ast::ScheduleDecl::Plateau { factor, patience, max_reductions } => {
            ir::Schedule::Plateau { factor, patience, max_reductions }
        }
    }
}

fn lower_data(d: &ast::DataDecl) -> ir::DataPipeline {
    ir::DataPipeline {
        resize_short_side: d.resize_short_side,
        center_crop: d.center_crop,
        random_crop: d.random_crop,
        horizontal_flip: d.horizontal_flip,
        lighting: match &d.lighting {
            ast::Lighting::None => ir::Lighting::None,
            ast::Lighting::Pca { std, basis } => ir::Lighting::Pca {
                std: *std,
                basis: match basis {
                    ast::PcaBasis::ImageNet => ir::PcaBasis::ImageNet,
                    ast::PcaBasis::Dataset => ir::PcaBasis::Dataset,
                },
            },
        },
        mean: match &d.mean {
            ast::MeanDecl::Rgb(rgb) => ir::Mean::Rgb(*rgb),
            ast::MeanDecl::Dataset => ir::Mean::Dataset,
        },
        std: d.std,
        test_crops: match d.test_crops {
            ast::TestCrops::Center => ir::TestCrops::Center,
            ast::TestCrops::Ten => ir::TestCrops::Ten,
        },
    }
}

pub(super) fn lower_init(i: ast::Init) -> ir::Init {
    match i {
        ast::Init::Constant(c) => ir::Init::Constant(c),
        ast::Init::Normal { mean, std } => ir::Init::Normal { mean, std },
        ast::Init::Uniform { low, high } => ir::Init::Uniform { low, high },
        ast::Init::KaimingUniform => ir::Init::KaimingUniform,
    }
}

pub(super) fn lower_convention(c: ast::LrnConvention) -> ir::LrnConvention {
    match c {
        ast::LrnConvention::Paper => ir::LrnConvention::Paper,
        ast::LrnConvention::Caffe => ir::LrnConvention::Caffe,
    }
}
