//! Precision: mixed precision as TVM's `ToMixedPrecision` and XLA's bf16 normalization do it, as
//! one pass over the typed step. With `--precision bf16` the forward and backward passes compute
//! in bf16; the parameters and their momentum stay f32 (the master copies), and so do the loss
//! and the softmax, the gradients' sums over the batch (weight and bias gradients, which the
//! catalog's shape rules make f32 whatever they read), the all-reduce and the SGD update.
//!
//! In topological order, each computing node gets the type each of its float inputs should have:
//! the low type; f32 for the update and the all-reduce; a weight or a bias as its f32 master where
//! the catalog says the kernel converts it as it reads it (`reads_f32_master`: a product packs its
//! weight anyway, so no bf16 copy of the weights is kept through the step); any float for the
//! loss. Where a value's type differs, a `cast` node is put between, one per value, type and
//! device, shared by all its readers. Then the node's outputs are typed again by its shape rule.
//! The casts are explicit nodes, visible in the dumps and the plan (in a bf16 step: the input
//! batch and the loss gradient); they are elementwise, so fusion folds one into the epilogue of the
//! group that produces its input where there is one.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::catalog::{Cast, Op};
use crate::diag::Diagnostics;
use crate::ir::{DType, Edge, Graph, Node, Precision, ValueRef};

/// Gives every value of `graph` its type in `precision`, with casts where types meet; records the
/// precision in the graph's spec. An f16 training step gets loss scaling first
/// ([`super::loss_scale`]).
pub fn apply_precision(graph: &mut Graph, precision: Precision) -> Diagnostics {
    if precision == Precision::F16 {
        let d = super::loss_scale::insert_loss_scaling(graph);
        if d.has_errors() {
            return d;
        }
    }
    graph.spec.precision = precision;
    if precision == Precision::F32 {
        return Diagnostics::default();
    }
    let low = precision.dtype();
    let mut casts: HashMap<(ValueRef, DType, u8), ValueRef> = HashMap::new();
    for n in graph.topo_order() {
        if graph.g[n].op.def().is_source() {
            continue;
        }
        let inputs = graph.inputs(n);
        for (port, v) in inputs.iter().enumerate() {
            let Some(have) = graph.value_type(*v).map(|t| t.dtype) else { continue };
            if !have.is_float() {
                continue;
            }
            let want = wanted(graph, n, port, have, low);
            if want != have {
                let device = graph.g[n].device;
                let cast = match casts.get(&(*v, want, device)) {
                    Some(&c) => c,
                    None => {
                        let c = add_cast(graph, *v, want, n);
                        casts.insert((*v, want, device), c);
                        c
                    }
                };
                rewire(graph, n, port as u8, cast);
            }
        }
        retype(graph, n);
    }
    Diagnostics::default()
}

/// The type node `n` should read its float input `port` in, which is now `have`.
fn wanted(graph: &Graph, n: NodeIndex, port: usize, have: DType, low: DType) -> DType {
    match &graph.g[n].op {
        // The update, the all-reduce and the loss scaling work on the f32 master copies and f32
        // gradients.
        Op::SgdUpdate(_) | Op::AllReduceMean(_) | Op::ScaleLossGrad(_) | Op::UnscaleGrads(_) => DType::F32,
        // A weight or a bias is read as its f32 master, converted by the kernel as it reads it;
        // the loss and its gradient compute in f32 from any float; a cast or a move keeps what it
        // is given.
        op if have == DType::F32 && op.def().reads_f32_master(port) => have,
        Op::SoftmaxCrossEntropy(_) | Op::SoftmaxCrossEntropyGrad(_) | Op::Cast(_) => have,
        Op::Transfer(_) | Op::Slice(_) | Op::Concat(_) | Op::Pad(_) | Op::Flatten(_) | Op::Reshape(_) => have,
        // A sum of gradients keeps f32 where a term is f32 (a parameter's gradients).
        Op::Add(_) | Op::AddN(_) => {
            let any_f32 =
                graph.inputs(n).iter().any(|v| graph.value_type(*v).is_some_and(|t| t.dtype == DType::F32));
            if any_f32 {
                DType::F32
            } else {
                low
            }
        }
        _ => low,
    }
}

/// A cast of `v` to `to` for `reader`, on its device and in its phase.
fn add_cast(graph: &mut Graph, v: ValueRef, to: DType, reader: NodeIndex) -> ValueRef {
    let from = graph.value_type(v).cloned().expect("a typed value");
    let name = format!("{}/{}", graph.value_name(v).replace(':', "."), to.name());
    let (phase, device) = (graph.g[reader].phase, graph.g[reader].device);
    let node = graph.add_node(Node {
        name,
        op: Op::Cast(Cast { to }),
        outputs: vec![from.with_dtype(to)],
        phase,
        loc: None,
        device,
    });
    graph.connect(v, node, 0);
    ValueRef { node, port: 0 }
}

/// Makes input `port` of `n` read `value`.
pub(super) fn rewire(graph: &mut Graph, n: NodeIndex, port: u8, value: ValueRef) {
    let old: Vec<_> = graph
        .g
        .edges_directed(n, Direction::Incoming)
        .filter(|e| e.weight().dst_port == port)
        .map(|e| e.id())
        .collect();
    for e in old {
        graph.g.remove_edge(e);
    }
    graph.g.add_edge(value.node, n, Edge { src_port: value.port, dst_port: port });
}

/// Types `n`'s outputs again by its shape rule, from its inputs' types now.
fn retype(graph: &mut Graph, n: NodeIndex) {
    let types: Option<Vec<_>> = graph.inputs(n).iter().map(|v| graph.value_type(*v).cloned()).collect();
    let Some(types) = types else { return };
    let refs: Vec<_> = types.iter().collect();
    // A rule that refuses is left to the verifier, which reports it with the pass's name.
    if let Ok(inferred) = graph.g[n].op.def().infer(&refs) {
        graph.g[n].outputs = inferred.outputs;
    }
}
