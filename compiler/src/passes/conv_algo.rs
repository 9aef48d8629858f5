//! Conv-algo: chooses how each convolution node is computed, the way cuDNN's and oneDNN's
//! heuristics pick an algorithm per layer from its shape before the first step: every forward
//! convolution, data gradient and weight gradient (fused or not) gets the algorithm recorded in
//! its attributes, which the runtime's CPU engine follows.
//!
//! By shape, the first algorithm of [`ConvAlgo::ALL`] that supports the node (im2col + GEMM for
//! every AlexNet layer: on two Zen 5 cores Winograd F(2x2,3x3) measured slower at conv3-conv5,
//! see `benches/results/`); a user's forced choice applies where the algorithm supports the node,
//! and elsewhere the by-shape one is kept, with a warning that names the node.

use crate::catalog::{ConvAlgo, ConvAttrs, ConvPass, Op};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::Graph;

/// What decides each convolution's algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConvAlgoChoice {
    /// The first supported algorithm in the engine's order of preference.
    #[default]
    ByShape,
    /// The user's algorithm (`alexc compile --conv-algo NAME`) wherever it applies.
    Force(ConvAlgo),
}

/// Records an algorithm in every convolution node of `graph` (inside fused nodes too). Returns a
/// warning for each node a forced algorithm cannot compute.
pub fn choose_conv_algos(graph: &mut Graph, choice: ConvAlgoChoice) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for n in graph.node_indices() {
        let name = graph.g[n].name.clone();
        let mut ops: Vec<&mut Op> = match &mut graph.g[n].op {
            Op::Fused(f) => f.steps.iter_mut().map(|s| &mut s.op).collect(),
            op => vec![op],
        };
        for op in ops.iter_mut() {
            let Some((attrs, pass)) = conv_attrs(op) else { continue };
            let by_shape =
                ConvAlgo::ALL.into_iter().find(|a| a.supports(attrs, pass)).unwrap_or(ConvAlgo::Burn);
            attrs.algo = Some(match choice {
                ConvAlgoChoice::ByShape => by_shape,
                ConvAlgoChoice::Force(a) if a.supports(attrs, pass) => a,
                ConvAlgoChoice::Force(a) => {
                    diags.push(
                        Diagnostic::warning(format!(
                            "--conv-algo {} cannot compute the {} of `{name}` (k={} s={} p={}); it uses {}",
                            a.name(),
                            pass.name(),
                            attrs.kernel,
                            attrs.stride,
                            attrs.padding,
                            by_shape.name()
                        ))
                        .node(&name)
                        .help("winograd takes 3x3 stride-1 forward convolutions and data gradients only"),
                    );
                    by_shape
                }
            });
        }
    }
    diags
}

/// The attributes of a convolution op and which computation it is.
fn conv_attrs(op: &mut Op) -> Option<(&mut ConvAttrs, ConvPass)> {
    match op {
        Op::Conv2d(c) => Some((&mut c.0, ConvPass::Forward)),
        Op::Conv2dBackwardData(c) => Some((&mut c.attrs, ConvPass::DataGrad)),
        Op::Conv2dBackwardWeight(c) => Some((&mut c.0, ConvPass::WeightGrad)),
        _ => None,
    }
}
