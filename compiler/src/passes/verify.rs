//! Verify: after the backward graph is derived, re-checks every node's types against its shape
//! rule, and that every parameter's gradient and momentum have the parameter's type.

use crate::catalog::Op;
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, TensorType};

pub fn verify(graph: &Graph) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for n in graph.node_indices() {
        let node = &graph.g[n];
        let inputs: Vec<TensorType> =
            graph.inputs(n).iter().filter_map(|v| graph.value_type(*v).cloned()).collect();
        let refs: Vec<&TensorType> = inputs.iter().collect();
        let internal = |m: String| {
            Diagnostic::error(m).node(&node.name).help("this is a compiler bug; please report it")
        };
        match node.op.def().infer(&refs) {
            Ok(inferred) if inferred.outputs == node.outputs => {}
            Ok(inferred) => diags.push(internal(format!(
                "`{}` holds types {:?} but its shape rule gives {:?}",
                node.name, node.outputs, inferred.outputs
            ))),
            Err(e) => diags.push(internal(format!("`{}` fails its shape rule: {}", node.name, e.message))),
        }
        if let Op::SgdUpdate(_) = node.op {
            let ins = graph.inputs(n);
            let (p, g) = (graph.value_type(ins[0]), graph.value_type(ins[1]));
            if p != g {
                diags.push(internal(format!(
                    "the gradient of `{}` has type {:?}, the parameter {:?}",
                    graph.value_name(ins[0]),
                    g,
                    p
                )));
            }
        }
    }
    diags
}
