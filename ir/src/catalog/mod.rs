//! The op catalog: the one place that knows each op — its arity, attributes, shape rule, gradient
//! rule, fusion class and cost. Passes ask the catalog through [`OpDef`]; they never match on ops.

mod cast;
mod collective;
mod conv;
mod conv_algo;
mod elementwise;
mod fused;
mod gradient;
mod linear;
mod loss;
mod loss_scale;
mod lrn;
mod pool;
mod reshape;
mod sources;
mod split;
mod text;
mod transfer;
mod update;

pub use cast::Cast;
pub use collective::AllReduceMean;
pub use conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight, ConvAttrs};
pub use conv_algo::{ConvAlgo, ConvPass};
pub use elementwise::{Add, AddN, BiasAdd, BiasGrad, Dropout, DropoutGrad, Relu, ReluGrad};
pub use fused::{FusedInput, FusedOp, FusedStep};
pub use gradient::{BackwardGraph, GradCtx, GradientError};
pub use linear::{Linear, LinearBackwardData, LinearBackwardWeight};
pub use loss::{SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad};
pub use loss_scale::{ScaleLossGrad, UnscaleGrads, GROWTH_INTERVAL, INITIAL_LOSS_SCALE, LOSS_SCALE_STATE};
pub use lrn::{Lrn, LrnGrad};
pub use pool::{MaxPool, MaxPoolGrad, PoolAttrs};
pub use reshape::{Flatten, Reshape};
pub use sources::{Input, Labels, Param, ParamRole, State, StateKind};
pub use split::{Concat, Pad, Slice};
pub use text::Words;
pub use transfer::{Transfer, HOST};
pub use update::SgdUpdate;

use serde::{Deserialize, Serialize};

use crate::value::{DType, TensorType, ValueRef};

/// Every op the IR knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Input(Input),
    Labels(Labels),
    Param(Param),
    State(State),
    Conv2d(Conv2d),
    Conv2dBackwardData(Conv2dBackwardData),
    Conv2dBackwardWeight(Conv2dBackwardWeight),
    Linear(Linear),
    LinearBackwardData(LinearBackwardData),
    LinearBackwardWeight(LinearBackwardWeight),
    BiasAdd(BiasAdd),
    BiasGrad(BiasGrad),
    Relu(Relu),
    ReluGrad(ReluGrad),
    Lrn(Lrn),
    LrnGrad(LrnGrad),
    MaxPool(MaxPool),
    MaxPoolGrad(MaxPoolGrad),
    Dropout(Dropout),
    DropoutGrad(DropoutGrad),
    Flatten(Flatten),
    Reshape(Reshape),
    Add(Add),
    AddN(AddN),
    SoftmaxCrossEntropy(SoftmaxCrossEntropy),
    SoftmaxCrossEntropyGrad(SoftmaxCrossEntropyGrad),
    SgdUpdate(SgdUpdate),
    Fused(FusedOp),
    Slice(Slice),
    Concat(Concat),
    Pad(Pad),
    Transfer(Transfer),
    AllReduceMean(AllReduceMean),
    Cast(Cast),
    ScaleLossGrad(ScaleLossGrad),
    UnscaleGrads(UnscaleGrads),
}

impl Op {
    /// The catalog entry for this op.
    pub fn def(&self) -> &dyn OpDef {
        match self {
            Op::Input(o) => o,
            Op::Labels(o) => o,
            Op::Param(o) => o,
            Op::State(o) => o,
            Op::Conv2d(o) => o,
            Op::Conv2dBackwardData(o) => o,
            Op::Conv2dBackwardWeight(o) => o,
            Op::Linear(o) => o,
            Op::LinearBackwardData(o) => o,
            Op::LinearBackwardWeight(o) => o,
            Op::BiasAdd(o) => o,
            Op::BiasGrad(o) => o,
            Op::Relu(o) => o,
            Op::ReluGrad(o) => o,
            Op::Lrn(o) => o,
            Op::LrnGrad(o) => o,
            Op::MaxPool(o) => o,
            Op::MaxPoolGrad(o) => o,
            Op::Dropout(o) => o,
            Op::DropoutGrad(o) => o,
            Op::Flatten(o) => o,
            Op::Reshape(o) => o,
            Op::Add(o) => o,
            Op::AddN(o) => o,
            Op::SoftmaxCrossEntropy(o) => o,
            Op::SoftmaxCrossEntropyGrad(o) => o,
            Op::SgdUpdate(o) => o,
            Op::Fused(o) => o,
            Op::Slice(o) => o,
            Op::Concat(o) => o,
            Op::Pad(o) => o,
            Op::Transfer(o) => o,
            Op::AllReduceMean(o) => o,
            Op::Cast(o) => o,
            Op::ScaleLossGrad(o) => o,
            Op::UnscaleGrads(o) => o,
        }
    }
}

