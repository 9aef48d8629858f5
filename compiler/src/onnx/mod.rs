//! ONNX, both ways: `alexc export` writes an inference graph and its weights as one ONNX model,
//! `alexc import` reads an ONNX model (this exporter's, torchvision's AlexNet as torch.onnx writes
//! it) back into a graph file and a weights file.
//!
//! The protobuf messages are derived with prost from the part of onnx.proto used ([`proto`]): no
//! protoc, no generated code at build time. [`export`] and [`import`] each hold their op table.

pub mod error;
pub mod export;
pub mod import;
pub mod metadata;
pub mod proto;
pub mod tensor;
pub mod weights;

use std::collections::BTreeMap;
use std::path::Path;

use crate::diag::Diagnostics;
use crate::plan::{write_atomically, Plan, MAGIC};
pub use error::OnnxError;

/// Why an export or import failed: the graph file's diagnostics, or the ONNX side's error.
#[derive(Debug)]
pub enum InterchangeError {
    Graph(Diagnostics),
    Onnx(OnnxError),
}

impl From<OnnxError> for InterchangeError {
    fn from(e: OnnxError) -> Self {
        InterchangeError::Onnx(e)
    }
}

impl From<Diagnostics> for InterchangeError {
    fn from(d: Diagnostics) -> Self {
        InterchangeError::Graph(d)
    }
}

/// What an export wrote.
pub struct Exported {
    pub graph: String,
    pub nodes: usize,
    pub initializers: usize,
    pub bytes: usize,
}

/// Exports the graph file or plan at `input` with the weights at `weights` to `output`. The
/// dataset mean of a `mean: Dataset` graph comes from the weights (a checkpoint) or `stats` (an
/// `alexrt stats` file).
pub fn export_file(
    input: &Path,
    weights: &Path,
    stats: Option<&Path>,
    output: &Path,
) -> Result<Exported, InterchangeError> {
    let file = input.display().to_string();
    let head = std::fs::read(input).map(|b| b.starts_with(MAGIC)).unwrap_or(false);
    let mut graph = if head {
        let plan =
            Plan::read(input).map_err(|e| OnnxError::new(&file, e.to_string(), "compile the graph again"))?;
        plan.graph
    } else {
        crate::front_end(input, &mut |_, _, _| {})?.graph
    };
    export::unfuse(&mut graph).map_err(|e| OnnxError::new(&file, e, "compile the graph again").internal())?;
    let weights = weights::Weights::read(weights)?;
    let mean = match stats {
        Some(p) => Some(read_stats_mean(p)?),
        None => weights.dataset_mean(),
    };
    let classes = weights.classes();
    let meta = metadata::describe(&graph, classes.as_deref(), mean)
        .map_err(|e| OnnxError::new(&file, e, "see `alexc export --help`"))?;
    let model = export::export(&graph, &weights, meta, &file)?;
    let bytes = proto::encode_model(&model);
    write_atomically(output, &bytes).map_err(|e| {
        OnnxError::new(
            &output.display().to_string(),
            format!("cannot write: {e}"),
            "check the folder exists and is writable",
        )
    })?;
    let g = model.graph.unwrap_or_default();
    Ok(Exported {
        graph: graph.name,
        nodes: g.node.len(),
        initializers: g.initializer.len(),
        bytes: bytes.len(),
    })
}

/// The mean of an `alexrt stats` file (`alexrt-stats.json`).
fn read_stats_mean(path: &Path) -> Result<[f64; 3], OnnxError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        OnnxError::new(
            &file,
            format!("cannot read: {e}"),
            "give the alexrt-stats.json that `alexrt stats --data DIR` wrote",
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        OnnxError::new(
            &file,
            format!("not JSON ({e})"),
            "give the alexrt-stats.json that `alexrt stats --data DIR` wrote",
        )
    })?;
    serde_json::from_value(v.get("mean").cloned().unwrap_or_default()).map_err(|_| {
        OnnxError::new(
            &file,
            "has no `mean` of three numbers",
            "give the alexrt-stats.json that `alexrt stats --data DIR` wrote",
        )
    })
}

/// What an import wrote.
pub struct ImportSummary {
    pub graph: String,
    pub layers: usize,
    pub parameters: usize,
    pub warnings: Vec<String>,
}

/// Imports the model at `model` into the graph file `output` (and its weights into `weights`).
/// The graph is compiled's front end first: nothing is written unless it passes.
pub fn import_file(
    model: &Path,
    output: &Path,
    weights: Option<&Path>,
) -> Result<ImportSummary, InterchangeError> {
    let imported = import::import(model)?;
    let out = output.display().to_string();
    let checked = crate::front_end_str(&imported.ron, &out, &mut |_, _, _| {})?;
    let mut meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(c) = &imported.classes {
        meta.insert("classes".into(), serde_json::to_string(c).unwrap_or_default());
    }
    let write = |path: &Path, bytes: &[u8]| {
        write_atomically(path, bytes).map_err(|e| {
            OnnxError::new(
                &path.display().to_string(),
                format!("cannot write: {e}"),
                "check the folder exists and is writable",
            )
        })
    };
    if let Some(w) = weights {
        let bytes = weights::to_bytes(&imported.weights, meta)
            .map_err(|e| OnnxError::new(&w.display().to_string(), e, "").internal())?;
        write(w, &bytes)?;
    }
    write(output, imported.ron.as_bytes())?;
    let parameters = imported.weights.iter().map(|(_, s, _)| s.iter().product::<usize>()).sum();
    Ok(ImportSummary {
        graph: checked.graph.name,
        layers: checked.graph.layers.len(),
        parameters,
        warnings: imported.warnings,
    })
}
