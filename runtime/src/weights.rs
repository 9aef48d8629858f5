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

/// Loads parameters from `path` (a weights file or a checkpoint) into `exec`. Every parameter
/// must be there with its shape, as f32 (or f64, converted); tensors the plan does not know are an
/// error too (a checkpoint's momentum buffers excepted).
pub fn load<B: KernelBackend>(exec: &mut Executor<B>, path: &Path) -> Result<(), RunError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RunError::Io { path: p.clone(), source })?;
    load_tensors(exec, &bytes, &p, false)
}

/// Loads the parameters (and with `with_state`, the optimizer state) in safetensors `bytes`.
pub fn load_tensors<B: KernelBackend>(
    exec: &mut Executor<B>,
    bytes: &[u8],
    p: &str,
    with_state: bool,
) -> Result<(), RunError> {
    let fail = |message: String| RunError::Weights { path: p.to_string(), message };
    let file = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let is_checkpoint = crate::checkpoint::read_meta(bytes, p)?.is_some();
    let wanted = if with_state { exec.persistent_names() } else { exec.param_names() };
    let state: Vec<String> = exec.persistent_names().into_iter().map(|(n, _)| n).collect();
    for name in file.names() {
        // A checkpoint's optimizer state is not needed where only the parameters are loaded
        // (evaluation, inference), nor present in an inference plan.
        let optimizer_state =
            is_checkpoint && (state.iter().any(|s| s == name) || name.ends_with(".momentum"));
        let known = wanted.iter().any(|(w, _)| w == name) || optimizer_state;
        if !known {
            return Err(fail(format!(
                "tensor `{name}` is not a parameter of graph `{}`; its parameters are {}",
                exec.graph.name,
                exec.param_names().iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
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