/// How an op combines with its neighbours in fusion, as TVM's FuseOps classifies ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FusionClass {
    /// One output element from the same input element(s): ReLU, bias add, masks.
    Elementwise,
    /// Output elements from a fixed input element each: reshape, flatten.
    Injective,
    /// Sums over an axis: bias gradients.
    Reduce,
    /// Complex ops whose output can take an elementwise epilogue: convolution, matmul.
    OutElementwiseFusable,
    /// Fuses with nothing.
    Opaque,
}

impl std::fmt::Display for FusionClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FusionClass::Elementwise => "elementwise",
            FusionClass::Injective => "injective",
            FusionClass::Reduce => "reduce",
            FusionClass::OutElementwiseFusable => "out-elementwise-fusable",
            FusionClass::Opaque => "opaque",
        })
    }
}

/// Work per sample (or per step, for unbatched ops). Only convolutions and matrix products count
/// multiply-accumulates, as papers count them; elementwise, LRN and pooling work is not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Multiply-accumulates.
    pub macs: u64,
}

/// A shape rule's complaint: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    pub message: String,
    pub help: String,
}

impl ShapeError {
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        ShapeError { message: message.into(), help: help.into() }
    }
}

/// What a shape rule found: output types and any warnings (message, fix).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inferred {
    pub outputs: Vec<TensorType>,
    pub warnings: Vec<(String, String)>,
}

impl From<Vec<TensorType>> for Inferred {
    fn from(outputs: Vec<TensorType>) -> Self {
        Inferred { outputs, warnings: Vec::new() }
    }
}

/// The catalog's knowledge of one op.
pub trait OpDef {
    /// The op's name in dumps.
    fn name(&self) -> &'static str;
    /// How many inputs it takes; `None` for any number of at least one.
    fn arity(&self) -> Option<usize>;
    /// Its attributes as dump text, `key=value` separated by spaces.
    fn attrs(&self) -> String {
        String::new()
    }
    /// The shape rule: output types from input types.
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError>;
    fn fusion_class(&self) -> FusionClass;
    /// A window op that can read its input through the elementwise tail of the group producing
    /// that input, recomputing it per read (LRN of a ReLU): the fuse pass adds it to that group as
    /// one more output, so the kernel that applies the tail computes the window op too.
    fn fuses_into_producer(&self) -> bool {
        false
    }
    /// Multiply-accumulates per sample, given input and output types.
    fn cost(&self, _inputs: &[&TensorType], _outputs: &[TensorType]) -> Cost {
        Cost::default()
    }
    /// The shape a parameter at input `port` must have, given the op's input types so far
    /// (parameter shapes follow from the layer they feed).
    fn param_shape(&self, _port: usize, _inputs: &[Option<&TensorType>]) -> Option<Vec<usize>> {
        None
    }
    /// Parameters, optimizer state and fed inputs are sources: not computed by a step.
    fn is_source(&self) -> bool {
        false
    }
    /// Values that live across steps (parameters, momentum) are persistent.
    fn is_persistent(&self) -> bool {
        false
    }
    /// The input whose buffer output 0 may overwrite when that input is not used afterwards.
    fn in_place(&self) -> Option<usize> {
        None
    }
    /// Each (output port, input) pair whose output may overwrite that input's buffer when the
    /// input is not used afterwards, for a node of `inputs` inputs: output 0 and [`Self::in_place`]
    /// unless the op says otherwise.
    fn in_place_ports(&self, inputs: usize) -> Vec<(u8, usize)> {
        let _ = inputs;
        self.in_place().map(|i| vec![(0, i)]).unwrap_or_default()
    }
    /// Output 0 is a view of input 0 (no copy, no write): it always shares its buffer.
    fn is_view(&self) -> bool {
        false
    }
    /// The gradient rule: emits backward nodes through `ctx` and returns the gradient of each input
    /// (`None` where the input takes no gradient).
    fn gradient(&self, _ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        Err(GradientError::NoRule { op: self.name() })
    }
    /// Inputs the op overwrites in place (the optimizer update writes the parameter and its
    /// momentum). Every other reader of such a value must run before it.
    fn writes_inputs(&self) -> &'static [usize] {
        &[]
    }
    /// Whether input `port` may be an f32 parameter (its master copy) where the op computes in a
    /// lower type: the kernel converts it as it reads it (a product's weight, as it packs it; a
    /// bias, added in f32), so mixed precision needs no low copy of it.
    fn reads_f32_master(&self, port: usize) -> bool {
        let _ = port;
        false
    }
    /// The input that is a parameter's gradient, for an op that consumes one (the optimizer
    /// update): a data-parallel run averages that value across replicas before the op reads it.
    fn gradient_input(&self) -> Option<usize> {
        None
    }
}

