//! Weights files for export and import: safetensors with the graph's parameter names and
//! PyTorch's layouts, as alexrt reads and writes them. Reading checks the CRC-32 of each tensor
//! where alexrt wrote one (`alexrt.crc32`); the class names and the dataset mean come from a
//! checkpoint's metadata (`alexrt`) or a plain `classes` entry. Writing is atomic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::error::OnnxError;

/// A weights file read into memory.
pub struct Weights {
    pub file: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: BTreeMap<String, String>,
}

impl Weights {
    pub fn read(path: &Path) -> Result<Weights, OnnxError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            OnnxError::new(
                &file,
                format!("cannot read the weights: {e}"),
                "check the path to the safetensors file",
            )
        })?;
        let bad = |m: String| {
            OnnxError::new(
                &file,
                m,
                "use a safetensors file written by alexrt (--save-weights, a checkpoint) or by safetensors",
            )
        };
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("the header does not decode ({e})")))?;
        let metadata: BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        let crcs: Option<BTreeMap<String, u32>> =
            metadata.get("alexrt.crc32").and_then(|v| serde_json::from_str(v).ok());
        let mut tensors = HashMap::new();
        for (name, t) in st.tensors() {
            if let Some(crcs) = &crcs {
                if crcs.get(&name) != Some(&crc32fast::hash(t.data())) {
                    return Err(OnnxError::new(
                        &file,
                        format!("tensor `{name}` fails its checksum: the file is damaged"),
                        "use another copy (a run keeps the previous checkpoint beside it)",
                    ));
                }
            }
            let values: Vec<f32> = match t.dtype() {
                Dtype::F32 => {
                    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                }
                Dtype::F64 => t
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => return Err(bad(format!("tensor `{name}` is {other:?}; use F32 (or F64)"))),
            };
            tensors.insert(name, (t.shape().to_vec(), values));
        }
        Ok(Weights { file, tensors, metadata })
    }

    /// Tensor `name`, which must have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, OnnxError> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort();
        match self.tensors.get(name) {
            None => Err(OnnxError::new(
                &self.file,
                format!("tensor `{name}` (shape {shape:?}) is missing; the file holds {}", names.join(", ")),
                "export with the weights of this graph (`alexrt train --save-weights`, or a run's checkpoint)",
            )),
            Some((s, _)) if s != shape => Err(OnnxError::new(
                &self.file,
                format!("tensor `{name}` has shape {s:?}, the graph needs {shape:?}"),
                "export with the weights of this graph",
            )),
            Some((_, v)) => Ok(v.clone()),
        }
    }

    /// The class names a checkpoint (or an imported weights file) carries.
    pub fn classes(&self) -> Option<Vec<String>> {
        if let Some(v) = self.metadata.get("classes") {
            return serde_json::from_str(v).ok();
        }
        let meta: serde_json::Value = serde_json::from_str(self.metadata.get("alexrt")?).ok()?;
        serde_json::from_value(meta.get("classes")?.clone()).ok().filter(|c: &Vec<String>| !c.is_empty())
    }

    /// The dataset statistics' mean (0-255 RGB) a checkpoint carries.
    pub fn dataset_mean(&self) -> Option<[f64; 3]> {
        let meta: serde_json::Value = serde_json::from_str(self.metadata.get("alexrt")?).ok()?;
        serde_json::from_value(meta.get("stats")?.get("mean")?.clone()).ok()
    }
}

/// A tensor to write: name, shape, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// `tensors` as safetensors bytes (f32, little-endian) with `metadata`.
pub fn to_bytes(tensors: &[NamedTensor], metadata: BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view =
            TensorView::new(Dtype::F32, shape.clone(), b).map_err(|e| format!("tensor `{name}`: {e}"))?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = metadata.into_iter().collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
}
