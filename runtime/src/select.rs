//! Kernel selection: maps a fused node of the plan (a chain of catalog ops, as the compiler's fuse
//! pass grouped them) onto the backend's fused kernels. The compiler decides what belongs
//! together and stays device-agnostic; this decides how a group runs. A group that matches no
//! pattern here runs step by step, which is always correct.

use alexir::catalog::{FusedInput, FusedOp, Op};

use crate::kernels::{LrnParams, PoolParams};

/// How one fused node runs. `usize` fields are inputs of the fused node.
#[derive(Debug, Clone, PartialEq)]
pub enum Fusion {
    /// conv2d, linear or concat (of a split grouped convolution), bias_add, optionally relu: the
    /// product, then one in-place bias (+ ReLU) epilogue.
    BiasAct { bias: usize, relu: bool },
    /// conv2d (or concat), bias_add, relu, lrn: the convolution, then one kernel for bias, ReLU and LRN that
    /// writes the ReLU's result only when the plan still reads it.
    BiasReluLrn { bias: usize, lrn: LrnParams, keep_relu: bool },
    /// A gradient producer (convolution or linear data gradient, or the concat of a split one),
    /// then dropout_grad, relu_grad or both: the producer, then one in-place masking epilogue.
    MaskedGrad { dropout: Option<(usize, f64)>, relu_y: Option<usize> },
    /// lrn_grad whose LRN read a ReLU's output, then that ReLU's relu_grad: one kernel.
    LrnReluGrad { x: usize, y: usize, dy: usize, lrn: LrnParams },
    /// max_pool_grad, then the relu_grad of the ReLU that fed the pool: one kernel.
    PoolReluGrad { dy: usize, argmax: usize, relu_y: usize, pool: PoolParams },
}

impl Fusion {
    /// How the group runs, in a few words (for `alexrt inspect`).
    pub fn describe(&self) -> String {
        match self {
            Fusion::BiasAct { relu: true, .. } => "the product, then one in-place bias+ReLU kernel".into(),
            Fusion::BiasAct { relu: false, .. } => "the product, then one in-place bias kernel".into(),
            Fusion::BiasReluLrn { keep_relu, .. } => format!(
                "the convolution, then one bias+ReLU+LRN kernel writing {}",
                if *keep_relu { "the LRN and ReLU outputs" } else { "the LRN output only" }
            ),
            Fusion::MaskedGrad { dropout, relu_y } => format!(
                "the producer, then one in-place {} mask kernel",
                match (dropout.is_some(), relu_y.is_some()) {
                    (true, true) => "dropout+ReLU",
                    (true, false) => "dropout",
                    _ => "ReLU",
                }
            ),
            Fusion::LrnReluGrad { .. } => "one LRN-gradient kernel through the ReLU mask".into(),
            Fusion::PoolReluGrad { .. } => "one pooling-gradient gather through the ReLU mask".into(),
        }
    }
}

/// The kernels of every fused node of `graph`, in schedule order: `(name, pattern, how it runs)`.
pub fn kernel_table(graph: &alexir::ir::Graph) -> Vec<(String, String, String)> {
    graph
        .schedule
        .iter()
        .filter_map(|&n| match &graph.g[n].op {
            Op::Fused(f) => Some((
                graph.g[n].name.clone(),
                f.pattern(),
                select(f).map(|k| k.describe()).unwrap_or_else(|| "step by step (no fused kernel)".into()),
            )),
            _ => None,
        })
        .collect()
}

/// The fused kernels for `f`, if a pattern matches it.
pub fn select(f: &FusedOp) -> Option<Fusion> {
    // Dropout in an inference step is the identity: trailing ones change nothing.
    let mut core = f.steps.len();
    while core > 1 && matches!(&f.steps[core - 1].op, Op::Dropout(d) if !d.training) {
        core -= 1;
    }
    let ops: Vec<&Op> = f.steps[..core].iter().map(|s| &s.op).collect();
    let ext = |step: usize, i: usize| match f.steps[step].inputs.get(i) {
        Some(FusedInput::External(e)) => Some(*e),
        _ => None,
    };
    // Each step after the first reads the one before it as its first input.
    let chained = (1..f.steps.len()).all(|s| f.steps[s].inputs.first() == Some(&FusedInput::Step(s - 1, 0)));
    let only_last = f.outputs == [(f.steps.len() - 1, 0)];
    if !chained {
        return None;
    }
    match ops.as_slice() {
        [Op::Conv2d(_) | Op::Linear(_) | Op::Concat(_), Op::BiasAdd(_)] if only_last => {
            Some(Fusion::BiasAct { bias: ext(1, 1)?, relu: false })
        }
        [Op::Conv2d(_) | Op::Linear(_) | Op::Concat(_), Op::BiasAdd(_), Op::Relu(_)] if only_last => {
            Some(Fusion::BiasAct { bias: ext(1, 1)?, relu: true })
        }
        [Op::Conv2d(_) | Op::Concat(_), Op::BiasAdd(_), Op::Relu(_), Op::Lrn(l)] if core == f.steps.len() => {
            let keep_relu = match f.outputs.as_slice() {
                [(3, 0)] => false,
                [(3, 0), (2, 0)] => true,
                _ => return None,
            };
            Some(Fusion::BiasReluLrn { bias: ext(1, 1)?, lrn: LrnParams::from_op(l), keep_relu })
        }
        [Op::LrnGrad(l), Op::ReluGrad(_)] if only_last && ext(1, 1) == ext(0, 0) => {
            Some(Fusion::LrnReluGrad {
                x: ext(0, 0)?,
                y: ext(0, 1)?,
                dy: ext(0, 2)?,
                lrn: LrnParams::from_op(&l.0),
            })
        }
        [Op::MaxPoolGrad(p), Op::ReluGrad(_)] if only_last => Some(Fusion::PoolReluGrad {
            dy: ext(0, 0)?,
            argmax: ext(0, 1)?,
            relu_y: ext(1, 1)?,
            pool: PoolParams::from_attrs(&p.attrs),
        }),
        [Op::Conv2dBackwardData(_) | Op::LinearBackwardData(_) | Op::Concat(_), Op::ReluGrad(_)]
            if only_last =>
        {
            Some(Fusion::MaskedGrad { dropout: None, relu_y: Some(ext(1, 1)?) })
        }
        [Op::Conv2dBackwardData(_) | Op::LinearBackwardData(_), Op::DropoutGrad(d), Op::ReluGrad(_)]
            if only_last =>
        {
            Some(Fusion::MaskedGrad { dropout: Some((ext(1, 1)?, d.rate)), relu_y: Some(ext(2, 1)?) })
        }
        [Op::Conv2dBackwardData(_) | Op::LinearBackwardData(_), Op::DropoutGrad(d)] if only_last => {
            Some(Fusion::MaskedGrad { dropout: Some((ext(1, 1)?, d.rate)), relu_y: None })
        }
        _ => None,
    }
}
