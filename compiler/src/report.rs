//! Reports: the human summary table, the JSON report, and the per-value memory table.

use std::fmt::Write;

use serde::Serialize;

use crate::catalog::Op;
use crate::ir::{Graph, TensorType};
pub use crate::memory::memory_table;
use crate::memory::MemoryPlan;
pub use crate::units::{group, human_bytes};
use crate::Checked;

/// One declared layer's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    /// Per sample, without the batch dimension.
    pub output_shape: Vec<usize>,
    pub parameters: usize,
    pub macs: u64,
}

/// Memory figures of one step.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub batch_size: usize,
    pub naive_bytes: usize,
    pub lower_bound_bytes: usize,
    pub arena_bytes: usize,
    pub persistent_bytes: usize,
    /// Each device's figures, for a step placed on several devices (`--devices 2`); the figures
    /// above are then the placed step's on one device.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<MemoryReport>,
}

impl From<&MemoryPlan> for MemoryReport {
    fn from(m: &MemoryPlan) -> Self {
        MemoryReport {
            batch_size: m.batch_size,
            naive_bytes: m.naive_bytes,
            lower_bound_bytes: m.lower_bound_bytes,
            arena_bytes: m.arena_bytes,
            persistent_bytes: m.persistent_bytes,
            devices: Vec::new(),
        }
    }
}

