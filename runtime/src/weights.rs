//! Weights as safetensors, with PyTorch's names (`conv1.weight`) and layouts (convolution
//! `O x C/g x k x k`, linear `out x in`): a PyTorch model of the same graph loads them as they are.
//! Files alexrt writes carry checksums ([`crate::tensor_file`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;
use crate::tensor_file::{self, NamedTensor, TensorFile};

/// The tensors `names` of `exec` (parameters, or parameters and optimizer state), for writing.
pub fn named_tensors<B: KernelBackend>(
    exec: &Executor<B>,
    names: &[(String, petgraph::stable_graph::NodeIndex)],
) -> Result<Vec<NamedTensor>, RunError> {
    names
        .iter()
        .map(|(name, n)| {
            let values = exec
                .persistent_values(name)
                .ok_or_else(|| RunError::Internal(format!("`{name}` has no values")))??;
            Ok(NamedTensor { name: name.clone(), shape: exec.graph.g[*n].outputs[0].dims.clone(), values })
        })
        .collect()
}

/// Writes every parameter of `exec` to `path` (atomically, with checksums), as f32.
pub fn save<B: KernelBackend>(exec: &Executor<B>, path: &Path) -> Result<(), RunError> {
    let tensors = named_tensors(exec, &exec.param_names())?;
    let meta =
        BTreeMap::from([("graph".to_string(), exec.graph.name.clone()), ("format".into(), "pt".into())]);
    tensor_file::write(path, &tensors, meta)
}

/// Loads parameters from the weights file `path` into `exec`.
pub fn load<B: KernelBackend>(exec: &mut Executor<B>, path: &Path) -> Result<(), RunError> {
    load_tensors(exec, &TensorFile::read(path)?, false, &[])
}

/// Loads the parameters (and with `with_state`, the optimizer state) of `file` into `exec`.
/// Every one must be there with its shape, as f32 (or f64, converted); a tensor the plan does not
/// know is an error too, except those in `may_skip` (a checkpoint's optimizer state, which
/// evaluation and inference plans have no use for).
pub fn load_tensors<B: KernelBackend>(
    exec: &mut Executor<B>,
    file: &TensorFile,
    with_state: bool,
    may_skip: &[String],
) -> Result<(), RunError> {
    let wanted = if with_state { exec.persistent_names() } else { exec.param_names() };
    let known: Vec<String> = exec.persistent_names().into_iter().map(|(n, _)| n).collect();
    for name in file.names()? {
        if !known.contains(&name) && !may_skip.contains(&name) {
            return Err(RunError::Weights {
                path: file.path().to_string(),
                message: format!(
                    "tensor `{name}` is not a parameter of graph `{}`; its parameters are {}",
                    exec.graph.name,
                    exec.param_names().iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    for (name, n) in wanted {
        let shape = exec.graph.g[n].outputs[0].dims.clone();
        let values = file.tensor_f32(&name, &shape)?;
        exec.set_persistent(&name, values)?;
    }
    Ok(())
}
