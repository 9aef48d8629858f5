//! A run's datasets: the training and validation splits of an ImageNet-layout folder (or of the
//! shards `alexrt pack` made of one) with the plan's preprocessing, or the built-in synthetic set.

use std::path::PathBuf;

use alexir::catalog::Op;
use alexir::plan::Plan;

use super::augment::Pipeline;
use super::stats::{self, Stats};
use super::{open_split, shards, Dataset, Synthetic};
use crate::error::RunError;

/// Where a run's images come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// The built-in synthetic set (generated from the graph's seed, not downloaded).
    Synthetic { train_images: usize, val_images: usize },
    /// `DIR/train/<class>/*` and `DIR/val/<class>/*`, or a shard folder (`alexrt pack`'s).
    Folder(PathBuf),
}

/// A run's training set, validation set, the training set's statistics (image folders only), and
/// lines worth telling the user (what was found and skipped).
pub struct Datasets {
    pub train: Box<dyn Dataset>,
    pub val: Box<dyn Dataset>,
    pub stats: Option<Stats>,
    pub notes: Vec<String>,
}

/// The network input of `plan`, `[C, H, W]`.
pub fn input_shape(plan: &Plan) -> Result<[usize; 3], RunError> {
    plan.graph
        .node_indices()
        .into_iter()
        .find_map(|n| match &plan.graph.g[n].op {
            Op::Input(i) => Some([i.channels, i.height, i.width]),
            _ => None,
        })
        .ok_or_else(|| RunError::Internal("the plan has no input".into()))
}

/// The preprocessing of `plan` for images of the folder `dir` (whose statistics it reads, when
/// the graph asks for them): the folder's own statistics first, else `fallback` (a checkpoint's).
pub fn pipeline(
    plan: &Plan,
    dir: &std::path::Path,
    fallback: Option<&Stats>,
) -> Result<(Pipeline, Option<Stats>), RunError> {
    let stats = stats::load(dir).map_err(RunError::Input)?.or_else(|| fallback.cloned());
    let pipeline = Pipeline::from_spec(plan.graph.spec.data.as_ref(), input_shape(plan)?, stats.as_ref())
        .map_err(RunError::Input)?;
    Ok((pipeline, stats))
}

/// Opens the datasets of a training run of `plan`.
pub fn open(plan: &Plan, source: &DataSource) -> Result<Datasets, RunError> {
    let spec = &plan.graph.spec;
    let shape = input_shape(plan)?;
    let dir = match source {
        DataSource::Synthetic { train_images, val_images } => {
            let seed = spec.training.seed;
            return Ok(Datasets {
                train: Box::new(Synthetic::new(shape, spec.classes, *train_images, seed, "train")),
                val: Box::new(Synthetic::new(shape, spec.classes, *val_images, seed, "val")),
                stats: None,
                notes: Vec::new(),
            });
        }
        DataSource::Folder(dir) => dir,
    };
    if !dir.is_dir() {
        return Err(RunError::Input(format!(
            "{}: no such dataset folder; expected DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG, or shards from `alexrt pack`",
            dir.display()
        )));
    }
    let (pipeline, stats) = pipeline(plan, dir, None)?;
    let mut notes = Vec::new();
    if spec.data.is_none() {
        notes.push(
            "note: the graph has no `data` section; resizing to the input, flipping, ImageNet mean/std"
                .into(),
        );
    }
    let train = open_split(dir, "train", None, pipeline.clone()).map_err(RunError::Input)?;
    let classes = train.class_names();
    if classes.len() != spec.classes {
        let what = if dir.join(shards::CLASSES_FILE).is_file() {
            format!("{}: {} classes", dir.join(shards::CLASSES_FILE).display(), classes.len())
        } else if shards::is_shard_folder(dir) {
            format!(
                "{}: class indices up to {} (add a classes.txt beside train/ to name them all)",
                dir.join("train").display(),
                classes.len().saturating_sub(1)
            )
        } else {
            format!("{}: {} class folders", dir.join("train").display(), classes.len())
        };
        return Err(RunError::Input(format!(
            "{what}, but the graph has `classes: {}`; set classes to {} or use a dataset with {} classes",
            spec.classes,
            classes.len(),
            spec.classes
        )));
    }
    if !dir.join("val").exists() {
        return Err(RunError::Input(format!(
            "{}: no val/ split; training validates on it after each epoch: add DIR/val/<class>/<image> (for shards, pack a folder that has one)",
            dir.display()
        )));
    }
    let val = open_split(dir, "val", Some(&classes), pipeline).map_err(RunError::Input)?;
    for (split, f) in [("train", &train), ("val", &val)] {
        let r = f.listing();
        let mut line = format!("{split}: {} images in {} classes", r.images, classes.len());
        if r.shards > 0 {
            line += &format!(", from {}", alexir::units::plural(r.shards, "shard", "shards"));
        }
        if r.skipped_when_packed > 0 {
            line += &format!(
                ", {} skipped when packed",
                alexir::units::plural(r.skipped_when_packed, "unreadable image", "unreadable images")
            );
        }
        if r.stray_files > 0 {
            line +=
                &format!(", {} skipped", alexir::units::plural(r.stray_files, "stray file", "stray files"));
        }
        if !r.empty_classes.is_empty() {
            line += &format!(", empty classes: {}", r.empty_classes.join(" "));
        }
        if !r.unknown_classes.is_empty() {
            line += &format!(", unknown classes skipped: {}", r.unknown_classes.join(" "));
        }
        notes.push(line);
    }
    Ok(Datasets { train, val, stats, notes })
}
