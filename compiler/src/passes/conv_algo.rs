//! Conv-algo: chooses how each convolution node is computed, the way cuDNN's and oneDNN's
//! heuristics pick an algorithm per layer from its shape before the first step: every forward
//! convolution, data gradient and weight gradient gets the algorithm recorded in its attributes
//! (fusion carries them into the fused nodes), which the runtime's CPU engine follows.
//!
//! By shape, the first algorithm of [`ConvAlgo::ALL`] that supports the node (im2col + GEMM for
//! every AlexNet layer: on this project's two-core machine Winograd F(2x2,3x3) won only conv4's
//! and conv5's forward, by 6-24% in one noisy run, and lost conv3 and every data gradient; see
//! `benches/results/`); a user's forced choice applies where the algorithm supports the node,
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

/// Records an algorithm in every convolution node of `graph`. It runs before fusion, so each
/// convolution is a node of its own. Returns a warning for each node a forced algorithm cannot
/// compute.
pub fn choose_conv_algos(graph: &mut Graph, choice: ConvAlgoChoice) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for n in graph.node_indices() {
        let name = graph.g[n].name.clone();
        let Some((attrs, pass)) = conv_attrs(&mut graph.g[n].op) else { continue };
        let by_shape = ConvAlgo::by_shape(attrs, pass);
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
