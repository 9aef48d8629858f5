//! The import's driver: the model file to layers, with its input, output and metadata.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::attrs::Attrs;
use super::{ops, ron, sanitize, Importer, Known, LayerDecl, Val};
use crate::catalog::{Dropout, Op};
use crate::ir::{DType, TensorType};
use crate::onnx::error::OnnxError;
use crate::onnx::metadata::Carried;
use crate::onnx::proto::{decode_model, ValueInfoProto};
use crate::onnx::tensor;
use crate::onnx::weights::NamedTensor;

/// An imported model: the graph file's text, its weights, and what the user should know.
pub struct Imported {
    pub ron: String,
    pub weights: Vec<NamedTensor>,
    pub classes: Option<Vec<String>>,
    pub warnings: Vec<String>,
}

/// The fixed dimensions of a graph input or output after the batch, or the error naming the
/// dynamic one.
fn fixed_dims(v: &ValueInfoProto, file: &str, what: &str) -> Result<Vec<usize>, OnnxError> {
    let name = v.name.clone().unwrap_or_default();
    let dims = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref());
    let dims = dims.ok_or_else(|| {
        OnnxError::new(
            file,
            format!("the {what} `{name}` has no shape"),
            "export the model with its input shape (a fixed image size)",
        )
    })?;
    let mut out = Vec::new();
    for (i, d) in dims.dim.iter().enumerate().skip(1) {
        match d.dim_value {
            Some(v) if v > 0 => out.push(v as usize),
            _ => return Err(OnnxError::new(
                file,
                format!(
                    "dimension {i} of the {what} `{name}` is dynamic (`{}`)",
                    d.dim_param.clone().unwrap_or_default()
                ),
                "a graph file's sizes are fixed (only the batch may vary): re-export with a fixed input size",
            )
            .attribute(&format!("{what} {name}"))),
        }
    }
    Ok(out)
}

/// Reads the model at `path`.
pub fn import(path: &Path) -> Result<Imported, OnnxError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        OnnxError::new(&file, format!("cannot read the model: {e}"), "check the path to the .onnx file")
    })?;
    let model = decode_model(&bytes).map_err(|e| {
        OnnxError::new(&file, format!("not an ONNX model ({e})"), "give a .onnx file (a protobuf ModelProto)")
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::new(&file, "the model has no graph", "export the model again"))?;
    let props: Vec<(String, String)> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap_or_default(), p.value.clone().unwrap_or_default()))
        .collect();
    let (carried, mut warnings) = Carried::read(&props);
    let mut im = Importer {
        model: path.to_path_buf(),
        known: HashMap::new(),
        layers: Vec::new(),
        taken: HashSet::new(),
        uses: HashMap::new(),
    };
    for t in &graph.initializer {
        let c = tensor::read(t, path)?;
        im.known.insert(t.name.clone().unwrap_or_default(), Known::Constant(c));
    }
    for n in &graph.node {
        for i in &n.input {
            *im.uses.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *im.uses.entry(o.name.clone().unwrap_or_default()).or_default() += 1;
    }
    let inputs: Vec<&ValueInfoProto> =
        graph.input.iter().filter(|i| !im.known.contains_key(i.name.as_deref().unwrap_or(""))).collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::new(
            &file,
            format!("the graph has {} inputs besides its initializers", inputs.len()),
            "a graph file has one input, the image batch",
        ));
    };
    let dims = fixed_dims(input, &file, "input")?;
    let [channels, height, width] = dims[..] else {
        return Err(OnnxError::new(
            &file,
            format!("the input is {dims:?} per sample"),
            "a graph file's input is N x C x H x W",
        ));
    };
    let raw_input = input.name.clone().unwrap_or_default();
    let mut input_name = sanitize(&raw_input);
    if input_name.is_empty() {
        input_name = "data".into();
    }
    im.taken.insert(input_name.clone());
    let ty = TensorType::batched(DType::F32, dims.clone());
    im.known.insert(raw_input, Known::Value(Val { layer: input_name.clone(), ty }));
    for (i, node) in graph.node.iter().enumerate() {
        ops::import_node(&mut im, &Attrs::new(node, &file, i))?;
    }
    let [output] = graph.output.as_slice() else {
        return Err(OnnxError::new(
            &file,
            format!("the graph has {} outputs", graph.output.len()),
            "a graph file has one output, the logits",
        ));
    };
    let out_name = output.name.clone().unwrap_or_default();
    let logits = match im.known.get(&out_name) {
        Some(Known::Value(v)) if v.ty.dims.len() == 1 && v.layer != input_name => v.clone(),
        _ => {
            return Err(OnnxError::new(
                &file,
                format!("the output `{out_name}` is not a flat vector of logits computed by a layer"),
                "a graph file's output is the logits, N x classes",
            ))
        }
    };
    let classes = logits.ty.dims[0];
    let mut layers = im.layers;
    apply_carried(&mut layers, &carried, &mut warnings);
    let graph_name = match sanitize(graph.name.as_deref().unwrap_or("")) {
        n if n.is_empty() => "imported".to_string(),
        n => n,
    };
    let spec = carried.spec.clone().filter(|s| {
        let same = s.classes == classes;
        if !same {
            warnings.push(format!("the training settings in the metadata are for {} classes, the model has {classes}: defaults used", s.classes));
        }
        same
    });
    let source = format!(
        "{} (producer {} {}, opset {})",
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(file.clone()),
        model.producer_name.clone().unwrap_or_default(),
        model.producer_version.clone().unwrap_or_default(),
        model
            .opset_import
            .iter()
            .filter(|o| o.domain.as_deref().unwrap_or("").is_empty())
            .filter_map(|o| o.version)
            .max()
            .unwrap_or(0)
    );
    let text = ron::write(&ron::GraphText {
        source: &source,
        name: &graph_name,
        input: (&input_name, channels, height, width),
        classes,
        layers: &layers,
        logits: &logits.layer,
        spec: spec.as_ref(),
        params: &carried.params,
    });
    let mut weights = Vec::new();
    for l in &layers {
        if let Some(w) = &l.weight {
            weights.push((
                format!("{}.weight", l.name),
                w.dims.clone(),
                w.values.iter().map(|&v| v as f32).collect(),
            ));
        }
        if let Some(b) = &l.bias {
            weights.push((format!("{}.bias", l.name), vec![b.len()], b.iter().map(|&v| v as f32).collect()));
        }
    }
    Ok(Imported { ron: text, weights, classes: carried.classes.filter(|c| c.len() == classes), warnings })
}