/// The element type a product computes in: its activation's (input 0), with its weight (input 1)
/// either of that type or the parameter's f32 master, which the kernel converts as it reads it
/// ([`OpDef::reads_f32_master`]).
pub(crate) fn product_dtype(inputs: &[&TensorType], what: &str) -> Result<DType, ShapeError> {
    let dtype = compute_dtype(inputs, &[0], what)?;
    if let Some(w) = inputs.get(1) {
        if w.dtype != dtype && w.dtype != DType::F32 {
            return Err(ShapeError::new(
                format!("{what} computes in {} but its weight is {w}", dtype.name()),
                "internal: a weight is the f32 master or of the activations' type",
            ));
        }
    }
    Ok(dtype)
}

/// The element type an op computes in: that of its inputs at `ports` (those it is given), which
/// must be floats of one type. The precision pass puts a cast wherever they would not be.
pub(crate) fn compute_dtype(
    inputs: &[&TensorType],
    ports: &[usize],
    what: &str,
) -> Result<DType, ShapeError> {
    let mut found: Option<&TensorType> = None;
    for t in ports.iter().filter_map(|&p| inputs.get(p)) {
        if !t.dtype.is_float() {
            return Err(ShapeError::new(
                format!("{what} reads {t}, not a float"),
                "feed it activations or parameters",
            ));
        }
        match found {
            Some(f) if f.dtype != t.dtype => {
                return Err(ShapeError::new(
                    format!("{what} reads {f} and {t}, two element types"),
                    "internal: the precision pass casts an op's inputs to one type",
                ))
            }
            _ => found = Some(t),
        }
    }
    Ok(found.map_or(DType::F32, |t| t.dtype))
}

/// Checks that `t` has `rank` dimensions per sample; for shape rules.
pub(crate) fn expect_rank(t: &TensorType, rank: usize, what: &str) -> Result<(), ShapeError> {
    if t.dims.len() != rank {
        return Err(ShapeError::new(
            match rank {
                1 => format!("{what} expects a flat input (one dimension per sample), got {t}"),
                3 => format!("{what} expects a C x H x W feature map per sample, got {t}"),
                _ => format!("{what} expects {rank} dimensions per sample, got {t}"),
            },
            match rank {
                3 => "feed it a C x H x W feature map (before any flatten)",
                1 => "insert a Flatten node before it",
                _ => "check the node's input",
            },
        ));
    }
    Ok(())
}

/// Input `i` of a shape rule, or an error naming the op when the node has fewer inputs (a rule
/// is never to index past the inputs it is given).
pub(crate) fn input_at<'a>(
    inputs: &[&'a TensorType],
    i: usize,
    what: &str,
) -> Result<&'a TensorType, ShapeError> {
    inputs.get(i).copied().ok_or_else(|| {
        ShapeError::new(
            format!("{what} is given {} input(s) but reads input {i}", inputs.len()),
            "check the node's inputs",
        )
    })
}

/// Output length of a sliding window; `Err` when the window does not fit.
/// (Also `None` when the padded input overflows; shape rules reject such padding first.)
pub(crate) fn window_out(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    if kernel > padded || stride == 0 {
        None
    } else {
        Some((padded - kernel) / stride + 1)
    }
}

/// A warning when a window does not tile its input exactly: (message, fix).
pub(crate) fn tiling_warning(
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<(String, String)> {
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    let rest = padded.checked_sub(kernel)?.checked_rem(stride)?;
    if rest == 0 {
        return None;
    }
    let exact = (padded - kernel) as f64 / stride as f64 + 1.0;
    let lower = padded - rest;
    Some((
        format!(
            "the window does not tile the {axis}: ({input} + 2*{padding} - {kernel}) / {stride} + 1 = {exact:.2}; \
             the last {rest} pixel(s) are never read"
        ),
        format!(
            "make the {axis} {} (or {}) so that the windows fit exactly, or change padding or stride",
            lower - 2 * padding,
            (lower - 2 * padding).saturating_add(stride)
        ),
    ))
}
