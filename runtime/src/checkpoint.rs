//! Checkpoints: a safetensors file, `DIR/checkpoint.safetensors`, holding every parameter and
//! momentum buffer (PyTorch names: `conv1.weight`, `conv1.weight.momentum`) with checksums
//! ([`crate::tensor_file`]) and, in its metadata, where the run stands and the class names.
//!
//! Writing keeps the one before: the new checkpoint goes to a temporary file, the current one
//! becomes `checkpoint.prev.safetensors`, and the new one is renamed into place. A run killed at
//! any moment, or a checkpoint damaged on disk, still leaves a good one to resume from:
//! [`resume`] falls back to the previous checkpoint and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;
use crate::progress::Progress;
use crate::tensor_file::{self, TensorFile};
use crate::weights;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const PREVIOUS_FILE: &str = "checkpoint.prev.safetensors";
/// Where a latest checkpoint that could not be resumed is set aside, so that the next save does
/// not rotate it over the good previous one.
pub const SET_ASIDE_FILE: &str = "checkpoint.damaged.safetensors";
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
    /// The tensors that are optimizer state (momentum), not parameters.
    #[serde(default)]
    pub state_tensors: Vec<String>,
}

pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

pub fn previous_path(dir: &Path) -> PathBuf {
    dir.join(PREVIOUS_FILE)
}

/// Writes `exec`'s parameters and optimizer state with `progress`, atomically, keeping the
/// checkpoint it replaces as the previous one.
pub fn save<B: KernelBackend>(
    exec: &Executor<B>,
    dir: &Path,
    progress: &Progress,
    data: &RunData<'_>,
) -> Result<PathBuf, RunError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let params: Vec<String> = exec.param_names().into_iter().map(|(n, _)| n).collect();
    let names = exec.persistent_names();
    let tensors = weights::named_tensors(exec, &names)?;
    let meta = Checkpoint {
        graph: exec.graph.name.clone(),
        classes: data.classes.to_vec(),
        stats: data.stats.cloned(),
        steps_done: exec.steps_done,
        train_images: data.train_images,
        batch_size: data.batch_size,
        progress: progress.clone(),
        state_tensors: names.into_iter().map(|(n, _)| n).filter(|n| !params.contains(n)).collect(),
    };
    let text = serde_json::to_string(&meta)
        .map_err(|e| RunError::Internal(format!("checkpoint metadata does not serialise: {e}")))?;
    let metadata = BTreeMap::from([(META_KEY.to_string(), text), ("format".to_string(), "pt".to_string())]);
    let (path, previous) = (checkpoint_path(dir), previous_path(dir));
    let fresh = dir.join(format!(".{CHECKPOINT_FILE}.new"));
    tensor_file::write(&fresh, &tensors, metadata)?;
    if path.exists() {
        std::fs::rename(&path, &previous).map_err(io(&previous))?;
    }
    std::fs::rename(&fresh, &path).map_err(io(&path))?;
    Ok(path)
}

/// The metadata of a file written by [`save`], if it is a checkpoint.
pub fn read_meta(file: &TensorFile) -> Result<Option<Checkpoint>, RunError> {
    match file.metadata(META_KEY) {
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| RunError::Weights {
            path: file.path().to_string(),
            message: format!("the checkpoint's metadata does not decode ({e})"),
        }),
        None => Ok(None),
    }
}

/// Loads the parameters of a weights file or a checkpoint (for evaluation and inference);
/// returns the checkpoint's metadata if it is one.
pub fn load_params<B: KernelBackend>(
    exec: &mut Executor<B>,
    path: &Path,
) -> Result<Option<Checkpoint>, RunError> {
    let file = TensorFile::read(path)?;
    let meta = read_meta(&file)?;
    let skip = meta.as_ref().map(|m| m.state_tensors.clone()).unwrap_or_default();
    weights::load_tensors(exec, &file, false, &skip)?;
    Ok(meta)
}

/// A run restored by [`resume`].
#[derive(Debug)]
pub struct Resumed {
    pub progress: Progress,
    pub meta: Checkpoint,
    /// The file it came from.
    pub path: PathBuf,
    /// Why the latest checkpoint was passed over for the previous one, when it was.
    pub fell_back: Option<RunError>,
}

/// Restores parameters, optimizer state and the dropout step count from the checkpoint in `dir`,
/// or, when that is missing or damaged, from the previous one; a damaged latest checkpoint is then
/// moved to [`SET_ASIDE_FILE`], so the run's next save keeps the good previous one.
pub fn resume<B: KernelBackend>(exec: &mut Executor<B>, dir: &Path) -> Result<Resumed, RunError> {
    let (latest, previous) = (checkpoint_path(dir), previous_path(dir));
    if !latest.exists() && !previous.exists() {
        return Err(RunError::Input(format!(
            "{}: no checkpoint to resume from; run without --resume, or pass the --out of the run to continue",
            latest.display()
        )));
    }
    let first = match restore(exec, &latest) {
        Ok((progress, meta)) => return Ok(Resumed { progress, meta, path: latest, fell_back: None }),
        Err(e) => e,
    };
    if !previous.exists() {
        return Err(first);
    }
    match restore(exec, &previous) {
        Ok((progress, meta)) => {
            if latest.exists() {
                let aside = dir.join(SET_ASIDE_FILE);
                std::fs::rename(&latest, &aside)
                    .map_err(|source| RunError::Io { path: aside.display().to_string(), source })?;
            }
            Ok(Resumed { progress, meta, path: previous, fell_back: Some(first) })
        }
        Err(second) => Err(RunError::Input(format!(
            "neither checkpoint can be resumed:\n  {first}\n  {second}\nstart a fresh run with another --out"
        ))),
    }
}

fn restore<B: KernelBackend>(
    exec: &mut Executor<B>,
    path: &Path,
) -> Result<(Progress, Checkpoint), RunError> {
    let file = TensorFile::read(path)?;
    let meta = read_meta(&file)?.ok_or_else(|| RunError::Weights {
        path: path.display().to_string(),
        message: "this is a weights file, not a checkpoint (it has no alexrt metadata)".into(),
    })?;
    if meta.graph != exec.graph.name {
        return Err(RunError::Weights {
            path: path.display().to_string(),
            message: format!(
                "the checkpoint is of graph `{}`, the plan of `{}`",
                meta.graph, exec.graph.name
            ),
        });
    }
    weights::load_tensors(exec, &file, true, &[])?;
    exec.steps_done = meta.steps_done;
    Ok((meta.progress.clone(), meta))
}

impl Checkpoint {
    /// Refuses a resumed run whose data or batches differ from the checkpoint's: the run would
    /// not continue the same epochs.
    pub fn check_same_data(
        &self,
        train: &dyn crate::data::Dataset,
        batch_size: usize,
    ) -> Result<(), RunError> {
        let classes = train.class_names();
        if self.classes == classes && self.train_images == train.len() && self.batch_size == batch_size {
            return Ok(());
        }
        Err(RunError::Input(format!(
            "the checkpoint was trained on {} images of {} classes ({}...) in batches of {}, this run has {} images of {} classes ({}...) in batches of {}; resume with the same --data (or --train-images) and plan",
            self.train_images,
            self.classes.len(),
            self.classes.first().map(String::as_str).unwrap_or(""),
            self.batch_size,
            train.len(),
            classes.len(),
            classes.first().map(String::as_str).unwrap_or(""),
            batch_size
        )))
    }
}
