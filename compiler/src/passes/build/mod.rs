//! Build: from the parsed graph file to the IR. Each declared layer becomes its op node, its
//! parameters and (for layers with a bias) a bias-add node; references between layers become edges.
//! The training settings are checked here too ([`settings`]), where the graph file is read.

mod settings;
mod spec;

use std::collections::HashMap;

use crate::ast::{self, Init, NodeDecl, OpDecl, ParamDecl, ParsedGraph};
use crate::catalog::{
    Add, BiasAdd, Conv2d, ConvAttrs, Dropout, Flatten, Input, Labels, Linear, Lrn, MaxPool, Op, Param,
    ParamRole, PoolAttrs, Relu, SoftmaxCrossEntropy,
};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, Layer, Node, Phase, ValueRef};

/// Builds the IR. Unknown or duplicate names are reported, all of them; what can be built is.
pub fn build(parsed: &ParsedGraph) -> (Graph, Diagnostics) {
    let file = &parsed.graph;
    let map = &parsed.source_map;
    let mut diags = Diagnostics::default();
    let mut graph = Graph {
        name: file.name.clone(),
        g: Default::default(),
        loss: None,
        logits: None,
        spec: spec::lower_spec(file),
        layers: Vec::new(),
        schedule: Vec::new(),
        devices: 1,
    };

    let input = &file.input;
    let input_node = graph.add_node(Node {
        name: input.name.clone(),
        op: Op::Input(Input { channels: input.channels, height: input.height, width: input.width }),
        outputs: Vec::new(),
        phase: Phase::Forward,
        loc: map.get("input"),
        device: 0,
    });

    // Names first, so that nodes may be declared in any order.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, decl) in file.nodes.iter().enumerate() {
        let loc = map.find(&[&format!("nodes[{i}].name"), &format!("nodes[{i}]")]);
        if decl.name == input.name {
            diags.push(
                Diagnostic::error(format!("node name `{}` is already the input's name", decl.name))
                    .at(loc)
                    .node(&decl.name)
                    .help("rename the node; every name in a graph file must be unique"),
            );
        } else if let Some(&first) = names.get(decl.name.as_str()) {
            let first_loc = map.get(&format!("nodes[{first}]"));
            let where_first =
                first_loc.map(|l| format!(" (first declared at line {})", l.line)).unwrap_or_default();
            diags.push(
                Diagnostic::error(format!("duplicate node name `{}`{where_first}", decl.name))
                    .at(loc)
                    .node(&decl.name)
                    .help("rename one of them; every name in a graph file must be unique"),
            );
        } else {
            names.insert(&decl.name, i);
        }
        if ["labels", "loss"].contains(&decl.name.as_str()) {
            diags.push(
                Diagnostic::error(format!("`{}` is a name the compiler gives its own node", decl.name))
                    .at(loc)
                    .node(&decl.name)
                    .help("rename the node; `labels` and `loss` are reserved"),
            );
        }
        if decl.name.contains(['.', '/', ':']) {
            diags.push(
                Diagnostic::error(format!("node name `{}` contains `.`, `/` or `:`", decl.name))
                    .at(loc)
                    .node(&decl.name)
                    .help("use letters, digits, `_` and `-`; the compiler uses `.`, `/` and `:` in the names it derives"),
            );
        }
        if decl.name.is_empty() {
            diags.push(
                Diagnostic::error("a node has an empty name")
                    .at(loc)
                    .help("give every node a short unique name such as \"conv1\""),
            );
        }
    }

    // Create each layer's nodes; remember the value each layer outputs.
    let mut outputs: HashMap<String, ValueRef> = HashMap::new();
    outputs.insert(input.name.clone(), ValueRef { node: input_node, port: 0 });
    let mut heads = Vec::new();
    for (i, decl) in file.nodes.iter().enumerate() {
        if names.get(decl.name.as_str()) != Some(&i) {
            heads.push(None);
            continue;
        }
        let loc = map.find(&[&format!("nodes[{i}].name"), &format!("nodes[{i}]")]);
        let layer = build_layer(&mut graph, decl, &file.defaults, loc);
        outputs.insert(decl.name.clone(), layer.output);
        heads.push(Some(graph.layers.len()));
        graph.layers.push(layer);
    }

    // Connect inputs.
    for (i, decl) in file.nodes.iter().enumerate() {
        let Some(layer_idx) = heads[i] else { continue };
        let head = graph.layers[layer_idx].nodes[0];
        let wired = graph.inputs(head).len();
        if let Some(arity) = graph.g[head].op.def().arity() {
            let expected = arity - wired;
            if decl.inputs.len() != expected {
                diags.push(
                    Diagnostic::error(format!(
                        "`{}` takes {expected} input(s), but {} are given",
                        graph.layers[layer_idx].op,
                        decl.inputs.len()
                    ))
                    .at(map.find(&[&format!("nodes[{i}].inputs"), &format!("nodes[{i}]")]))
                    .node(&decl.name)
                    .help(format!("list exactly {expected} name(s) in `inputs`")),
                );
                continue;
            }
        }
        for (port, input_name) in decl.inputs.iter().enumerate() {
            match outputs.get(input_name) {
                Some(&v) => graph.connect(v, head, port as u8),
                None => diags.push(unknown_name(
                    input_name,
                    &outputs,
                    map.find(&[&format!("nodes[{i}].inputs[{port}]"), &format!("nodes[{i}].inputs")]),
                    &decl.name,
                )),
            }
        }
    }

    // The loss reads the logits and the labels.
    let ast::LossDecl::SoftmaxCrossEntropy { logits } = &file.loss;
    let loss_loc = map.find(&["loss.logits", "loss"]);
    match outputs.get(logits) {
        Some(&v) => {
            let labels = graph.add_node(Node {
                name: "labels".into(),
                op: Op::Labels(Labels { classes: file.classes }),
                outputs: Vec::new(),
                phase: Phase::Forward,
                loc: None,
                device: 0,
            });
            let loss = graph.add_node(Node {
                name: "loss".into(),
                op: Op::SoftmaxCrossEntropy(SoftmaxCrossEntropy { classes: file.classes }),
                outputs: Vec::new(),
                phase: Phase::Forward,
                loc: loss_loc,
                device: 0,
            });
            graph.connect(v, loss, 0);
            graph.connect(ValueRef { node: labels, port: 0 }, loss, 1);
            graph.logits = Some(v);
            graph.loss = Some(ValueRef { node: loss, port: 0 });
        }
        None => diags.push(unknown_name(logits, &outputs, loss_loc, "loss")),
    }
    settings::check_settings(parsed, &mut diags);
    (graph, diags)
}

