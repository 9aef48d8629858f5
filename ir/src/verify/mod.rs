//! The verifier: the invariants the IR holds between passes, checked after every pass by the
//! compiler and on every plan the runtime reads, as Cranelift's verifier runs after each of its
//! passes. It reports every violation it finds, each with the entity it concerns (a node, an edge,
//! a schedule step, a buffer), never only the first.
//!
//! - [`structure`]: edges join existing ports; every node reads input ports `0..arity` once each;
//!   fused nodes' steps read existing inputs and earlier steps; the loss, logits and layers name
//!   existing values;
//! - [`types`]: each node's output types are what its op's shape rule gives for its inputs' types
//!   (element types included), and each optimizer update's gradient has its parameter's type;
//! - [`devices`]: every node on one of the graph's devices (the input of a placed step on the
//!   host), and once the transfers are placed every edge between two devices through a transfer
//!   that says so;
//! - [`schedule`]: once scheduled, every computed node runs once, after its producers and after
//!   every reader of a value an update overwrites;
//! - [`memory`]: a memory plan's buffers lie inside the arena, each value lives in its buffer
//!   from its producer's step to its last reader's, and no two buffers share bytes while both
//!   are live.

mod devices;
mod memory;
mod schedule;
mod structure;
mod types;

use std::fmt;

use petgraph::stable_graph::NodeIndex;

use crate::ir::Graph;
use crate::memory::MemoryPlan;

/// What the graph must hold at a point of the pipeline, beyond what it always holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stage {
    /// Shape inference has run: every node has its output types.
    pub typed: bool,
    /// The placement's transfers are in: every edge between two devices goes through one. (Between
    /// splitting a step into towers and placing the transfers, edges cross devices directly.)
    pub transferred: bool,
    /// The schedule pass has run: `graph.schedule` runs every computed node.
    pub scheduled: bool,
}

impl Stage {
    /// A graph as a plan file holds it: typed, its transfers in place, scheduled.
    pub const PLANNED: Stage = Stage { typed: true, transferred: true, scheduled: true };
}

/// One broken invariant: what it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The node it concerns, if one.
    pub node: Option<NodeIndex>,
    /// The entity in words: ``node 12 (`relu1`)``, `schedule step 3`, `buffer 4`, `the loss`.
    pub entity: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.entity, self.message)
    }
}

/// Every violation found, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    fn node(&mut self, graph: &Graph, n: NodeIndex, message: impl Into<String>) {
        self.0.push(Violation { node: Some(n), entity: node_name(graph, n), message: message.into() });
    }

    fn other(&mut self, entity: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation { node: None, entity: entity.into(), message: message.into() });
    }

    /// `Ok` when there are none.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// A node in words, as violations name it: ``node 12 (`relu1`)``.
pub fn node_name(graph: &Graph, n: NodeIndex) -> String {
    match graph.g.node_weight(n) {
        Some(node) => format!("node {} (`{}`)", n.index(), node.name),
        None => format!("node {}", n.index()),
    }
}

/// The graph's invariants at `stage`: structure, types (once typed), devices and schedule (once
/// scheduled). A node whose inputs are broken is not type-checked too (the finding would only
/// repeat), and nothing that walks edges runs over an edge to a missing node.
pub fn verify_graph(graph: &Graph, stage: Stage) -> Result<(), Violations> {
    let mut found = Violations::default();
    let broken = structure::check(graph, stage, &mut found);
    if broken.edges {
        return found.into_result();
    }
    if stage.typed {
        types::check(graph, &broken.nodes, &mut found);
    }
    devices::check(graph, stage, &mut found);
    schedule::check(graph, stage, &mut found);
    found.into_result()
}

/// A memory plan's invariants against the scheduled graph it was made for; `device`, for one
/// device's plan of a placed step, the device whose values it holds.
pub fn verify_memory(graph: &Graph, plan: &MemoryPlan, device: Option<u8>) -> Result<(), Violations> {
    let mut found = Violations::default();
    memory::check(graph, plan, device, &mut found);
    found.into_result()
}
