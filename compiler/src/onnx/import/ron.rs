//! The imported graph as graph-file text (graphs/README.md's language), one node a line, in the
//! style of the shipped graphs; what the model did not say (the training settings, for another
//! tool's model) is filled with defaults that a comment names.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::LayerDecl;
use crate::catalog::{Op, Param};
use crate::ir::{
    Init, Lighting, LrnConvention, Mean, Optimizer, PcaBasis, Schedule, TestCrops, TrainingSpec,
};

/// What the file says.
pub struct GraphText<'a> {
    pub source: &'a str,
    pub name: &'a str,
    pub input: (&'a str, usize, usize, usize),
    pub classes: usize,
    pub layers: &'a [LayerDecl],
    pub logits: &'a str,
    /// The training settings an export carried; `None` for defaults.
    pub spec: Option<&'a TrainingSpec>,
    /// Each parameter's initialiser and multipliers, as an export carried them.
    pub params: &'a BTreeMap<String, Param>,
}

fn num(v: f64) -> String {
    format!("{v:?}")
}

fn init(i: &Init) -> String {
    match *i {
        Init::Constant(c) => format!("Constant({})", num(c)),
        Init::Normal { mean, std } => format!("Normal(mean: {}, std: {})", num(mean), num(std)),
        Init::Uniform { low, high } => format!("Uniform(low: {}, high: {})", num(low), num(high)),
        Init::KaimingUniform => "KaimingUniform".into(),
    }
}

fn param(p: &Param) -> String {
    format!("(init: {}, lr_mult: {}, decay_mult: {})", init(&p.init), num(p.lr_mult), num(p.decay_mult))
}

/// A layer's op in graph-file syntax.
fn op(l: &LayerDecl, params: &BTreeMap<String, Param>) -> String {
    let mut extra = String::new();
    if matches!(l.op, Op::Conv2d(_) | Op::Linear(_)) {
        if l.bias.is_none() {
            extra += ", use_bias: false";
        }
        for role in ["weight", "bias"] {
            if let Some(p) = params.get(&format!("{}.{role}", l.name)) {
                let _ = write!(extra, ", {role}: {}", param(p));
            }
        }
    }
    match &l.op {
        Op::Conv2d(c) => {
            let a = &c.0;
            let mut s = format!("Conv2d(out_channels: {}, kernel: {}", a.out_channels, a.kernel);
            for (k, v, default) in
                [("stride", a.stride, 1), ("padding", a.padding, 0), ("groups", a.groups, 1)]
            {
                if v != default {
                    let _ = write!(s, ", {k}: {v}");
                }
            }
            format!("{s}{extra})")
        }
        Op::Linear(li) => {
            let inf = li.in_features.map(|f| format!(", in_features: {f}")).unwrap_or_default();
            format!("Linear(out_features: {}{inf}{extra})", li.out_features)
        }
        Op::Lrn(r) => format!(
            "Lrn(size: {}, alpha: {}, beta: {}, k: {}, convention: {})",
            r.size,
            num(r.alpha),
            num(r.beta),
            num(r.k),
            if r.convention == LrnConvention::Paper { "Paper" } else { "Caffe" }
        ),
        Op::MaxPool(p) => {
            let pad =
                if p.attrs.padding > 0 { format!(", padding: {}", p.attrs.padding) } else { String::new() };
            format!("MaxPool(kernel: {}, stride: {}{pad})", p.attrs.kernel, p.attrs.stride)
        }
        Op::Dropout(d) => format!("Dropout(rate: {})", num(d.rate)),
        Op::Relu(_) => "Relu".into(),
        Op::Flatten(_) => "Flatten".into(),
        Op::Add(_) => "Add".into(),
        other => format!("{other:?}"),
    }
}

fn spec_text(s: &TrainingSpec) -> String {
    let Optimizer::Sgd { lr, momentum, weight_decay } = s.optimizer;
    let mut t = format!(
        "    optimizer: Sgd(lr: {}, momentum: {}, weight_decay: {}),\n",
        num(lr),
        num(momentum),
        num(weight_decay)
    );
    t += &match s.schedule {
        Schedule::Constant => "    schedule: Constant,\n".to_string(),
        Schedule::Step { factor, every_epochs } => {
            format!("    schedule: Step(factor: {}, every_epochs: {every_epochs}),\n", num(factor))
        }
        Schedule::Plateau { factor, patience, max_reductions } => format!(
            "    schedule: Plateau(factor: {}, patience: {patience}, max_reductions: {max_reductions}),\n",
            num(factor)
        ),
    };
    let tr = &s.training;
    let _ = writeln!(
        t,
        "    training: (batch_size: {}, epochs: {}, seed: {}),",
        tr.batch_size, tr.epochs, tr.seed
    );
    if let Some(d) = &s.data {
        let lighting = match &d.lighting {
            Lighting::None => "None".to_string(),
            Lighting::Pca { std, basis } => format!(
                "Pca(std: {}, basis: {})",
                num(*std),
                if *basis == PcaBasis::ImageNet { "ImageNet" } else { "Dataset" }
            ),
        };
        let mean = match &d.mean {
            Mean::Rgb([r, g, b]) => format!("Rgb({}, {}, {})", num(*r), num(*g), num(*b)),
            Mean::Dataset => "Dataset".into(),
        };
        let std = d.std.map(|[r, g, b]| format!("        std: ({}, {}, {}),\n", num(r), num(g), num(b)));
        let _ = write!(
            t,
            "    data: (\n        resize_short_side: {},\n        center_crop: {},\n        random_crop: {},\n        horizontal_flip: {},\n        lighting: {lighting},\n        mean: {mean},\n{}        test_crops: {},\n    ),\n",
            d.resize_short_side,
            d.center_crop,
            d.random_crop,
            d.horizontal_flip,
            std.unwrap_or_default(),
            if d.test_crops == TestCrops::Ten { "Ten" } else { "Center" }
        );
    }
    t
}

/// The graph file.
pub fn write(g: &GraphText<'_>) -> String {
    let mut t = format!("// Imported by `alexc import` from {}.\n", g.source);
    if g.spec.is_none() {
        t += "// The model carries no training settings: the optimizer, schedule and batch size below are\n\
              // defaults (SGD as in the paper), the initialisers PyTorch's, and there is no `data` section\n\
              // (alexrt then resizes images to the input and normalises as torchvision does).\n";
    }
    let (input, c, h, w) = g.input;
    let _ = write!(
        t,
        "Graph(\n    name: \"{}\",\n    input: (name: \"{input}\", channels: {c}, height: {h}, width: {w}),\n    classes: {},\n",
        g.name, g.classes
    );
    if g.spec.is_none() {
        t += "    defaults: (weight: (init: KaimingUniform), bias: (init: KaimingUniform)),\n";
    }
    t += "    nodes: [\n";
    for l in g.layers {
        let inputs: Vec<String> = l.inputs.iter().map(|i| format!("\"{i}\"")).collect();
        let _ = writeln!(
            t,
            "        (name: \"{}\", op: {}, inputs: [{}]),",
            l.name,
            op(l, g.params),
            inputs.join(", ")
        );
    }
    t += "    ],\n";
    let _ = writeln!(t, "    loss: SoftmaxCrossEntropy(logits: \"{}\"),", g.logits);
    match g.spec {
        Some(s) => t += &spec_text(s),
        None => {
            t += "    optimizer: Sgd(lr: 0.01, momentum: 0.9, weight_decay: 0.0005),\n";
            t += "    training: (batch_size: 128, epochs: 90, seed: 0),\n";
        }
    }
    t += ")\n";
    t
}
