//! Checkpoints: one safetensors file, `DIR/checkpoint.safetensors`, holding every parameter and
//! momentum buffer (PyTorch names: `conv1.weight`, `conv1.weight.momentum`) and, in its metadata,
//! where the run stands and the class names. It is written to a temporary file and renamed into
//! place, so a run killed at any moment leaves the previous checkpoint whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;
use crate::train::Progress;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const META_KEY: &str = "alexrt";

/// What a run trains on, as a checkpoint records it.
pub struct RunData<'a> {
    pub classes: &'a [String],
    pub stats: Option<&'a crate::data::stats::Stats>,
    pub train_images: usize,
    pub batch_size: usize,
}

/// What a checkpoint says besides its tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub graph: String,
    pub classes: Vec<String>,
    /// The dataset statistics the run's preprocessing used, for `eval` and `infer`.
    pub stats: Option<crate::data::stats::Stats>,
    pub steps_done: u64,
    /// The training set's size and the batch size: a resumed run must have the same.
    pub train_images: usize,
    pub batch_size: usize,
    pub progress: Progress,
}

pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// Writes `exec`'s parameters and optimizer state with `progress`, atomically.
pub fn save<B: KernelBackend>(
    exec: &Executor<B>,
    dir: &Path,
    progress: &Progress,
    data: &RunData<'_>,
) -> Result<PathBuf, RunError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| RunError::Io { path: dir.display().to_string(), source })?;
    let path = checkpoint_path(dir);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, n) in exec.persistent_names() {
        let shape = exec.graph.g[n].outputs[0].dims.clone();
        let values = exec.persistent_values(&name).expect("persistent values exist")?;
        tensors.push((name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent"))
        })
        .collect();
    let meta = Checkpoint {
        graph: exec.graph.name.clone(),
        classes: data.classes.to_vec(),
        stats: data.stats.cloned(),
        steps_done: exec.steps_done,
        train_images: data.train_images,
        batch_size: data.batch_size,
        progress: progress.clone(),
    };
    let mut metadata = HashMap::new();
    metadata.insert(META_KEY.to_string(), serde_json::to_string(&meta).expect("serialisable"));
    metadata.insert("format".to_string(), "pt".to_string());
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| RunError::Weights { path: path.display().to_string(), message: e.to_string() })?;
    alexc::plan::write_atomically(&path, &data)
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })?;
    Ok(path)
}

/// The metadata of a safetensors file written by [`save`], if it is one.
pub fn read_meta(bytes: &[u8], path: &str) -> Result<Option<Checkpoint>, RunError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| RunError::Weights {
        path: path.into(),
        message: format!("not a safetensors file ({e})"),
    })?;
    match header.metadata().as_ref().and_then(|m| m.get(META_KEY)) {
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| RunError::Weights {
            path: path.into(),
            message: format!("the checkpoint's metadata does not decode ({e})"),
        }),
        None => Ok(None),
    }
}

/// Restores parameters, optimizer state and the dropout step count from `dir`'s checkpoint.
pub fn load<B: KernelBackend>(
    exec: &mut Executor<B>,
    dir: &Path,
) -> Result<(Progress, Checkpoint), RunError> {
    let path = checkpoint_path(dir);
    let p = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| RunError::Io { path: p.clone(), source })?;
    let meta = read_meta(&bytes, &p)?.ok_or_else(|| RunError::Weights {
        path: p.clone(),
        message: "this is a weights file, not a checkpoint (it has no alexrt metadata)".into(),
    })?;
    if meta.graph != exec.graph.name {
        return Err(RunError::Weights {
            path: p,
            message: format!(
                "the checkpoint is of graph `{}`, the plan of `{}`",
                meta.graph, exec.graph.name
            ),
        });
    }
    crate::weights::load_tensors(exec, &bytes, &p, true)?;
    exec.steps_done = meta.steps_done;
    Ok((meta.progress.clone(), meta))
}
