//! What an exported model says beyond its ops, in `metadata_props`: for whoever runs it, the
//! preprocessing and the class names; for `alexc import`, what a graph file says that ONNX cannot
//! (the exact attributes and LRN convention of each layer, each parameter's initialiser and
//! multipliers, the dropout layers the export leaves out, the training settings), so that the
//! import of an export compiles to the same plan.

use std::collections::BTreeMap;

use crate::catalog::{Op, Param};
use crate::ir::{Graph, Mean, TrainingSpec};

/// Preprocessing, for any runtime: the input's `CxHxW`, how an image is brought to it, and the
/// per-channel mean and standard deviation (RGB, 0-255 scale).
pub const INPUT: &str = "preprocessing.input";
pub const RESIZE_SHORT_SIDE: &str = "preprocessing.resize_short_side";
pub const CENTER_CROP: &str = "preprocessing.center_crop";
pub const MEAN: &str = "preprocessing.mean";
pub const STD: &str = "preprocessing.std";
pub const STEPS: &str = "preprocessing";
/// The class names, a JSON array in class-index order.
pub const CLASSES: &str = "classes";
/// The training settings (JSON of the IR's training specification).
pub const SPEC: &str = "alexc.spec";
/// `alexc.layer.NAME`: a layer's op and attributes as the IR's text form writes them.
pub const LAYER: &str = "alexc.layer.";
/// `alexc.param.NAME`: a parameter's initialiser and multipliers, in the IR's text form.
pub const PARAM: &str = "alexc.param.";
/// `alexc.dropout.NAME`: a dropout layer left out of the ONNX graph (JSON: rate, input, readers).
pub const DROPOUT: &str = "alexc.dropout.";

/// torchvision's ImageNet normalisation, which alexrt applies to a graph without a `data` section
/// (runtime/src/data/augment.rs): the preprocessing such a graph's export states.
const DEFAULT_MEAN: [f64; 3] = [123.675, 116.28, 103.53];
const DEFAULT_STD: [f64; 3] = [58.395, 57.12, 57.375];

/// A dropout layer the export leaves out, and where it goes back on import.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DroppedDropout {
    pub rate: f64,
    /// The value it reads.
    pub input: String,
    /// The layers that read it.
    pub read_by: Vec<String>,
}

