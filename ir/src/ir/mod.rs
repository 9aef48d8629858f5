//! The one IR of the whole pipeline: a petgraph `StableDiGraph` whose nodes are ops and whose edges
//! carry values from an output port of one node to an input port of another.
//!
//! The IR owns its types: the value types (`crate::value`) and the training specification
//! (`crate::spec`) are re-exported here, and no AST type reaches past the `build` pass.

mod dot;
mod order;
mod print;
mod read;

pub use dot::to_dot;
pub use print::print_graph;
pub use read::{read_graph, ReadError};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use crate::catalog::Op;
use crate::diag::Loc;
pub use crate::spec::{
    DataPipeline, Init, Lighting, LrnConvention, Mean, Optimizer, PcaBasis, Precision, Schedule, TestCrops,
    Training, TrainingSpec,
};
pub use crate::value::{DType, TensorType, ValueRef};

/// Which part of a training step a node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    Forward,
    Backward,
    Update,
}

/// One op in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// The types of its outputs, once shapes are inferred.
    pub outputs: Vec<TensorType>,
    pub phase: Phase,
    /// Where the graph file declares it.
    pub loc: Option<Loc>,
    /// The device it runs on, `0..graph.devices` (0 unless the placement pass ran); its outputs
    /// live there. The input batch of a placed step is on the host, [`HOST`].
    pub device: u8,
}

/// The `device` of a value held on the host (the input batch of a placed step).
pub use crate::catalog::HOST;

/// A value flowing along an edge: output `src_port` of the source feeds input `dst_port` of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub src_port: u8,
    pub dst_port: u8,
}

/// Whether the step being compiled trains or only infers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Train,
    Infer,
}

/// The IR: the dataflow graph and what travels with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Graph {
    pub name: String,
    pub g: StableDiGraph<Node, Edge>,
    /// The scalar loss, once the loss is built.
    pub loss: Option<ValueRef>,
    /// The logits (the network's output).
    pub logits: Option<ValueRef>,
    pub spec: TrainingSpec,
    /// The layers the graph file declares, in file order, for reports.
    pub layers: Vec<Layer>,
    /// The execution order, once scheduled.
    pub schedule: Vec<NodeIndex>,
    /// How many devices the step is placed on (1 unless the placement pass ran).
    pub devices: u8,
}

/// One declared layer: its name, the nodes it became and the value it outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    /// The op as the graph file names it (`Conv2d`, `Relu`, ...).
    pub op: String,
    pub output: ValueRef,
    pub nodes: Vec<NodeIndex>,
    pub params: Vec<NodeIndex>,
}

impl Graph {
    pub fn add_node(&mut self, node: Node) -> NodeIndex {
        self.g.add_node(node)
    }

    pub fn connect(&mut self, from: ValueRef, to: NodeIndex, dst_port: u8) {
        self.g.add_edge(from.node, to, Edge { src_port: from.port, dst_port });
    }

    /// Makes `new` stand for `old`: every reader of `old` outside `keep` reads `new` instead (its
    /// edge from `old` goes), and the loss, logits and layer outputs that were `old` become `new`.
    /// (A pass that replaces nodes calls this, then removes the old ones; one that puts a node
    /// between a value and its readers keeps that node.)
    pub fn redirect(&mut self, old: ValueRef, new: ValueRef, keep: &[NodeIndex]) {
        let uses: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().src_port == old.port && !keep.contains(&e.target()))
            .map(|e| (e.id(), e.target(), e.weight().dst_port))
            .collect();
        for (edge, target, dst_port) in uses {
            self.g.remove_edge(edge);
            self.connect(new, target, dst_port);
        }
        for r in [&mut self.loss, &mut self.logits] {
            if *r == Some(old) {
                *r = Some(new);
            }
        }
        for layer in &mut self.layers {
            if layer.output == old {
                layer.output = new;
            }
        }
    }

    /// The values a node reads, in input-port order.
    pub fn inputs(&self, n: NodeIndex) -> Vec<ValueRef> {
        let mut ins: Vec<(u8, ValueRef)> = self
            .g
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().dst_port, ValueRef { node: e.source(), port: e.weight().src_port }))
            .collect();
        ins.sort_by_key(|(p, _)| *p);
        ins.into_iter().map(|(_, v)| v).collect()
    }

    /// The nodes that read value `v`, each once, in index order.
    pub fn consumers(&self, v: ValueRef) -> Vec<NodeIndex> {
        let mut cs: Vec<NodeIndex> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().src_port == v.port)
            .map(|e| e.target())
            .collect();
        cs.sort();
        cs.dedup();
        cs
    }

    pub fn value_type(&self, v: ValueRef) -> Option<&TensorType> {
        self.g[v.node].outputs.get(v.port as usize)
    }

    /// A value's display name: `node` for port 0, `node:port` otherwise.
    pub fn value_name(&self, v: ValueRef) -> String {
        let n = &self.g[v.node].name;
        if v.port == 0 {
            n.clone()
        } else {
            format!("{n}:{}", v.port)
        }
    }

    /// All values (every output port of every node), in node-index order.
    pub fn values(&self) -> Vec<ValueRef> {
        let mut vs = Vec::new();
        for n in self.node_indices() {
            for p in 0..self.g[n].outputs.len() {
                vs.push(ValueRef { node: n, port: p as u8 });
            }
        }
        vs
    }

    /// Node indices in ascending order (stable across removals).
    pub fn node_indices(&self) -> Vec<NodeIndex> {
        let mut ns: Vec<NodeIndex> = self.g.node_indices().collect();
        ns.sort();
        ns
    }

    /// A topological order; ties broken by node index so that it is deterministic.
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        let mut indeg: std::collections::BTreeMap<NodeIndex, usize> = self
            .node_indices()
            .into_iter()
            .map(|n| (n, self.g.neighbors_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: std::collections::BTreeSet<NodeIndex> =
            indeg.iter().filter(|(_, d)| **d == 0).map(|(n, _)| *n).collect();
        let mut order = Vec::new();
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).expect("node present");
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        order
    }

    /// The declared layer that `n` belongs to (as one of its nodes or its parameters), if any:
    /// the compiler's own nodes (labels, loss) and the backward and update nodes belong to none.
    pub fn layer_of(&self, n: NodeIndex) -> Option<&Layer> {
        self.layers.iter().find(|l| l.nodes.contains(&n) || l.params.contains(&n))
    }

    /// Finds a node by name.
    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        self.g.node_indices().find(|&n| self.g[n].name == name)
    }

    /// The scheduled nodes of one device, in schedule order.
    pub fn device_schedule(&self, device: u8) -> Vec<NodeIndex> {
        self.schedule.iter().copied().filter(|&n| self.g[n].device == device).collect()
    }

    /// Nodes that are computed each step (not parameters, optimizer state or fed inputs).
    pub fn compute_nodes(&self) -> Vec<NodeIndex> {
        self.node_indices().into_iter().filter(|&n| !self.g[n].op.def().is_source()).collect()
    }
}
