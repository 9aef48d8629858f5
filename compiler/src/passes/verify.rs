//! The verifier after a pass: [`alexir::verify`]'s checks of the IR the pass left, each violation
//! an internal error that names the pass and the entity. The driver runs it after every pass
//! (`lib.rs`), so a pass that breaks an invariant is caught where it did so, not passes later.

use alexir::verify::{verify_graph, verify_memory, Stage};

use super::PassName;
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::Graph;
use crate::memory::MemoryPlan;

/// What the IR must hold after `pass`: typed from shape inference on, its device transfers in from
/// placement on, scheduled from the schedule pass on.
pub fn stage_after(pass: PassName) -> Stage {
    Stage {
        typed: pass >= PassName::InferShapes,
        transferred: pass >= PassName::Place,
        scheduled: pass >= PassName::Schedule,
    }
}

/// Every violation of the IR's invariants after `pass`, with the memory plans it made (the
/// step's, then each device's), as internal errors.
pub fn verify_after(pass: PassName, graph: &Graph, memory: &[(Option<u8>, &MemoryPlan)]) -> Diagnostics {
    let mut found = verify_graph(graph, stage_after(pass)).err().unwrap_or_default();
    if found.is_empty() {
        for &(device, m) in memory {
            if let Err(v) = verify_memory(graph, m, device) {
                found.0.extend(v.0);
            }
        }
    }
    let mut diags = Diagnostics::default();
    for v in found.iter() {
        let mut d = Diagnostic::internal(format!("after the `{}` pass, {v}", pass.as_str())).help(
            "this is a compiler bug: the pass left the IR broken; please report it with the graph file",
        );
        if let Some(node) = v.node.and_then(|n| graph.g.node_weight(n)) {
            d = d.node(&node.name);
        }
        diags.push(d);
    }
    diags
}
