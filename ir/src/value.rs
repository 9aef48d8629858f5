//! What flows along the IR's edges: element types, tensor types and references to one output of
//! one node. A leaf module: the catalog's shape and gradient rules and the IR both speak these
//! types, so the catalog needs nothing from the IR. Re-exported from [`crate::ir`].

use std::fmt;

use petgraph::stable_graph::NodeIndex;
use serde::{Deserialize, Serialize};

/// Element types of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    /// bfloat16: f32's exponent, 8 bits of mantissa (mixed precision, `--precision bf16`).
    BF16,
    /// IEEE half precision (mixed precision with loss scaling, `--precision f16`).
    F16,
    /// Argmax indices of max pooling, class labels.
    I32,
    /// Dropout keep masks.
    U8,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 => 1,
        }
    }

    /// Whether it holds real numbers (activations, gradients, parameters).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::BF16 | DType::F16)
    }

    /// Its name in the text form: `f32`, `bf16`, `f16`, `i32`, `u8`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::U8 => "u8",
        }
    }

    /// The element type [`DType::name`] writes as `name`.
    pub fn from_name(name: &str) -> Option<DType> {
        [DType::F32, DType::BF16, DType::F16, DType::I32, DType::U8].into_iter().find(|d| d.name() == name)
    }
}

/// The type of a value: element type and dimensions, with a leading batch dimension `N` when
/// `batched`. The batch size is symbolic until memory planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub batched: bool,
    pub dims: Vec<usize>,
}

impl TensorType {
    pub fn batched(dtype: DType, dims: Vec<usize>) -> Self {
        TensorType { dtype, batched: true, dims }
    }

    pub fn fixed(dtype: DType, dims: Vec<usize>) -> Self {
        TensorType { dtype, batched: false, dims }
    }

    /// Elements per sample (or in all, when not batched).
    pub fn elements_per_sample(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn elements(&self, batch: usize) -> usize {
        self.elements_per_sample() * if self.batched { batch } else { 1 }
    }

    pub fn bytes(&self, batch: usize) -> usize {
        self.elements(batch) * self.dtype.size()
    }

    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorType { dtype, ..self.clone() }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.dtype.name();
        let mut dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        if self.batched {
            dims.insert(0, "N".into());
        }
        write!(f, "{dt}[{}]", dims.join(","))
    }
}

/// A value: one output port of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValueRef {
    pub node: NodeIndex,
    pub port: u8,
}