/// An export's metadata on the layers: exact attributes (LRN's convention and alpha, a linear
/// layer's declared input width) where they agree with the ONNX graph, and the dropout layers.
fn apply_carried(layers: &mut Vec<LayerDecl>, carried: &Carried, warnings: &mut Vec<String>) {
    for l in layers.iter_mut() {
        let Some(meta) = carried.layers.get(&l.name) else { continue };
        match (&mut l.op, meta) {
            (Op::Lrn(got), Op::Lrn(exact)) => {
                let onnx_alpha = match exact.convention {
                    crate::ir::LrnConvention::Paper => exact.alpha * exact.size as f64,
                    crate::ir::LrnConvention::Caffe => exact.alpha,
                };
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1e-30);
                if got.size == exact.size
                    && close(got.alpha, onnx_alpha)
                    && close(got.beta, exact.beta)
                    && close(got.k, exact.k)
                {
                    *got = exact.clone();
                } else {
                    warnings.push(format!(
                        "layer `{}`: the metadata's LRN does not match the model's; the model's is used",
                        l.name
                    ));
                }
            }
            (Op::Linear(got), Op::Linear(exact)) if got.out_features == exact.out_features => {
                got.in_features = exact.in_features;
            }
            _ => {}
        }
    }
    for (name, d) in &carried.dropouts {
        let Some(at) = layers.iter().position(|l| l.name == d.input) else {
            warnings.push(format!(
                "dropout `{name}` reads `{}`, which the model does not have; left out",
                d.input
            ));
            continue;
        };
        for l in layers.iter_mut().filter(|l| d.read_by.contains(&l.name)) {
            for i in l.inputs.iter_mut().filter(|i| **i == d.input) {
                *i = name.clone();
            }
        }
        let op = Op::Dropout(Dropout { rate: d.rate, training: false });
        layers.insert(
            at + 1,
            LayerDecl { name: name.clone(), op, inputs: vec![d.input.clone()], weight: None, bias: None },
        );
    }
}
