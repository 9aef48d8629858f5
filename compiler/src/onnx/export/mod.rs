//! Export: an inference graph with its weights as one ONNX model (opset 17). The graph is the
//! forward part of the IR (a graph file's, or a plan's with its fused nodes written back as their
//! parts, [`unfuse`]); each op is translated by the table in [`ops`]; the weights become
//! initializers under the graph's parameter names; what ONNX cannot say (the preprocessing, the
//! class names, the training settings, dropout) goes in `metadata_props` ([`crate::onnx::metadata`]).

mod ops;
mod unfuse;

pub use unfuse::unfuse;

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use super::error::OnnxError;
use super::proto::*;
use super::tensor::f32_tensor;
use super::weights::Weights;
use crate::catalog::Op;
use crate::ir::{Graph, Phase, ValueRef};
use ops::Emitted;

/// The ONNX opset the exporter writes, and the IR version that goes with it.
pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;

/// Names values and remembers which bias adds a `Conv` or `Gemm` has taken in.
pub struct Exporter<'a> {
    pub graph: &'a Graph,
    pub file: String,
    pub initializers: Vec<TensorProto>,
    aliases: HashMap<ValueRef, String>,
    folded: HashSet<NodeIndex>,
}

impl Exporter<'_> {
    /// A value's ONNX name: the layer it is the output of (`conv1`), else its IR name.
    pub fn value(&self, v: ValueRef) -> String {
        if let Some(a) = self.aliases.get(&v) {
            return a.clone();
        }
        match self.graph.layers.iter().find(|l| l.output == v) {
            Some(l) => l.name.clone(),
            None => self.graph.value_name(v),
        }
    }

    pub fn output(&self, n: NodeIndex) -> String {
        self.value(ValueRef { node: n, port: 0 })
    }

    /// The ONNX node name of IR node `n`: its layer's name, else its own.
    pub fn layer_name(&self, n: NodeIndex) -> String {
        self.graph.layer_of(n).map(|l| l.name.clone()).unwrap_or_else(|| self.graph.g[n].name.clone())
    }

    /// `inputs` with the bias of the bias add that alone reads `n`'s output, if there is one (it
    /// is folded in), and the name of the result.
    pub fn with_bias(&mut self, n: NodeIndex, mut inputs: Vec<String>) -> (Vec<String>, String) {
        let out = ValueRef { node: n, port: 0 };
        if let [b] = self.graph.consumers(out).as_slice() {
            let bias = self.graph.inputs(*b);
            let is_param = |v: &ValueRef| matches!(self.graph.g[v.node].op, Op::Param(_));
            if matches!(self.graph.g[*b].op, Op::BiasAdd(_)) && bias.len() == 2 && is_param(&bias[1]) {
                self.folded.insert(*b);
                inputs.push(self.value(bias[1]));
                return (inputs, self.output(*b));
            }
        }
        (inputs, self.value(out))
    }

    pub fn folded(&self, n: NodeIndex) -> bool {
        self.folded.contains(&n)
    }
}

fn tensor_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension { dim_value: Some(*v as i64), dim_param: None },
            None => Dimension { dim_value: None, dim_param: Some("N".into()) },
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// The ONNX model of the forward part of `graph` (unfused) with `weights` and `metadata`.
/// `file` names the graph or plan in errors; `weights_file` the weights.
pub fn export(
    graph: &Graph,
    weights: &Weights,
    metadata: Vec<(String, String)>,
    file: &str,
) -> Result<ModelProto, OnnxError> {
    let mut ex = Exporter {
        graph,
        file: file.to_string(),
        initializers: Vec::new(),
        aliases: HashMap::new(),
        folded: HashSet::new(),
    };
    let mut nodes = Vec::new();
    let mut inputs = Vec::new();
    for n in graph.topo_order() {
        let node = &graph.g[n];
        if node.phase != Phase::Forward {
            continue;
        }
        match &node.op {
            Op::Input(i) => {
                let dims = [None, Some(i.channels), Some(i.height), Some(i.width)];
                inputs.push(tensor_info(&node.name, &dims));
            }
            Op::Param(p) => {
                let values = weights.get(&node.name, &p.shape)?;
                ex.initializers.push(f32_tensor(&node.name, &p.shape, &values));
            }
            _ => {}
        }
        match ops::emit(&mut ex, n)? {
            Emitted::Nodes(ns) => nodes.extend(ns),
            Emitted::Alias(v) => {
                let name = ex.value(v);
                ex.aliases.insert(ValueRef { node: n, port: 0 }, name);
            }
            Emitted::Nothing => {}
        }
    }
    let logits = graph
        .logits
        .ok_or_else(|| OnnxError::new(file, "the graph has no logits", "recompile the graph").internal())?;
    let output = tensor_info(&ex.value(logits), &[None, Some(graph.spec.classes)]);
    let opset = OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![opset],
        producer_name: Some("alexc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("`{}` exported by alexc from {file}", graph.name)),
        graph: Some(GraphProto {
            node: nodes,
            name: Some(graph.name.clone()),
            initializer: ex.initializers,
            input: inputs,
            output: vec![output],
            ..Default::default()
        }),
        metadata_props: metadata
            .into_iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k), value: Some(v) })
            .collect(),
    })
}