fn triple(v: [f64; 3]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// The metadata of `graph`'s export (forward IR, unfused): `classes` and `dataset_mean` where the
/// weights carry them. Fails, naming the fix, when the graph's mean is the dataset's and no
/// statistics are given.
pub fn describe(
    graph: &Graph,
    classes: Option<&[String]>,
    dataset_mean: Option<[f64; 3]>,
) -> Result<Vec<(String, String)>, String> {
    let mut m = BTreeMap::new();
    let input = graph.g.node_weights().find_map(|n| match &n.op {
        Op::Input(i) => Some((i.channels, i.height, i.width)),
        _ => None,
    });
    let Some((c, h, w)) = input else { return Err("the graph has no input".into()) };
    m.insert(INPUT.to_string(), format!("{c}x{h}x{w}"));
    let (resize, center, mean, std) = match &graph.spec.data {
        None => (h, h, DEFAULT_MEAN, Some(DEFAULT_STD)),
        Some(d) => {
            let mean = match &d.mean {
                Mean::Rgb(m) => *m,
                Mean::Dataset => dataset_mean.ok_or(
                    "the graph subtracts the dataset's mean (`mean: Dataset`), which the weights do not carry; \
                     pass --stats DIR/alexrt-stats.json (from `alexrt stats`) or a checkpoint as --weights",
                )?,
            };
            (d.resize_short_side, d.center_crop, mean, d.std)
        }
    };
    m.insert(RESIZE_SHORT_SIDE.into(), resize.to_string());
    m.insert(CENTER_CROP.into(), center.to_string());
    m.insert(MEAN.into(), triple(mean));
    let mut steps = format!(
        "RGB pixels 0-255; resize the short side to {resize}, take the centre {center}x{center}, then the centre {h}x{w}; subtract the mean"
    );
    if let Some(s) = std {
        m.insert(STD.into(), triple(s));
        steps += ", divide by the std";
    }
    m.insert(STEPS.into(), steps + "; NCHW float32");
    if let Some(names) = classes.filter(|c| c.len() == graph.spec.classes) {
        m.insert(CLASSES.into(), serde_json::to_string(names).map_err(|e| e.to_string())?);
    }
    m.insert(SPEC.into(), serde_json::to_string(&graph.spec).map_err(|e| e.to_string())?);
    for layer in &graph.layers {
        let Some(&head) = layer.nodes.first() else { continue };
        // The layer as its graph file says it: not a plan's choice of convolution algorithm, nor
        // the argmax a training step's pooling keeps for its gradient, nor dropout's training flag.
        let mut op = graph.g[head].op.clone();
        match &mut op {
            Op::Conv2d(c) => c.0.algo = None,
            Op::MaxPool(p) => p.argmax = false,
            _ => {}
        }
        let op = &op;
        if let Op::Dropout(d) = op {
            let input = graph.inputs(head).first().map(|v| value_name(graph, *v)).unwrap_or_default();
            let read_by = graph
                .consumers(layer.output)
                .into_iter()
                .filter(|&n| graph.g[n].phase == crate::ir::Phase::Forward)
                .map(|n| graph.layer_of(n).map(|l| l.name.clone()).unwrap_or_else(|| graph.g[n].name.clone()))
                .collect();
            let text = serde_json::to_string(&DroppedDropout { rate: d.rate, input, read_by })
                .map_err(|e| e.to_string())?;
            m.insert(format!("{DROPOUT}{}", layer.name), text);
        } else {
            m.insert(format!("{LAYER}{}", layer.name), format!("{} {}", op.def().name(), op.def().attrs()));
        }
        for &p in &layer.params {
            m.insert(format!("{PARAM}{}", graph.g[p].name), graph.g[p].op.def().attrs());
        }
    }
    Ok(m.into_iter().collect())
}

/// The ONNX name export gives a value: the layer it is the output of, else its IR name.
fn value_name(graph: &Graph, v: crate::ir::ValueRef) -> String {
    match graph.layers.iter().find(|l| l.output == v) {
        Some(l) => l.name.clone(),
        None => graph.value_name(v),
    }
}

/// What an export's metadata carries back to an import (all empty for another tool's model).
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub spec: Option<TrainingSpec>,
    pub layers: BTreeMap<String, Op>,
    pub params: BTreeMap<String, Param>,
    pub dropouts: BTreeMap<String, DroppedDropout>,
    pub classes: Option<Vec<String>>,
}

impl Carried {
    /// Reads the entries of `props`; an entry that does not decode is left out (the import then
    /// falls back to what the ONNX graph says) and named in the returned warnings.
    pub fn read(props: &[(String, String)]) -> (Carried, Vec<String>) {
        let mut c = Carried::default();
        let mut warnings = Vec::new();
        for (k, v) in props {
            let ok = if k == SPEC {
                serde_json::from_str(v).map(|s| c.spec = Some(s)).is_ok()
            } else if k == CLASSES {
                serde_json::from_str(v).map(|s| c.classes = Some(s)).is_ok()
            } else if let Some(name) = k.strip_prefix(LAYER) {
                let (op, attrs) = v.split_once(' ').unwrap_or((v, ""));
                Op::from_text(op, attrs, &[]).map(|op| c.layers.insert(name.to_string(), op)).is_ok()
            } else if let Some(name) = k.strip_prefix(PARAM) {
                match Op::from_text("param", v, &[]) {
                    Ok(Op::Param(p)) => {
                        c.params.insert(name.to_string(), p);
                        true
                    }
                    _ => false,
                }
            } else if let Some(name) = k.strip_prefix(DROPOUT) {
                serde_json::from_str(v).map(|d| c.dropouts.insert(name.to_string(), d)).is_ok()
            } else {
                true
            };
            if !ok {
                warnings.push(format!("metadata entry `{k}` does not decode; it is ignored"));
            }
        }
        (c, warnings)
    }
}
