//! Weights as safetensors, with PyTorch's names (`conv1.weight`) and layouts (convolution
//! `O x C/g x k x k`, linear `out x in`): a PyTorch model of the same graph loads them as they are.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;

/// Writes every parameter of `exec` to `path` (atomically), as f32.
pub fn save<B: KernelBackend>(exec: &Executor<B>, path: &Path) -> Result<(), RunError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, n) in exec.param_names() {
        let shape = exec.graph.g[n].outputs[0].dims.clone();
        let values = exec.persistent_values(&name).expect("a parameter has values")?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent tensor"))
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("graph".to_string(), exec.graph.name.clone());
    meta.insert("format".to_string(), "pt".to_string());
    let data = safetensors::serialize(views, Some(meta))
        .map_err(|e| RunError::Weights { path: path.display().to_string(), message: e.to_string() })?;
    alexc::plan::write_atomically(path, &data)
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })
}

/// Loads parameters from `path` into `exec`. Every parameter must be there with its shape, as f32
/// (or f64, converted); tensors the plan does not know are an error too.
pub fn load<B: KernelBackend>(exec: &mut Executor<B>, path: &Path) -> Result<(), RunError> {
    let p = path.display().to_string();
    let fail = |message: String| RunError::Weights { path: p.clone(), message };
    let bytes = std::fs::read(path).map_err(|source| RunError::Io { path: p.clone(), source })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let wanted = exec.param_names();
    for name in file.names() {
        if !wanted.iter().any(|(w, _)| w == name) {
            return Err(fail(format!(
                "tensor `{name}` is not a parameter of graph `{}`; its parameters are {}",
                exec.graph.name,
                wanted.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    for (name, n) in wanted {
        let shape = exec.graph.g[n].outputs[0].dims.clone();
        let t =
            file.tensor(&name).map_err(|_| fail(format!("tensor `{name}` is missing (shape {shape:?})")))?;
        if t.shape() != shape.as_slice() {
            return Err(fail(format!("tensor `{name}` has shape {:?}, the plan needs {shape:?}", t.shape())));
        }
        let values: Vec<f32> = match t.dtype() {
            Dtype::F32 => {
                t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            }
            Dtype::F64 => {
                t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            }
            other => return Err(fail(format!("tensor `{name}` is {other:?}; use F32 (or F64)"))),
        };
        exec.set_persistent(&name, values)?;
    }
    Ok(())
}