fn unknown_name(
    name: &str,
    known: &HashMap<String, ValueRef>,
    loc: Option<crate::diag::Loc>,
    node: &str,
) -> Diagnostic {
    let mut candidates: Vec<&String> = known.keys().collect();
    candidates.sort_by_key(|k| (edit_distance(k, name), k.to_string()));
    let help = match candidates.first() {
        Some(c) if edit_distance(c, name) <= 2 => format!("did you mean `{c}`?"),
        _ => "name a node declared in this file, or the input".to_string(),
    };
    Diagnostic::error(format!("input `{name}` names no node")).at(loc).node(node).help(help)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A parameter's settings: the node's own, else the graph's defaults, else the built-in ones.
fn resolve(decl: &ParamDecl, default: &ParamDecl, builtin: &ParamDecl) -> (crate::ir::Init, f64, f64) {
    (
        spec::lower_init(decl.init.or(default.init).or(builtin.init).unwrap_or(Init::Constant(0.0))),
        decl.lr_mult.or(default.lr_mult).or(builtin.lr_mult).unwrap_or(1.0),
        decl.decay_mult.or(default.decay_mult).or(builtin.decay_mult).unwrap_or(1.0),
    )
}

fn build_layer(
    graph: &mut Graph,
    decl: &NodeDecl,
    defaults: &ast::ParamDefaults,
    loc: Option<crate::diag::Loc>,
) -> Layer {
    let node =
        |name: String, op: Op| Node { name, op, outputs: Vec::new(), phase: Phase::Forward, loc, device: 0 };
    let (op, op_name, weight, bias) = match &decl.op {
        OpDecl::Conv2d(c) => (
            Op::Conv2d(Conv2d(ConvAttrs {
                out_channels: c.out_channels,
                kernel: c.kernel,
                stride: c.stride,
                padding: c.padding,
                groups: c.groups,
                algo: None,
            })),
            "Conv2d",
            Some(&c.weight),
            c.use_bias.then_some(&c.bias),
        ),
        OpDecl::Linear(l) => (
            Op::Linear(Linear { out_features: l.out_features, in_features: l.in_features }),
            "Linear",
            Some(&l.weight),
            l.use_bias.then_some(&l.bias),
        ),
        OpDecl::Relu => (Op::Relu(Relu), "Relu", None, None),
        OpDecl::Lrn(l) => (
            Op::Lrn(Lrn {
                size: l.size,
                alpha: l.alpha,
                beta: l.beta,
                k: l.k,
                convention: spec::lower_convention(l.convention),
            }),
            "Lrn",
            None,
            None,
        ),
        OpDecl::MaxPool(p) => (
            Op::MaxPool(MaxPool {
                attrs: PoolAttrs { kernel: p.kernel, stride: p.stride, padding: p.padding },
                argmax: false,
            }),
            "MaxPool",
            None,
            None,
        ),
        OpDecl::Dropout(d) => (Op::Dropout(Dropout { rate: d.rate, training: false }), "Dropout", None, None),
        OpDecl::Flatten => (Op::Flatten(Flatten), "Flatten", None, None),
        OpDecl::Add => (Op::Add(Add), "Add", None, None),
    };
    let head = graph.add_node(node(decl.name.clone(), op));
    let mut nodes = vec![head];
    let mut params = Vec::new();
    let mut param = |graph: &mut Graph, role: ParamRole, d: &ParamDecl, dflt: &ParamDecl| {
        let builtin = match role {
            ParamRole::Weight => ast::ParamDefaults::builtin_weight(),
            ParamRole::Bias => ast::ParamDefaults::builtin_bias(),
        };
        let (init, lr_mult, decay_mult) = resolve(d, dflt, &builtin);
        let suffix = match role {
            ParamRole::Weight => "weight",
            ParamRole::Bias => "bias",
        };
        let p = graph.add_node(node(
            format!("{}.{suffix}", decl.name),
            Op::Param(Param { shape: Vec::new(), fan_in: 0, role, init, lr_mult, decay_mult }),
        ));
        params.push(p);
        ValueRef { node: p, port: 0 }
    };
    if let Some(w) = weight {
        let w = param(graph, ParamRole::Weight, w, &defaults.weight);
        graph.connect(w, head, 1);
    }
    let mut output = ValueRef { node: head, port: 0 };
    if let Some(b) = bias {
        let b = param(graph, ParamRole::Bias, b, &defaults.bias);
        let add = graph.add_node(node(format!("{}.bias_add", decl.name), Op::BiasAdd(BiasAdd)));
        graph.connect(output, add, 0);
        graph.connect(b, add, 1);
        nodes.push(add);
        output = ValueRef { node: add, port: 0 };
    }
    Layer { name: decl.name.clone(), op: op_name.into(), output, nodes, params }
}
