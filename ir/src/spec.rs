//! What a graph file says about training, initialisation and data, in the IR's own types: the
//! `build` pass lowers the AST's declarations into these, and nothing after it sees the AST (as in
//! naga, where back ends never see front-end types). A leaf, re-exported from [`crate::ir`]; the
//! field-by-field meaning is in `graphs/README.md`.

use serde::{Deserialize, Serialize};

/// What the graph file says about training, carried through to the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSpec {
    pub classes: usize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub training: Training,
    pub data: Option<DataPipeline>,
    /// The type the step computes in; `alexc compile --precision` overrides the graph file's.
    pub precision: Precision,
}

/// The element type a step computes in. Parameters and momentum stay f32 (the master copies) in
/// every precision, and so do the loss, the softmax, the gradients' sums over the batch and the
/// SGD update; `Bf16` and `F16` compute the forward and backward passes in that type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    /// Needs loss scaling, which this version does not do yet: refused by the compiler.
    F16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The element type of activations and gradients.
    pub fn dtype(self) -> crate::value::DType {
        match self {
            Precision::F32 => crate::value::DType::F32,
            Precision::Bf16 => crate::value::DType::BF16,
            Precision::F16 => crate::value::DType::F16,
        }
    }

    /// `f32`, `bf16`, `f16`, as `--precision` spells it.
    pub fn name(self) -> &'static str {
        self.dtype().name()
    }

    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// SGD with momentum and weight decay, as in the paper.
    Sgd { lr: f64, momentum: f64, weight_decay: f64 },
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Schedule {
    #[default]
    Constant,
    /// Multiply by `factor` every `every_epochs` epochs.
    Step { factor: f64, every_epochs: usize },
    /// Multiply by `factor` when validation error has not improved for `patience` epochs, at most
    /// `max_reductions` times.
    Plateau { factor: f64, patience: usize, max_reductions: usize },
}

/// The length of training and its randomness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
}

/// The data pipeline: preprocessing and augmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataPipeline {
    /// Rescale so that the short side has this many pixels.
    pub resize_short_side: usize,
    /// Then crop the centre square of this size.
    pub center_crop: usize,
    /// Training crops: random squares of the input size.
    pub random_crop: bool,
    pub horizontal_flip: bool,
    pub lighting: Lighting,
    pub mean: Mean,
    /// Divide by this per-channel standard deviation after subtracting the mean (0-255 scale).
    pub std: Option<[f64; 3]>,
    pub test_crops: TestCrops,
}

/// Colour augmentation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Lighting {
    #[default]
    None,
    /// The paper's PCA noise: alpha_i ~ N(0, std), eigen-decomposition from `basis`.
    Pca { std: f64, basis: PcaBasis },
}

/// Where the PCA lighting's eigenvalues and eigenvectors come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PcaBasis {
    /// The widely used ImageNet eigenvalues and eigenvectors (fb.resnet.torch, torchvision).
    ImageNet,
    /// Computed from the training set by `alexrt stats`.
    Dataset,
}

/// The mean subtracted from every pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Mean {
    /// A per-channel RGB mean, 0-255 scale.
    Rgb([f64; 3]),
    /// The training set's per-channel mean, computed by `alexrt stats`.
    Dataset,
}

/// Which crops a test image is scored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TestCrops {
    #[default]
    Center,
    /// Four corners, the centre, and their mirrors; softmax averaged.
    Ten,
}

/// Parameter initialisers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    /// Kaiming (He) uniform with PyTorch's default `a = sqrt(5)`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    KaimingUniform,
}

/// Which LRN formula a graph means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LrnConvention {
    /// The paper: `b = a / (k + alpha * sum a^2)^beta`.
    Paper,
    /// Caffe and PyTorch: `b = a / (k + alpha / n * sum a^2)^beta`.
    Caffe,
}
