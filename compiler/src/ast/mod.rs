//! The graph language: what a `.ron` graph file says, as serde types.
//!
//! The reference for every field is `graphs/README.md`. Parsing ([`parse`]) turns text into a
//! [`GraphFile`] and locates each node in the source so that later passes can point at it.

mod locate;
mod parse;

pub use locate::SourceMap;
pub use parse::{parse_file, parse_str, ParsedGraph};

use serde::{Deserialize, Serialize};

/// A whole graph file: the network, its loss, and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Graph", deny_unknown_fields)]
pub struct GraphFile {
    /// A short name for the network, used in reports and plan files.
    pub name: String,
    /// The one input: a batch of images.
    pub input: InputDecl,
    /// The number of classes the labels range over.
    pub classes: usize,
    /// Defaults for parameters that a node does not configure itself.
    #[serde(default)]
    pub defaults: ParamDefaults,
    /// The layers, in any order; each names its inputs.
    pub nodes: Vec<NodeDecl>,
    pub loss: LossDecl,
    pub optimizer: OptimizerDecl,
    #[serde(default)]
    pub schedule: ScheduleDecl,
    pub training: TrainingDecl,
    #[serde(default)]
    pub data: Option<DataDecl>,
    /// The type the step computes in (parameters stay f32): `F32` (the default) or `Bf16`.
    /// `alexc compile --precision` overrides it.
    #[serde(default)]
    pub precision: PrecisionDecl,
}

/// `precision:` in a graph file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrecisionDecl {
    #[default]
    F32,
    Bf16,
    F16,
}

/// The network input: images of `channels x height x width`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// One layer: a name, the op with its attributes, and the names of its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDecl {
    pub name: String,
    pub op: OpDecl,
    pub inputs: Vec<String>,
}

/// The ops a graph file may use, with their attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OpDecl {
    Conv2d(Conv2dDecl),
    Linear(LinearDecl),
    Relu,
    Lrn(LrnDecl),
    MaxPool(PoolDecl),
    Dropout(DropoutDecl),
    Flatten,
    Add,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dDecl {
    pub out_channels: usize,
    pub kernel: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub padding: usize,
    #[serde(default = "one")]
    pub groups: usize,
    /// Whether the layer adds a learned bias.
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub weight: ParamDecl,
    #[serde(default)]
    pub bias: ParamDecl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearDecl {
    pub out_features: usize,
    /// Optional: the input width this layer expects, checked against the layer before it.
    #[serde(default)]
    pub in_features: Option<usize>,
    /// Whether the layer adds a learned bias.
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub weight: ParamDecl,
    #[serde(default)]
    pub bias: ParamDecl,
}

/// Local response normalisation across channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrnDecl {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
    /// Required: which formula `alpha` belongs to. Never guessed.
    pub convention: LrnConvention,
}

/// Which LRN formula a graph means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LrnConvention {
    /// The paper: `b = a / (k + alpha * sum a^2)^beta`.
    Paper,
    /// Caffe and PyTorch: `b = a / (k + alpha / n * sum a^2)^beta`.
    Caffe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolDecl {
    pub kernel: usize,
    pub stride: usize,
    #[serde(default)]
    pub padding: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutDecl {
    pub rate: f64,
}

/// How one parameter (a weight or a bias) starts and learns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// Initialiser; the graph's `defaults` when absent.
    #[serde(default)]
    pub init: Option<Init>,
    /// Multiplies the optimizer's learning rate; the graph's `defaults` when absent.
    #[serde(default)]
    pub lr_mult: Option<f64>,
    /// Multiplies the optimizer's weight decay; the graph's `defaults` when absent.
    #[serde(default)]
    pub decay_mult: Option<f64>,
}

/// Graph-wide defaults for weights and biases. A field left out here falls back to the built-in
/// default ([`ParamDefaults::builtin_weight`], [`ParamDefaults::builtin_bias`]), field by field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDefaults {
    #[serde(default)]
    pub weight: ParamDecl,
    #[serde(default)]
    pub bias: ParamDecl,
}

impl ParamDefaults {
    /// Weights: N(0, 0.01), the paper's; learning-rate and decay multipliers 1.
    pub fn builtin_weight() -> ParamDecl {
        ParamDecl {
            init: Some(Init::Normal { mean: 0.0, std: 0.01 }),
            lr_mult: Some(1.0),
            decay_mult: Some(1.0),
        }
    }

    /// Biases: 0; multipliers 1.
    pub fn builtin_bias() -> ParamDecl {
        ParamDecl { init: Some(Init::Constant(0.0)), lr_mult: Some(1.0), decay_mult: Some(1.0) }
    }
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LossDecl {
    SoftmaxCrossEntropy { logits: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerDecl {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum ScheduleDecl {
    #[default]
    Constant,
    /// Multiply by `factor` every `every_epochs` epochs.
    Step { factor: f64, every_epochs: usize },
    /// Multiply by `factor` when validation error has not improved for `patience` epochs, at most
    /// `max_reductions` times.
    Plateau { factor: f64, patience: usize, max_reductions: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingDecl {
    pub batch_size: usize,
    pub epochs: usize,
    #[serde(default)]
    pub seed: u64,
}

/// The data pipeline: preprocessing and augmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDecl {
    /// Rescale so that the short side has this many pixels.
    pub resize_short_side: usize,
    /// Then crop the centre square of this size.
    pub center_crop: usize,
    /// Training crops: random squares of the input size.
    #[serde(default = "yes")]
    pub random_crop: bool,
    #[serde(default)]
    pub horizontal_flip: bool,
    #[serde(default)]
    pub lighting: Lighting,
    pub mean: MeanDecl,
    /// Divide by this per-channel standard deviation after subtracting the mean (0-255 scale).
    #[serde(default)]
    pub std: Option<[f64; 3]>,
    #[serde(default)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PcaBasis {
    /// The widely used ImageNet eigenvalues and eigenvectors (fb.resnet.torch, torchvision).
    ImageNet,
    /// Computed from the training set by `alexrt stats`.
    Dataset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MeanDecl {
    /// A per-channel RGB mean, 0-255 scale.
    Rgb([f64; 3]),
    /// The training set's per-channel mean, computed by `alexrt stats`.
    Dataset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TestCrops {
    #[default]
    Center,
    /// Four corners, the centre, and their mirrors; softmax averaged.
    Ten,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
