//! How a convolution is computed: the algorithms of the runtime's CPU convolution engine, which
//! of the three computations of a layer (forward, data gradient, weight gradient) each can do,
//! and for which shapes. The `conv-algo` pass (`alexc::passes::choose_conv_algos`) records one
//! per convolution node; backends without the engine (CubeCL) run their own convolution.

use serde::{Deserialize, Serialize};

use super::ConvAttrs;

/// A convolution algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConvAlgo {
    /// The backend's own convolution (burn's; on the CPU, burn Flex's im2col and its generic
    /// weight gradient).
    Burn,
    /// im2col (col2im for the data gradient) around single-threaded matrix products, parallel
    /// over images; small planes batched into one product; the weight gradient one product per
    /// group over the batch.
    Im2colGemm,
    /// Winograd F(2x2, 3x3): 3x3 stride-1 forward and data gradient.
    Winograd,
}

/// One of the three computations of a convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConvPass {
    /// `y = conv(x, w)` (with bias and ReLU when fused).
    Forward,
    /// `dx` from `dy` and `w`.
    DataGrad,
    /// `dw` from `x` and `dy`.
    WeightGrad,
}

impl ConvAlgo {
    /// Every algorithm, in the order the by-shape choice prefers them.
    pub const ALL: [ConvAlgo; 3] = [ConvAlgo::Im2colGemm, ConvAlgo::Winograd, ConvAlgo::Burn];

    /// The name in dumps, reports and `--conv-algo`.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Burn => "burn",
            ConvAlgo::Im2colGemm => "im2col-gemm",
            ConvAlgo::Winograd => "winograd",
        }
    }

    /// The algorithm named `name` (as [`ConvAlgo::name`] writes it).
    pub fn from_name(name: &str) -> Option<ConvAlgo> {
        ConvAlgo::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm chosen by shape: the first of [`ConvAlgo::ALL`] that computes `pass` of a
    /// layer with attributes `a` (burn, which computes everything, when no other does).
    pub fn by_shape(a: &ConvAttrs, pass: ConvPass) -> ConvAlgo {
        ConvAlgo::ALL.into_iter().find(|algo| algo.supports(a, pass)).unwrap_or(ConvAlgo::Burn)
    }

    /// Whether this algorithm computes `pass` of a layer with attributes `a`.
    pub fn supports(self, a: &ConvAttrs, pass: ConvPass) -> bool {
        let valid = a.kernel > 0 && a.stride > 0 && a.groups > 0;
        match self {
            ConvAlgo::Burn => true,
            ConvAlgo::Im2colGemm => valid,
            ConvAlgo::Winograd => {
                let three_by_three = valid && a.kernel == 3 && a.stride == 1;
                match pass {
                    ConvPass::Forward => three_by_three,
                    ConvPass::DataGrad => three_by_three && a.padding <= 2,
                    ConvPass::WeightGrad => false,
                }
            }
        }
    }
}

impl ConvPass {
    pub const ALL: [ConvPass; 3] = [ConvPass::Forward, ConvPass::DataGrad, ConvPass::WeightGrad];

    pub fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "forward",
            ConvPass::DataGrad => "data gradient",
            ConvPass::WeightGrad => "weight gradient",
        }
    }
}
