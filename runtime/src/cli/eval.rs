//! `alexrt eval` (top-1 and top-5 on a validation folder, centre crop and ten crops) and
//! `alexrt infer` (the top-5 classes of images).

use std::path::PathBuf;

use crate::data::stats::Stats;
use crate::data::{open_split, sources};
use crate::eval::{evaluate_folder, top_classes};
use crate::exec::{Batch, Executor};
use crate::kernels::KernelBackend;
use crate::tensor_file::TensorFile;
use crate::{checkpoint, weights, RunError};
use alexir::plan::Plan;

use super::{bar, DeviceArg};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A plan from `alexc compile` (an inference plan, or a training plan's forward pass).
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// A checkpoint (its class list is used) or weights file (the class list then comes from
    /// DIR/train's folders, or DIR/val's).
    #[arg(long)]
    weights: PathBuf,
    /// The dataset folder (or shards from `alexrt pack`); DIR/val is evaluated.
    #[arg(long)]
    data: PathBuf,
    /// Skip the ten-crop evaluation (ten forward passes per image).
    #[arg(long)]
    center_only: bool,
}

#[derive(clap::Args)]
pub struct InferArgs {
    /// A plan from `alexc compile` (`--mode infer`, or a training plan's forward pass).
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// A checkpoint (its class names are printed) or weights file (safetensors with the graph's
    /// parameter names: `--save-weights`, `alexc import --weights`, PyTorch's).
    #[arg(long)]
    weights: PathBuf,
    /// For a graph that subtracts the dataset's mean or uses its colour statistics (`Dataset`):
    /// the alexrt-stats.json that `alexrt stats` wrote (else the dataset folder's, --data, or
    /// the checkpoint's).
    #[arg(long)]
    stats: Option<PathBuf>,
    /// The dataset folder whose alexrt-stats.json to use (see --stats).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON object: per image its top-5 classes with their probabilities.
    #[arg(long)]
    json: bool,
    /// With --json, also each image's logits (all classes), for comparing with other tools.
    #[arg(long, requires = "json")]
    logits: bool,
    /// The images (JPEG or PNG), each run on its own.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// The statistics `infer` preprocesses with: --stats, else --data's, else the checkpoint's.
fn infer_stats(args: &InferArgs, checkpoint: Option<Stats>) -> Result<Option<Stats>, RunError> {
    if let Some(path) = &args.stats {
        let text =
            std::fs::read_to_string(path).map_err(|e| RunError::Input(format!("{}: {e}", path.display())))?;
        let stats = serde_json::from_str(&text).map_err(|e| {
            RunError::Input(format!("{}: not a statistics file ({e}); give the alexrt-stats.json that `alexrt stats --data DIR` wrote", path.display()))
        })?;
        return Ok(Some(stats));
    }
    if let Some(dir) = &args.data {
        if let Some(stats) = crate::data::stats::load(dir).map_err(RunError::Input)? {
            return Ok(Some(stats));
        }
        return Err(RunError::Input(format!(
            "{}: no alexrt-stats.json; run `alexrt stats --data {}` first",
            dir.display(),
            dir.display()
        )));
    }
    Ok(checkpoint)
}

pub fn run_eval<B: KernelBackend>(args: EvalArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let meta = checkpoint::load_params(&mut exec, &args.weights)?;
    let (pipeline, _) = sources::pipeline(&plan, &args.data, meta.as_ref().and_then(|m| m.stats.as_ref()))?;
    let open = |split: &str, classes: Option<&[String]>| {
        open_split(&args.data, split, classes, pipeline.clone()).map_err(RunError::Input)
    };
    // Class indices are sorted folder names: from the checkpoint, else DIR/train, else DIR/val
    // itself (the same order when it holds every class; the count is checked below).
    let classes = match &meta {
        Some(m) => m.classes.clone(),
        None if args.data.join("train").is_dir() => open("train", None)?.class_names(),
        None => {
            eprintln!(
                "note: the weights carry no class list and {} has no train/ folder; classes are val/'s folders in sorted order",
                args.data.display()
            );
            open("val", None)?.class_names()
        }
    };
    let k = plan.graph.spec.classes;
    if classes.len() != k {
        return Err(RunError::Input(format!(
            "{}: {} classes, but the graph has `classes: {k}`; evaluate with the dataset the weights were trained on",
            args.data.display(),
            classes.len()
        )));
    }
    let val = open("val", Some(&classes))?;
    let pb = bar(val.len() as u64, "evaluating [{bar:30}] {pos}/{len} {msg}");
    let report =
        evaluate_folder(&mut exec, &*val, plan.memory.batch_size, args.center_only, |n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let line = |what: &str, m: &crate::metrics::Metrics| {
        format!(
            "  {what} top-1 {:.2}%, top-5 {:.2}% (error {:.2}% / {:.2}%)\n",
            100.0 * m.top1,
            100.0 * m.top5,
            100.0 * (1.0 - m.top1),
            100.0 * (1.0 - m.top5)
        )
    };
    let mut text = format!(
        "{}: {} validation images{}\n",
        args.data.display(),
        report.center.images,
        if report.skipped > 0 { format!(" ({} unreadable, skipped)", report.skipped) } else { String::new() },
    );
    text += &line("centre crop:", &report.center);
    if let Some(ten) = &report.ten {
        text += &line("ten crops:  ", ten);
    }
    crate::say(&text);
    Ok(())
}

pub fn run_infer<B: KernelBackend>(args: InferArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let file = TensorFile::read(&args.weights)?;
    let meta = checkpoint::read_meta(&file)?;
    let skip = meta.as_ref().map(|m| m.state_tensors.clone()).unwrap_or_default();
    weights::load_tensors(&mut exec, &file, false, &skip)?;
    let stats = infer_stats(&args, meta.as_ref().and_then(|m| m.stats.clone()))?;
    let pipeline = crate::data::augment::Pipeline::from_spec(
        plan.graph.spec.data.as_ref(),
        sources::input_shape(&plan)?,
        stats.as_ref(),
    )
    .map_err(|e| RunError::Input(format!("{e}; or give them to infer with --stats FILE or --data DIR")))?;
    let k = plan.graph.spec.classes;
    // Class names: a checkpoint's, else those a weights file carries (`alexc import` writes them).
    let carried: Option<Vec<String>> = match &meta {
        Some(m) => Some(m.classes.clone()),
        None => file.metadata("classes").and_then(|c| serde_json::from_str(c).ok()),
    };
    let names: Vec<String> = match carried {
        Some(c) if c.len() == k => c,
        _ => (0..k).map(|c| format!("class {c}")).collect(),
    };
    if args.json {
        return infer_json(&args, &mut exec, &pipeline, &names);
    }
    let mut text = String::new();
    for path in &args.images {
        let img = read_image(path)?;
        let out = exec.forward(Batch { images: pipeline.prepare(&img, None), labels: vec![0] })?;
        text += &format!("{}:\n", path.display());
        for (c, p) in top_classes(&out.logits[..k], 5) {
            text += &format!("  {:6.2}%  {}\n", 100.0 * p, names[c]);
        }
    }
    crate::say(&text);
    Ok(())
}

/// The image at `path`, decoded as training decodes it ([`crate::data::decode`]).
fn read_image(path: &std::path::Path) -> Result<image::RgbImage, RunError> {
    let bytes = std::fs::read(path).map_err(|e| RunError::Input(format!("{}: {e}", path.display())))?;
    crate::data::decode::decode(&bytes)
        .map_err(|e| RunError::Input(format!("{}: not a readable image ({e})", path.display())))
}

/// `infer --json`: `{"graph", "images": [{"image", "top5": [{"class", "name", "probability"}],
/// "logits"?}]}`, every image read before anything is printed.
fn infer_json<B: KernelBackend>(
    args: &InferArgs,
    exec: &mut Executor<B>,
    pipeline: &crate::data::augment::Pipeline,
    names: &[String],
) -> Result<(), RunError> {
    let k = names.len();
    let mut images = Vec::with_capacity(args.images.len());
    for path in &args.images {
        let img = read_image(path)?;
        let out = exec.forward(Batch { images: pipeline.prepare(&img, None), labels: vec![0] })?;
        let row = &out.logits[..k];
        let top5: Vec<serde_json::Value> = top_classes(row, 5)
            .into_iter()
            .map(|(c, p)| serde_json::json!({"class": c, "name": names[c], "probability": p}))
            .collect();
        let mut entry = serde_json::json!({"image": path.display().to_string(), "top5": top5});
        if args.logits {
            entry["logits"] = serde_json::json!(row);
        }
        images.push(entry);
    }
    let doc = serde_json::json!({"graph": exec.graph.name, "images": images});
    crate::say(&format!("{doc}\n"));
    Ok(())
}