impl From<&crate::Lowered> for MemoryReport {
    fn from(l: &crate::Lowered) -> Self {
        MemoryReport {
            devices: l.device_memory.iter().map(MemoryReport::from).collect(),
            ..(&l.memory).into()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReports {
    pub train: MemoryReport,
    pub infer: MemoryReport,
}

/// What `alexc compile --report json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub graph: String,
    pub file: String,
    pub input_shape: Vec<usize>,
    pub classes: usize,
    pub parameters: usize,
    pub macs_per_image: u64,
    /// Bytes of every forward value of one image (f32), each in its own buffer.
    pub activation_bytes_per_image: usize,
    pub layers: Vec<LayerReport>,
    pub warnings: Vec<String>,
    pub nodes_before_fusion: usize,
    pub nodes_after_fusion: usize,
    pub memory: MemoryReports,
}

/// Figures of a checked (typed) graph.
pub fn analyse(checked: &Checked) -> (Vec<LayerReport>, usize, u64, usize) {
    let g = &checked.graph;
    let mut layers = Vec::new();
    for layer in &g.layers {
        let parameters: usize = layer
            .params
            .iter()
            .map(|&p| g.g[p].outputs.first().map_or(0, TensorType::elements_per_sample))
            .sum();
        let macs = layer.nodes.iter().map(|&n| node_macs(g, n)).sum();
        let output_shape = g.value_type(layer.output).map(|t| t.dims.clone()).unwrap_or_default();
        layers.push(LayerReport {
            name: layer.name.clone(),
            op: layer.op.clone(),
            output_shape,
            parameters,
            macs,
        });
    }
    let parameters = layers.iter().map(|l| l.parameters).sum();
    let macs = layers.iter().map(|l| l.macs).sum();
    let activation_bytes = g
        .node_indices()
        .into_iter()
        .filter(|&n| !g.g[n].op.def().is_source() && !g.g[n].op.def().is_view())
        .flat_map(|n| g.g[n].outputs.iter().filter(|t| t.batched).map(|t| t.bytes(1)))
        .sum();
    (layers, parameters, macs, activation_bytes)
}

fn node_macs(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> u64 {
    let ins: Vec<TensorType> = g.inputs(n).iter().filter_map(|v| g.value_type(*v).cloned()).collect();
    let refs: Vec<&TensorType> = ins.iter().collect();
    g.g[n].op.def().cost(&refs, &g.g[n].outputs).macs
}

pub fn build_report(checked: &Checked, train: &crate::Lowered, infer: &crate::Lowered) -> Report {
    let (layers, parameters, macs_per_image, activation_bytes_per_image) = analyse(checked);
    let input = checked
        .graph
        .node_indices()
        .into_iter()
        .find(|&n| matches!(checked.graph.g[n].op, Op::Input(_)))
        .and_then(|n| checked.graph.g[n].outputs.first().map(|t| t.dims.clone()))
        .unwrap_or_default();
    Report {
        graph: checked.graph.name.clone(),
        file: checked.file.clone(),
        input_shape: input,
        classes: checked.graph.spec.classes,
        parameters,
        macs_per_image,
        activation_bytes_per_image,
        layers,
        warnings: checked.warnings.0.iter().map(|d| d.to_string()).collect(),
        nodes_before_fusion: train.fusion.before,
        nodes_after_fusion: train.fusion.after,
        memory: MemoryReports { train: train.into(), infer: infer.into() },
    }
}

/// The human summary table.
pub fn summary_table(r: &Report) -> String {
    let mut out = String::new();
    let shape = |d: &[usize]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x");
    let _ = writeln!(out, "{} ({}): input {}, {} classes", r.graph, r.file, shape(&r.input_shape), r.classes);
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:>14} {:>12} {:>14}",
        "layer", "op", "output", "parameters", "MACs/image"
    );
    for l in &r.layers {
        let _ = writeln!(
            out,
            "{:<10} {:<9} {:>14} {:>12} {:>14}",
            l.name,
            l.op,
            shape(&l.output_shape),
            group(l.parameters as u64),
            group(l.macs)
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:<9} {:>14} {:>12} {:>14}",
        "total",
        "",
        "",
        group(r.parameters as u64),
        group(r.macs_per_image)
    );
    let _ = writeln!(out, "activations per image: {}", human_bytes(r.activation_bytes_per_image));
    let _ = writeln!(
        out,
        "nodes: {} before fusion, {} after (training step)",
        r.nodes_before_fusion, r.nodes_after_fusion
    );
    for (mode, m) in [("train", &r.memory.train), ("infer", &r.memory.infer)] {
        let over = 100.0 * (m.arena_bytes as f64 / m.lower_bound_bytes.max(1) as f64 - 1.0);
        let _ = writeln!(
            out,
            "memory {mode} @ batch {}: naive {}, lower bound {}, arena {} (+{over:.1}%), persistent {}",
            m.batch_size,
            human_bytes(m.naive_bytes),
            human_bytes(m.lower_bound_bytes),
            human_bytes(m.arena_bytes),
            human_bytes(m.persistent_bytes)
        );
        for (d, dm) in m.devices.iter().enumerate() {
            let _ = writeln!(
                out,
                "  device d{d}: lower bound {}, arena {}, persistent {}",
                human_bytes(dm.lower_bound_bytes),
                human_bytes(dm.arena_bytes),
                human_bytes(dm.persistent_bytes)
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "{w}");
    }
    out
}

/// `` per replica x 2 replicas`` after a batch size, for a data-parallel plan.
pub fn replicas_note(replicas: usize, batch: usize) -> String {
    if replicas > 1 {
        format!(" per replica x {replicas} replicas = {} per step", batch * replicas)
    } else {
        String::new()
    }
}

pub fn mode_name(mode: crate::ir::Mode) -> &'static str {
    match mode {
        crate::ir::Mode::Train => "training",
        crate::ir::Mode::Infer => "inference",
    }
}

/// What `alexc inspect` prints of the plan read from `path`: its header line, the IR text, the
/// memory table, and each device's arena.
pub fn plan_text(plan: &crate::plan::Plan, path: &std::path::Path) -> String {
    let mut text = format!(
        "plan {} (alexc {}, from {}, {} step, batch {}{}, {} -> {} nodes by fusion)\n",
        path.display(),
        plan.compiler,
        plan.source,
        mode_name(plan.mode),
        plan.memory.batch_size,
        replicas_note(plan.replicas, plan.memory.batch_size),
        plan.nodes_before_fusion,
        plan.nodes_after_fusion
    );
    text += &crate::ir::print_graph(&plan.graph, "memory");
    text += &memory_table(&plan.memory);
    for (d, m) in plan.device_memory.iter().enumerate() {
        text += &format!(
            "device d{d}: arena {} (lower bound {}), parameters and state {}\n",
            human_bytes(m.arena_bytes),
            human_bytes(m.lower_bound_bytes),
            human_bytes(m.persistent_bytes)
        );
    }
    text
}
